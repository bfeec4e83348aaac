"""Keras's mixed-precision API (mixed_bfloat16) and its plumbing to the kernels' precision=.

API: fusedlstm.mixed_precision / config / dtype_policies / DTypePolicy with Keras 3.15.1's
semantics (test_dtype_policy_keras.py checks them against real Keras). Plumbing: under the
policy every GEMM kernel call of a layer with a bfloat16 kernel passes precision='bfloat16'
(spied on at the _core boundary), a layer given dtype='float32' passes 'float32', and every
layer kind we support builds, predicts and trains with float32 weights and float32 outputs
close to the float32 model's.
"""

import re

import numpy as np
import pytest

import fusedlstm
from fusedlstm import _core, config, dtype_policies, mixed_precision
from fusedlstm.layers import (GRU, LSTM, RNN, Bidirectional, Conv1D, Dense, Embedding, GRUCell, Input,
                              LayerNormalization, SimpleRNN, TimeDistributed)
from fusedlstm.models import Sequential


@pytest.fixture(autouse=True)
def _reset_policy():
    """No test leaks its global policy into the next."""
    yield
    mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------

def test_names_and_aliases_are_keras_s():
    assert fusedlstm.DTypePolicy is dtype_policies.DTypePolicy is mixed_precision.DTypePolicy
    assert mixed_precision.Policy is fusedlstm.DTypePolicy and fusedlstm.FloatDTypePolicy is fusedlstm.DTypePolicy
    assert mixed_precision.global_policy is mixed_precision.dtype_policy is config.dtype_policy
    assert mixed_precision.set_global_policy is config.set_dtype_policy


@pytest.mark.parametrize("name, compute, variable", [("float32", "float32", "float32"),
                                                     ("mixed_bfloat16", "bfloat16", "float32"),
                                                     ("float64", "float64", "float64")])
def test_policy_dtypes(name, compute, variable):
    p = fusedlstm.DTypePolicy(name)
    assert (p.name, p.compute_dtype, p.variable_dtype) == (name, compute, variable)
    assert repr(p) == f'<DTypePolicy "{name}">'
    assert p.get_config() == {"name": name} and fusedlstm.DTypePolicy.from_config(p.get_config()) == p
    assert dtype_policies.serialize(p) == {"module": "keras", "class_name": "DTypePolicy",
                                           "config": {"name": name}, "registered_name": None}
    assert dtype_policies.get(dtype_policies.serialize(p)) == p
    assert dtype_policies.get(name) == p and dtype_policies.get(p) is p


def test_get_takes_numpy_dtypes_and_keras2_policy_dicts():
    assert dtype_policies.get(np.float32).name == "float32"
    assert dtype_policies.get(np.dtype("float64")).name == "float64"
    assert dtype_policies.get({"class_name": "Policy", "config": {"name": "mixed_bfloat16"}}).name == "mixed_bfloat16"


def test_global_policy_default_set_and_config_spelling():
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert config.dtype_policy() == fusedlstm.DTypePolicy("mixed_bfloat16")
    config.set_dtype_policy(fusedlstm.DTypePolicy("float32"))
    assert mixed_precision.global_policy().name == "float32"
    # DTypePolicy() with no name takes the global policy's.
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert fusedlstm.DTypePolicy().name == "mixed_bfloat16"


def test_global_policy_reaches_layers_made_after_it_and_float32_overrides():
    before = Dense(3)
    mixed_precision.set_global_policy("mixed_bfloat16")
    after, out = Dense(3), Dense(3, dtype="float32")
    given = Dense(3, dtype=fusedlstm.DTypePolicy("mixed_bfloat16"))
    mixed_precision.set_global_policy("float32")
    later = Dense(3)
    assert before.dtype_policy.name == "float32" and later.dtype_policy.name == "float32"
    assert after.dtype_policy.name == "mixed_bfloat16" and given.dtype_policy.name == "mixed_bfloat16"
    assert out.dtype_policy.name == "float32" and out.compute_dtype == "float32"
    # Keras 3: layer.dtype is the variable dtype; weights stay float32.
    assert (after.dtype, after.variable_dtype, after.compute_dtype) == ("float32", "float32", "bfloat16")
    y = after(np.ones((2, 4), np.float32))
    assert y.dtype == np.float32 and all(w.dtype == np.float32 for w in after.get_weights())


