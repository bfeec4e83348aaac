"""save / load_model / save_weights / load_weights: our NumPy-only format and suffix dispatch."""

import json
import zipfile

import numpy as np
import pytest
from conftest import require

from fusedlstm import saving
from fusedlstm.layers import (LSTM, Bidirectional, Dense, Dropout, Embedding, Input, RepeatVector,
                              TimeDistributed)
from fusedlstm.models import Model, Sequential, load_model
from fusedlstm.optimizers import Adam
from fusedlstm.utils import set_random_seed


def _seq2seq():
    ei = Input((None, 4))
    _, h, c = LSTM(6, return_state=True)(ei)
    di = Input((None, 5))
    y, _, _ = LSTM(6, return_sequences=True, return_state=True)(di, initial_state=[h, c])
    return Model([ei, di], Dense(5, activation="softmax")(y))


def test_sequential_roundtrip_with_optimizer_state(tmp_path, rng, seed):
    m = Sequential([Input((7,), dtype="int32"), Embedding(20, 4, mask_zero=True),
                    Bidirectional(LSTM(5, return_sequences=True), merge_mode="sum"), Dropout(0.1),
                    TimeDistributed(Dense(20, activation="softmax"))])
    m.compile(Adam(0.01, clipnorm=1.0), "sparse_categorical_crossentropy", metrics=["acc"])
    ids = rng.integers(0, 20, (16, 7))
    m.fit(ids, ids, epochs=2, verbose=0)
    path = tmp_path / "model.fusedlstm"
    m.save(path)
    r = load_model(path)
    assert [type(l).__name__ for l in r.layers] == [type(l).__name__ for l in m.layers]
    np.testing.assert_array_equal(r.predict(ids, verbose=0), m.predict(ids, verbose=0))
    assert r.optimizer.iterations == m.optimizer.iterations and r.optimizer.clipnorm == 1.0
    # training resumes exactly where it stopped (Adam moments restored; same dropout draws)
    set_random_seed(seed)
    a = m.train_on_batch(ids, ids)
    set_random_seed(seed)
    b = r.train_on_batch(ids, ids)
    assert a == b
    for u, v in zip(m.get_weights(), r.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_functional_roundtrip_and_uncompiled(tmp_path, rng):
    m = _seq2seq()
    path = tmp_path / "s2s.fusedlstm"
    m.save(path)
    r = load_model(path)
    xs = [rng.standard_normal((3, 4, 4)).astype("float32"), rng.standard_normal((3, 2, 5)).astype("float32")]
    np.testing.assert_array_equal(r.predict(xs, verbose=0), m.predict(xs, verbose=0))
    assert not r.compiled


def test_repeat_vector_model_roundtrip(tmp_path, rng):
    m = Sequential([Input((3,)), RepeatVector(4), LSTM(2, return_sequences=True, go_backwards=True)])
    m.save(tmp_path / "r.fusedlstm")
    x = rng.standard_normal((2, 3)).astype("float32")
    np.testing.assert_array_equal(load_model(tmp_path / "r.fusedlstm").predict(x, verbose=0), m.predict(x, verbose=0))


def test_weights_roundtrip_and_mismatch(tmp_path):
    a = Sequential([Input((3, 2)), LSTM(4), Dense(1)])
    b = Sequential([Input((3, 2)), LSTM(4), Dense(1)])
    a.save_weights(tmp_path / "w.weights.npz")
    b.load_weights(tmp_path / "w.weights.npz")
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    c = Sequential([Input((3, 2)), LSTM(5), Dense(1)])
    with pytest.raises(ValueError, match="shape"):
        c.load_weights(tmp_path / "w.weights.npz")
    a.save(tmp_path / "full.fusedlstm")
    b.load_weights(tmp_path / "full.fusedlstm")  # the weights of a whole-model file


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "w.weights.h5"])
def test_keras_suffixes_dispatch_to_the_keras_formats(tmp_path, name, rng):
    """model.save / save_weights / load_model / load_weights pick Keras's formats by suffix."""
    require("h5py", "h5")
    m = Sequential([Input((3, 2)), LSTM(2), Dense(3, activation="softmax")])
    x = rng.standard_normal((4, 3, 2)).astype("float32")
    weights_only = name.startswith("w.")
    (m.save_weights if weights_only else m.save)(tmp_path / name)
    if weights_only:
        other = Sequential([Input((3, 2)), LSTM(2), Dense(3, activation="softmax")])
        other.load_weights(tmp_path / name)
    else:
        other = load_model(tmp_path / name)
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))


def test_unknown_suffix_and_missing_file(tmp_path):
    m = Sequential([Input((3, 2)), LSTM(2)])
    with pytest.raises(ValueError, match=r"\.fusedlstm"):
        m.save(tmp_path / "model.pkl")
    with pytest.raises(ValueError, match=r"\.weights\.npz"):
        m.save_weights(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.fusedlstm")
    m.save(tmp_path / "x.fusedlstm")
    with pytest.raises(FileExistsError):
        m.save(tmp_path / "x.fusedlstm", overwrite=False)


def _rewrite_config(src, dst, edit):
    arrays = dict(np.load(src, allow_pickle=False))
    meta = json.loads(arrays["__model__"].tobytes())
    edit(meta)
    arrays["__model__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    # Re-sealed with a valid checksum: the loader must refuse the content itself.
    arrays.pop(saving.INTEGRITY_KEY, None)
    saving.write_npz(dst, arrays)


def test_unknown_or_lambda_layer_class_is_refused(tmp_path):
    m = Sequential([Input((3, 2)), LSTM(2), Dense(1)])
    m.save(tmp_path / "ok.fusedlstm")

    def to_lambda(meta):
        meta["config"]["layers"][1] = {"class_name": "Lambda", "config": {"function": "os.system"}}

    _rewrite_config(tmp_path / "ok.fusedlstm", tmp_path / "bad.fusedlstm.npz", to_lambda)
    (tmp_path / "bad.fusedlstm.npz").rename(tmp_path / "bad.fusedlstm")
    with pytest.raises(NotImplementedError, match="Lambda"):
        load_model(tmp_path / "bad.fusedlstm")


def test_pickled_payloads_are_never_loaded(tmp_path):
    path = tmp_path / "evil.fusedlstm"
    np.savez(path.with_suffix(".npz"), __model__=np.array([{"x": 1}], dtype=object))
    path.with_suffix(".npz").rename(path)
    with pytest.raises(ValueError, match="not a fusedlstm file|pickle"):
        load_model(path)
    (tmp_path / "junk.fusedlstm").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a fusedlstm file"):
        load_model(tmp_path / "junk.fusedlstm")


def test_file_is_a_plain_npz_with_json(tmp_path):
    m = Sequential([Input((3, 2)), LSTM(2)])
    m.save(tmp_path / "m.fusedlstm")
    with zipfile.ZipFile(tmp_path / "m.fusedlstm") as z:
        names = set(z.namelist())
    assert {"__model__.npy", "w0000.npy", "w0001.npy", "w0002.npy"} <= names
    meta = json.loads(np.load(tmp_path / "m.fusedlstm", allow_pickle=False)["__model__"].tobytes())
    assert meta["format"] == "fusedlstm" and meta["version"] == saving.FORMAT_VERSION
