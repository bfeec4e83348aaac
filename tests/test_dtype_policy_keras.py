"""mixed_bfloat16 against real Keras 3.15.1 (KERAS_BACKEND=torch): the policy API's semantics,
and .keras files of mixed models both ways (Keras writes / we read, we write / Keras reads),
each layer keeping its policy and float32 weights."""

import os

import numpy as np
import pytest

import fusedlstm
from conftest import require
from fusedlstm import mixed_precision

os.environ.setdefault("KERAS_BACKEND", "torch")

pytestmark = [pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]


@pytest.fixture(scope="module")
def keras():
    require("h5py", "h5")
    require("torch", "compare")
    return require("keras", "compare")


@pytest.fixture(autouse=True)
def _reset_policies(keras):
    yield
    mixed_precision.set_global_policy("float32")
    keras.mixed_precision.set_global_policy("float32")


def _libs(keras):
    return [(keras, keras.layers), (fusedlstm, fusedlstm.layers)]


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "float64"])
def test_policy_objects_match_keras(keras, name):
    k, ours = keras.DTypePolicy(name), fusedlstm.DTypePolicy(name)
    assert (k.name, k.compute_dtype, k.variable_dtype) == (ours.name, ours.compute_dtype, ours.variable_dtype)
    assert repr(k) == repr(ours) and k.get_config() == ours.get_config()
    assert keras.dtype_policies.serialize(k) == fusedlstm.dtype_policies.serialize(ours)
    assert keras.dtype_policies.get(fusedlstm.dtype_policies.serialize(ours)) == k


def test_layer_dtypes_under_the_global_policy_match_keras(keras):
    seen = []
    for lib, L in _libs(keras):
        before = L.Dense(3)
        lib.mixed_precision.set_global_policy("mixed_bfloat16")
        after, head = L.LSTM(3), L.Dense(3, dtype="float32")
        given = L.Dense(2, dtype=lib.DTypePolicy("mixed_bfloat16"))
        assert lib.config.dtype_policy().name == lib.mixed_precision.global_policy().name == "mixed_bfloat16"
        lib.config.set_dtype_policy("float32")
        seen.append([(x.dtype_policy.name, x.compute_dtype, x.variable_dtype, x.dtype)
                     for x in (before, after, head, given)])
    assert seen[0] == seen[1]
    assert seen[1][1] == ("mixed_bfloat16", "bfloat16", "float32", "float32")


@pytest.mark.parametrize("bad", ["mixed_float64", "nonsense", 3, None])
def test_bad_policies_raise_keras_s_exception_types(keras, bad):
    kinds = []
    for make in (keras.DTypePolicy, fusedlstm.DTypePolicy):
        if bad is None:  # None is "the global policy" for the class, refused by set_global_policy
            make = keras.mixed_precision.set_global_policy if make is keras.DTypePolicy else \
                mixed_precision.set_global_policy
        with pytest.raises(Exception) as info:
            make(bad)
        kinds.append(type(info.value))
    assert kinds[0] is kinds[1]


def test_mixed_float16_keras_accepts_we_refuse(keras):
    assert keras.DTypePolicy("mixed_float16").compute_dtype == "float16"
    with pytest.raises(NotImplementedError, match="mixed_bfloat16"):
        mixed_precision.set_global_policy("mixed_float16")


def _mixed_model(lib, L):
    lib.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return lib.Sequential([
            L.Input((7,), dtype="int32"), L.Embedding(12, 8, mask_zero=True),
            L.LSTM(10, return_sequences=True), L.TimeDistributed(L.Dense(6)),
            L.Bidirectional(L.GRU(5)), L.Dense(4, activation="softmax", dtype="float32")])
    finally:
        lib.mixed_precision.set_global_policy("float32")


def _policies(model):
    out = []
    for layer in model.layers:
        out.append(layer.dtype_policy.name)
        inners = ("forward_layer", "backward_layer") if hasattr(layer, "forward_layer") else ("layer",)
        for inner in inners:
            if hasattr(layer, inner):
                out.append(f"{inner}:{getattr(layer, inner).dtype_policy.name}")
    return out


WANT = ["mixed_bfloat16", "mixed_bfloat16", "mixed_bfloat16", "layer:mixed_bfloat16", "mixed_bfloat16",
        "forward_layer:mixed_bfloat16", "backward_layer:mixed_bfloat16", "float32"]


def test_keras_mixed_file_loads_as_a_mixed_model(keras, tmp_path, rng):
    km = _mixed_model(keras, keras.layers)
    assert _policies(km) == WANT
    path = str(tmp_path / "k.keras")
    km.save(path)
    ours = fusedlstm.models.load_model(path)  # under our float32 global policy: the file decides
    assert _policies(ours) == WANT
    for a, b in zip(km.get_weights(), ours.get_weights()):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(a, np.float32), b)
    ids = rng.integers(0, 12, (5, 7)).astype(np.int32)
    # Keras computes every op in bfloat16, we only round GEMM operands: close, not equal.
    np.testing.assert_allclose(ours.predict(ids, verbose=0), np.asarray(km.predict(ids, verbose=0), np.float32),
                               atol=0.03)


def test_our_mixed_file_loads_in_keras_as_a_mixed_model(keras, tmp_path, rng):
    ours = _mixed_model(fusedlstm, fusedlstm.layers)
    ours.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in ours.get_weights()])
    path = str(tmp_path / "ours.keras")
    ours.save(path)
    km = keras.models.load_model(path, compile=False)
    assert _policies(km) == WANT
    for a, b in zip(ours.get_weights(), km.get_weights()):
        assert str(b.dtype) == "float32"
        np.testing.assert_array_equal(a, np.asarray(b))