@pytest.mark.parametrize("name", ["mixed_float16", "float16", "bfloat16"])
def test_half_precision_policies_are_refused_pointing_to_mixed_bfloat16(name):
    for make in (lambda: fusedlstm.DTypePolicy(name), lambda: mixed_precision.set_global_policy(name),
                 lambda: LSTM(3, dtype=name), lambda: config.set_dtype_policy(name)):
        with pytest.raises(NotImplementedError, match="mixed_bfloat16"):
            make()
    assert mixed_precision.global_policy().name == "float32"


def test_bad_policies_get_keras_s_errors():
    with pytest.raises(ValueError, match="Cannot convert 'mixed_float64'"):
        fusedlstm.DTypePolicy("mixed_float64")
    with pytest.raises(ValueError, match="Cannot convert 'nonsense'"):
        fusedlstm.DTypePolicy("nonsense")
    with pytest.raises(TypeError, match="'name' must be a string"):
        fusedlstm.DTypePolicy(3)
    with pytest.raises(ValueError, match="Invalid `policy` argument"):
        mixed_precision.set_global_policy(None)
    with pytest.raises(NotImplementedError, match="'int32' is not supported"):
        Dense(2, dtype="int32")
    with pytest.raises(TypeError, match="argument `dtype`.*'nonsense'"):
        Dense(2, dtype="nonsense")


def test_float64_layers_still_work():
    layer = LSTM(3, dtype="float64")
    y = layer(np.ones((2, 4, 5)))
    assert (layer.dtype, layer.compute_dtype, y.dtype) == ("float64", "float64", np.float64)
    m = Sequential([Input((4, 5), dtype="float64"), LSTM(3, dtype="float64"), Dense(2, dtype="float64")])
    assert m.dtype == "float64" and m.dtype_policy.name == "float64"


def test_dtype_policy_setter():
    layer = Dense(3)
    layer.dtype_policy = "mixed_bfloat16"
    assert layer.compute_dtype == "bfloat16"
    layer(np.ones((1, 2), np.float32))
    layer.dtype_policy = "float32"  # same variable dtype: allowed once built
    with pytest.raises(ValueError, match="float32 weights.*'float64'"):
        layer.dtype_policy = "float64"


# ---------------------------------------------------------------------------------------------
# Plumbing: the precision every kernel call receives
# ---------------------------------------------------------------------------------------------

_SPIED = ("matmul", "dense_softmax_xent", "lstm_forward", "gru_forward", "simple_rnn_forward")


@pytest.fixture
def kernel_calls(monkeypatch):
    """[(kernel name, precision given)] of every GEMM kernel call from here on."""
    calls = []
    for name in _SPIED:
        real = getattr(_core, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs.get("precision", "float32")))
            return _real(*args, **kwargs)
        monkeypatch.setattr(_core, name, spy)
    return calls


def _chars_model(rnn, head_dtype=None):
    return Sequential([Input((9,), dtype="int32"), Embedding(30, 16), rnn,
                       Dense(7, activation="softmax", dtype=head_dtype)])


@pytest.mark.parametrize("rnn", [lambda: LSTM(32), lambda: GRU(32), lambda: SimpleRNN(32),
                                 lambda: Bidirectional(LSTM(16))], ids=["lstm", "gru", "simple_rnn", "bidirectional"])
def test_every_kernel_call_gets_bfloat16_under_the_policy(rnn, kernel_calls, rng):
    mixed_precision.set_global_policy("mixed_bfloat16")
    m = _chars_model(rnn())
    m.compile("adam", "sparse_categorical_crossentropy")
    ids = rng.integers(0, 30, (40, 9)).astype(np.int32)
    m.fit(ids, rng.integers(0, 7, 40), epochs=1, batch_size=20, verbose=0)
    m.predict(ids, verbose=0)
    kinds = {k for k, _ in kernel_calls}
    assert "dense_softmax_xent" in kinds and kinds & {"lstm_forward", "gru_forward", "simple_rnn_forward"}
    assert {p for _, p in kernel_calls} == {"bfloat16"}, kernel_calls


def test_float32_head_and_float32_model_keep_float32_calls(kernel_calls, rng):
    mixed_precision.set_global_policy("mixed_bfloat16")
    m = _chars_model(LSTM(32), head_dtype="float32")
    m.compile("adam", "sparse_categorical_crossentropy")
    ids = rng.integers(0, 30, (40, 9)).astype(np.int32)
    m.fit(ids, rng.integers(0, 7, 40), epochs=1, batch_size=20, verbose=0)
    assert ("dense_softmax_xent", "float32") in kernel_calls and ("lstm_forward", "bfloat16") in kernel_calls
    assert ("dense_softmax_xent", "bfloat16") not in kernel_calls
    mixed_precision.set_global_policy("float32")
    kernel_calls.clear()
    f = _chars_model(LSTM(32))
    f.predict(ids, verbose=0)
    assert kernel_calls and {p for _, p in kernel_calls} == {"float32"}


def test_mixed_dense_is_the_bfloat16_kernel(rng):
    """A mixed Dense computes exactly matmul(precision='bfloat16') (+ bias): the policy reaches the kernel."""
    x = rng.standard_normal((64, 48)).astype(np.float32)
    layer = Dense(40, dtype="mixed_bfloat16", bias_initializer="ones")
    y = layer(x)
    want = _core.matmul(x, layer.kernel.value, precision="bfloat16") + layer.bias.value
    np.testing.assert_array_equal(y, want)
    assert not np.array_equal(y, _core.matmul(x, layer.kernel.value) + layer.bias.value)


# ---------------------------------------------------------------------------------------------
# Every layer kind under the policy: float32 weights and outputs, close to the float32 model
# ---------------------------------------------------------------------------------------------

# Largest |mixed - float32| / max|float32| measured over seeds 0-19 (bfloat16 GEMMs in every
# kind below, AVX512-BF16 level): predictions 5.3e-3 (simple-rnn; the LSTM kinds <= 1.5e-3),
# per-epoch loss over 3 SGD steps 1.2e-3 relative (simple-rnn; the others <= 1.7e-4).
PREDICT_TOL = 1.5e-2
LOSS_TOL = 5e-3

T, V = 11, 25


def _ids(rng, B=32, zeros=True):
    ids = rng.integers(1, V, (B, T)).astype(np.int32)
    if zeros:  # padded tails for the masking layers
        for b in range(B):
            ids[b, rng.integers(T // 2, T + 1):] = 0
    return ids


MODELS = {
    "lstm-mask": lambda: [Input((T,), dtype="int32"), Embedding(V, 24, mask_zero=True),
                          LSTM(40, return_sequences=True), LSTM(32), Dense(5, activation="softmax")],
    "lstm-go-backwards": lambda: [Input((T,), dtype="int32"), Embedding(V, 24), LSTM(40, go_backwards=True),
                                  Dense(5, activation="softmax")],
    "bidirectional": lambda: [Input((T,), dtype="int32"), Embedding(V, 24, mask_zero=True),
                              Bidirectional(LSTM(24, return_sequences=True)), Bidirectional(GRU(20), merge_mode="sum"),
                              Dense(5, activation="softmax")],
    "time-distributed": lambda: [Input((T,), dtype="int32"), Embedding(V, 24), LSTM(40, return_sequences=True),
                                 TimeDistributed(Dense(30, activation="tanh")), TimeDistributed(Dense(5, activation="softmax"))],
    "gru": lambda: [Input((T,), dtype="int32"), Embedding(V, 24, mask_zero=True), GRU(40), Dense(5, activation="softmax")],
    "rnn-cell": lambda: [Input((T,), dtype="int32"), Embedding(V, 24, mask_zero=True), RNN(GRUCell(40)),
                         Dense(5, activation="softmax")],
    "simple-rnn": lambda: [Input((T,), dtype="int32"), Embedding(V, 24), SimpleRNN(40), Dense(5, activation="softmax")],
    "conv-norm": lambda: [Input((T,), dtype="int32"), Embedding(V, 24), Conv1D(32, 3, padding="same", activation="relu"),
                          LayerNormalization(), LSTM(32), Dense(5, activation="softmax")],
    "dense-input": lambda: [Input((T, 20)), LSTM(48), Dense(64, activation="relu"), Dense(5, activation="softmax")],
}


def _pair(kind, rng):
    f32 = Sequential(MODELS[kind]())
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = Sequential(MODELS[kind]())
    mixed_precision.set_global_policy("float32")
    f32.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype(np.float32) for w in f32.get_weights()])
    mixed.set_weights(f32.get_weights())
    return f32, mixed


def _data(kind, rng):
    x = rng.standard_normal((32, T, 20)).astype(np.float32) if kind == "dense-input" else _ids(rng)
    y = rng.integers(0, 5, (32, T) if kind == "time-distributed" else 32)
    return x, y


@pytest.mark.parametrize("kind", list(MODELS))
def test_layer_kinds_predict_and_train_close_to_float32(kind, rng):
    f32, mixed = _pair(kind, rng)
    assert all(l.dtype_policy.name == "mixed_bfloat16" for l in mixed.layers)
    x, y = _data(kind, rng)
    pf, pm = f32.predict(x, verbose=0), mixed.predict(x, verbose=0)
    assert pm.dtype == np.float32
    assert np.max(np.abs(pm - pf)) <= PREDICT_TOL * np.max(np.abs(pf))
    assert not np.array_equal(pm, pf)  # the bfloat16 products did run
    losses = []
    for m in (f32, mixed):
        m.compile(fusedlstm.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        losses.append(m.fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False).history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=LOSS_TOL)
    assert all(w.dtype == np.float32 for w in mixed.get_weights())


def test_stateful_lstm_under_the_policy(rng):
    def make():
        return Sequential([Input(batch_shape=(4, 5, 6)), LSTM(32, stateful=True, return_sequences=True),
                           LSTM(16, stateful=True), Dense(3)])
    f32 = make()
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = make()
    mixed.set_weights(f32.get_weights())
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    for _ in range(3):  # the carried state goes through the bfloat16 products too
        pf, pm = f32.predict(x, verbose=0), mixed.predict(x, verbose=0)
        assert pm.dtype == np.float32 and np.max(np.abs(pm - pf)) <= PREDICT_TOL * np.max(np.abs(pf))
    states = mixed.layers[0].states
    assert all(s.dtype == np.float32 for s in states)


# ---------------------------------------------------------------------------------------------
# Bad input: the same errors as in float32
# ---------------------------------------------------------------------------------------------

def _normalized(msg):
    return re.sub(r"'(sequential|lstm|dense)(_\d+)?'", "'NAME'", msg)


BAD_CALLS = {
    "model-features": lambda m, rng: m.predict(np.ones((2, T, 7), np.float32), verbose=0),
    "model-rank": lambda m, rng: m.predict(np.ones((2, T), np.float32), verbose=0),
    "model-nan": lambda m, rng: m.predict(np.full((2, T, 20), np.nan, np.float32), verbose=0),
    "fit-labels": lambda m, rng: m.fit(np.ones((4, T, 20), np.float32), np.full(4, 9), verbose=0),
    "layer-features": lambda m, rng: m.layers[0](np.ones((2, T, 7), np.float32)),
    "layer-inf": lambda m, rng: LSTM(3)(np.full((2, T, 4), np.inf, np.float32)),
    "dense-rank": lambda m, rng: Dense(3)(np.ones(4, np.float32)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_gets_the_same_error(case, rng):
    errors = []
    for policy in ("float32", "mixed_bfloat16"):
        mixed_precision.set_global_policy(policy)
        m = Sequential(MODELS["dense-input"]())
        m.compile("sgd", "sparse_categorical_crossentropy")
        m.predict(np.zeros((1, T, 20), np.float32), verbose=0)
        with pytest.raises(Exception) as info:
            BAD_CALLS[case](m, rng)
        errors.append((type(info.value), _normalized(str(info.value))))
    assert errors[0] == errors[1]
    assert errors[0][0] in (ValueError, TypeError)


# ---------------------------------------------------------------------------------------------
# Configs and files
# ---------------------------------------------------------------------------------------------

def test_config_round_trip_keeps_each_layer_s_policy(rng, tmp_path):
    mixed_precision.set_global_policy("mixed_bfloat16")
    m = Sequential([Input((T,), dtype="int32"), Embedding(V, 8), Bidirectional(LSTM(6)),
                    Dense(5, activation="softmax", dtype="float32")])
    cfg = m.get_config()
    assert [c["config"]["dtype"] for c in cfg["layers"]] == ["mixed_bfloat16", "mixed_bfloat16", "float32"]
    mixed_precision.set_global_policy("float32")  # the config, not the global policy, decides
    back = Sequential.from_config(cfg)
    names = [l.dtype_policy.name for l in back.layers]
    assert names == ["mixed_bfloat16", "mixed_bfloat16", "float32"]
    assert back.layers[1].forward_layer.dtype_policy.name == "mixed_bfloat16"
    assert back.layers[1].backward_layer.dtype_policy.name == "mixed_bfloat16"
    # Our file format keeps them too, with float32 weights.
    x = _ids(rng)
    path = str(tmp_path / "m.fusedlstm")
    m.save(path)
    loaded = fusedlstm.models.load_model(path)
    assert [l.dtype_policy.name for l in loaded.layers] == names
    assert all(w.dtype == np.float32 for w in loaded.get_weights())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), m.predict(x, verbose=0))
    # A Keras-style DTypePolicy dict is taken as the layer's dtype too.
    d = Dense.from_config(dict(Dense(3).get_config(), dtype=dtype_policies.serialize(fusedlstm.DTypePolicy("mixed_bfloat16"))))
    assert d.dtype_policy.name == "mixed_bfloat16"


def test_keras_file_written_by_us_carries_the_policy(rng, tmp_path):
    """The .keras writer's layer configs hold Keras's DTypePolicy dicts (Keras itself reads them in
    test_dtype_policy_keras.py); mixed_float16 in a file is refused naming mixed_bfloat16."""
    import json
    import zipfile
    pytest.importorskip("h5py")  # the .keras weights are HDF5 (test_dtype_policy_keras requires it)
    mixed_precision.set_global_policy("mixed_bfloat16")
    m = Sequential([Input((T,), dtype="int32"), Embedding(V, 8), TimeDistributed(Dense(4)), LSTM(6),
                    Dense(5, activation="softmax", dtype="float32")])
    path = str(tmp_path / "m.keras")
    m.save(path)
    cfg = json.loads(zipfile.ZipFile(path).read("config.json"))
    layers = cfg["config"]["layers"][1:]
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"},
              "registered_name": None}
    assert [l["config"]["dtype"] for l in layers[:3]] == [policy] * 3
    assert layers[1]["config"]["layer"]["config"]["dtype"] == policy
    assert layers[3]["config"]["dtype"]["config"]["name"] == "float32"
    mixed_precision.set_global_policy("float32")
    back = fusedlstm.models.load_model(path)
    assert [l.dtype_policy.name for l in back.layers] == ["mixed_bfloat16"] * 3 + ["float32"]
    assert back.layers[1].layer.dtype_policy.name == "mixed_bfloat16"


def test_keras_config_with_mixed_float16_is_refused():
    from fusedlstm.io.layer_rules import UnsupportedModelError
    from fusedlstm.io.model_config import parse_layer_config
    cfg = {"class_name": "Dense", "config": {"name": "d", "units": 3, "dtype": {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}, "registered_name": None}}}
    with pytest.raises(UnsupportedModelError, match="'mixed_float16' is not supported.*mixed_bfloat16"):
        parse_layer_config(cfg, source="x.keras")
    cfg["config"]["dtype"]["config"]["name"] = "mixed_bfloat16"
    assert parse_layer_config(cfg, source="x.keras").dtype == "mixed_bfloat16"
