"""Weights packed once per model for inference: the same numbers as packing per call,
reused while the weights stay, repacked after every way a weight can be written.

The recurrent layers keep U packed for the forward kernel (layers/recurrent.py
`_packed_recurrent`) and the Embedding -> LSTM step keeps its E·W table (models/fusion.py)
keyed by variables.write_version; `.value` is read-only so no write can bypass it.
"""

import os

import numpy as np
import pytest

import fusedlstm
from fusedlstm import _core
from fusedlstm.layers import GRU, LSTM, Dense, Embedding, Input, SimpleRNN, TimeDistributed
from fusedlstm.models import Sequential
from fusedlstm.variables import write_version

B, T, I, H = 3, 5, 4, 7


def _data(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, I)).astype(dtype)


def _rnn_model(cls, dtype="float32", **kw):
    m = Sequential([Input((T, I), dtype=dtype), cls(H, return_sequences=True, dtype=dtype, **kw),
                    Dense(2, dtype=dtype)])
    m.compile(optimizer="adam", loss="mse")
    m._test_build = (cls, dtype, kw)
    return m


def _fresh_prediction(model, x):
    """What a new model with the same weights predicts when it packs U per call."""
    cls, dtype, kw = model._test_build
    twin = _rnn_model(cls, dtype, **kw)
    twin.set_weights(model.get_weights())
    twin.layers[0]._cell_kind = None  # the layer then passes no packing: the kernel packs per call
    out = twin.predict(x, verbose=0)
    assert twin.layers[0]._packed is None
    return out


CELLS = [(LSTM, {}), (GRU, {}), (GRU, {"reset_after": False}), (SimpleRNN, {})]
CELL_IDS = ["lstm", "gru", "gru_reset_before", "simple_rnn"]


# ---- the kernel: packed_U gives the numbers of packing per call, bitwise -------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_before", "simple_rnn"])
def test_kernel_packed_u_is_bitwise_the_per_call_packing(cell, dtype):
    rng = np.random.default_rng(1)
    for Hh in (1, 7, 16, 33):
        g = {"lstm": 4, "gru": 3, "gru_before": 3, "simple_rnn": 1}[cell]
        x = rng.standard_normal((B, T, I)).astype(dtype)
        W = rng.standard_normal((I, g * Hh)).astype(dtype) * 0.3
        U = rng.standard_normal((Hh, g * Hh)).astype(dtype) * 0.3
        h0 = rng.standard_normal((B, Hh)).astype(dtype)
        if cell == "lstm":
            b = rng.standard_normal(4 * Hh).astype(dtype)
            args = (x, W, U, b, h0, h0.copy())
            fn, kind, kw = _core.lstm_forward, "lstm", {}
        elif cell.startswith("gru"):
            after = cell == "gru"
            b = rng.standard_normal((2, 3 * Hh) if after else 3 * Hh).astype(dtype)
            args = (x, W, U, b, h0)
            fn, kind, kw = _core.gru_forward, "gru", {"reset_after": after}
        else:
            b = rng.standard_normal(Hh).astype(dtype)
            args = (x, W, U, b, h0)
            fn, kind, kw = _core.simple_rnn_forward, "simple_rnn", {}
        packed = _core.pack_recurrent_kernel(U, kind, **kw)
        assert packed.H == Hh and packed.cell == kind and packed.dtype == dtype and packed.nbytes > 0
        plain = fn(*args, **kw)
        for _ in range(2):  # the packing is only read: reusable
            again = fn(*args, packed_U=packed, **kw)
            for a, c in zip(plain[:-1], again[:-1]):
                np.testing.assert_array_equal(a, c)


def test_kernel_packed_u_bad_input_names_what_differs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    W = rng.standard_normal((4, 20)).astype("float32")
    U = rng.standard_normal((5, 20)).astype("float32")
    h = np.zeros((2, 5), "float32")
    with pytest.raises(TypeError, match="packed_U must be a PackedRecurrentKernel"):
        _core.lstm_forward(x, W, U, None, h, h, packed_U=U)
    with pytest.raises(ValueError, match="packed for cell 'simple_rnn', not 'lstm'"):
        _core.lstm_forward(x, W, U, None, h, h,
                           packed_U=_core.pack_recurrent_kernel(np.zeros((5, 5), "float32"), "simple_rnn"))
    with pytest.raises(ValueError, match="packed_U is float64 but the call is float32"):
        _core.lstm_forward(x, W, U, None, h, h, packed_U=_core.pack_recurrent_kernel(U.astype("float64"), "lstm"))
    with pytest.raises(ValueError, match="packed_U has H = 4 but U has H = 5"):
        _core.lstm_forward(x, W, U, None, h, h,
                           packed_U=_core.pack_recurrent_kernel(np.zeros((4, 16), "float32"), "lstm"))
    Ug = rng.standard_normal((5, 15)).astype("float32")
    with pytest.raises(ValueError, match="reset_after=False but the call has reset_after=True"):
        _core.gru_forward(x, rng.standard_normal((4, 15)).astype("float32"), Ug, None, h,
                          packed_U=_core.pack_recurrent_kernel(Ug, "gru", reset_after=False))
    with pytest.raises(ValueError, match="cell must be 'lstm', 'gru' or 'simple_rnn', got 'rnn'"):
        _core.pack_recurrent_kernel(U, "rnn")
    with pytest.raises(ValueError, match=r"U must have shape \(H, 4H\) = \(5, 20\), got \(5, 21\)"):
        _core.pack_recurrent_kernel(np.zeros((5, 21), "float32"), "lstm")
    with pytest.raises(TypeError, match="U"):
        _core.pack_recurrent_kernel(np.zeros((5, 20), "int32"), "lstm")


# ---- bfloat16 products: a kept packing serves only calls that choose its level ----------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_before", "simple_rnn"])
def test_kernel_packed_u_under_bfloat16_is_bitwise_the_per_call_packing(cell):
    """Packed at the call's precision and batch: reused. Packed for another level (float32,
    or a batch below bfloat16's size rule: precision.h, K >= 16 and M·N·K >= 32768, here
    H = 16 and 128 rows against 1): the call packs its own, so the numbers never change."""
    rng = np.random.default_rng(5)
    Bb, Hh = 128, 16
    g = {"lstm": 4, "gru": 3, "gru_before": 3, "simple_rnn": 1}[cell]
    kind = "gru" if cell.startswith("gru") else cell
    kw = {"reset_after": cell == "gru"} if kind == "gru" else {}
    x = rng.standard_normal((Bb, T, I)).astype("float32")
    W = (0.3 * rng.standard_normal((I, g * Hh))).astype("float32")
    U = (0.3 * rng.standard_normal((Hh, g * Hh))).astype("float32")
    h0 = rng.standard_normal((Bb, Hh)).astype("float32")
    fn = getattr(_core, f"{kind}_forward")
    args = (x, W, U, None, h0) + ((h0.copy(),) if kind == "lstm" else ())
    plain = fn(*args, precision="bfloat16", **kw)
    assert not np.array_equal(plain[0], fn(*args, **kw)[0])  # the bfloat16 products are in use
    for packing in (dict(precision="bfloat16", batch=Bb), dict(precision="float32"),
                    dict(precision="bfloat16", batch=1)):
        packed = _core.pack_recurrent_kernel(U, kind, **kw, **packing)
        assert (packed.precision, packed.batch) == (packing["precision"], packing.get("batch", 1))
        again = fn(*args, precision="bfloat16", packed_U=packed, **kw)
        for a, c in zip(plain[:-1], again[:-1]):
            np.testing.assert_array_equal(a, c, err_msg=str(packing))
    with pytest.raises(ValueError, match="precision"):
        _core.pack_recurrent_kernel(U, kind, precision="float16", **kw)
    with pytest.raises(TypeError, match="bfloat16.*float32"):
        _core.pack_recurrent_kernel(U.astype("float64"), kind, precision="bfloat16", **kw)
    with pytest.raises(ValueError, match="batch"):
        _core.pack_recurrent_kernel(U, kind, precision="bfloat16", batch=0, **kw)


@pytest.mark.parametrize("cls,kw", CELLS, ids=CELL_IDS)
def test_mixed_policy_predict_keeps_a_bfloat16_packing(cls, kw):
    x = np.random.default_rng(6).standard_normal((40, T, 16)).astype("float32")

    def build():
        m = Sequential([Input((T, 16)), cls(16, return_sequences=True, dtype="mixed_bfloat16", **kw), Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        return m
    m = build()
    first = m.predict(x, batch_size=40, verbose=0)
    kept = m.layers[0]._packed
    assert kept[2] == "bfloat16" and kept[-1].precision == "bfloat16" and kept[-1].batch == 40
    np.testing.assert_array_equal(m.predict(x, batch_size=40, verbose=0), first)
    assert m.layers[0]._packed[-1] is kept[-1]
    twin = build()
    twin.set_weights(m.get_weights())
    twin.layers[0]._cell_kind = None  # packs per call
    np.testing.assert_array_equal(twin.predict(x, batch_size=40, verbose=0), first)
    m.layers[0].dtype_policy = "float32"  # another precision: packed again, float32 numbers
    f32 = m.predict(x, batch_size=40, verbose=0)
    assert m.layers[0]._packed[2] == "float32" and not np.array_equal(f32, first)


# ---- the layers: kept while the weights stay, numbers unchanged ------------------------------

@pytest.mark.parametrize("cls,kw", CELLS, ids=CELL_IDS)
def test_predict_reuses_the_packing_and_matches_packing_per_call(cls, kw):
    m = _rnn_model(cls, **kw)
    x = _data()
    first = m.predict(x, verbose=0)
    packed = m.layers[0]._packed[-1]
    second = m.predict(x, verbose=0)
    assert m.layers[0]._packed[-1] is packed  # not repacked
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, _fresh_prediction(m, x))
    np.testing.assert_array_equal(np.asarray(m(x)), first)


def test_training_calls_do_not_use_or_keep_a_packing():
    m = _rnn_model(LSTM)
    x, y = _data(), np.zeros((B, T, 2), "float32")
    m.train_on_batch(x, y)
    assert m.layers[0]._packed is None


def _write_paths():
    """(name, function(model) that changes the LSTM's weights some way)."""
    def set_weights(m):
        m.set_weights([w * 0.5 for w in m.get_weights()])

    def layer_set_weights(m):
        m.layers[0].set_weights([w + 0.1 for w in m.layers[0].get_weights()])

    def assign(m):
        v = m.layers[0].recurrent_kernel
        v.assign(v.numpy() * -1.0)

    def train_on_batch(m):
        m.train_on_batch(_data(3), np.ones((B, T, 2), "float32"))

    def fit(m):
        m.fit(_data(4), np.ones((B, T, 2), "float32"), epochs=1, verbose=0)

    def optimizer_apply(m):
        opt = fusedlstm.optimizers.SGD(0.5)
        vs = m.layers[0].trainable_weights
        opt.apply_gradients([(np.ones(v.shape, "float32"), v) for v in vs])

    def load_weights(m, tmp):
        other = _rnn_model(LSTM)
        p = os.path.join(tmp, "w.weights.h5")
        try:
            other.save_weights(p)
        except ImportError:
            pytest.skip("h5py missing")
        m.load_weights(p)

    def set_training_state(m):  # what resume restores
        other = _rnn_model(LSTM)
        other.train_on_batch(_data(6), np.ones((B, T, 2), "float32"))
        m.train_on_batch(_data(6), np.ones((B, T, 2), "float32"))
        m.predict(_data(), verbose=0)
        m.set_training_state(other.get_training_state())

    def constraint_after_step(m):
        m.layers[0].recurrent_kernel.constraint = lambda w: np.clip(w, -0.01, 0.01)
        m.train_on_batch(_data(5), np.ones((B, T, 2), "float32"))

    return [set_weights, layer_set_weights, assign, train_on_batch, fit, optimizer_apply, load_weights,
            set_training_state, constraint_after_step]


@pytest.mark.parametrize("write", _write_paths(), ids=lambda f: f.__name__)
def test_every_write_path_invalidates_the_packing(write, tmp_path):
    m = _rnn_model(LSTM)
    x = _data()
    before = m.predict(x, verbose=0)
    write(m, str(tmp_path)) if write.__name__ == "load_weights" else write(m)
    after = m.predict(x, verbose=0)
    assert not np.array_equal(before, after)  # the write changed the weights ...
    np.testing.assert_array_equal(after, _fresh_prediction(m, x))  # ... and predict sees them


def test_the_live_weight_arrays_are_read_only():
    m = _rnn_model(LSTM)
    m.predict(_data(), verbose=0)
    v = m.layers[0].recurrent_kernel
    with pytest.raises(ValueError, match="read-only"):
        v.value[...] = 0
    with pytest.raises(ValueError, match="read-only"):
        v.value += 1
    got = v.numpy()  # a copy: writing it changes nothing
    got[...] = 0
    assert np.any(v.value != 0)
    w = m.get_weights()[1]
    w[...] = 0
    assert np.any(v.value != 0)
    # after a training step (the values live in the flat buffer) still read-only
    m.train_on_batch(_data(), np.zeros((B, T, 2), "float32"))
    with pytest.raises(ValueError, match="read-only"):
        m.layers[0].recurrent_kernel.value[0, 0] = 1.0
    # a new array bound to the variable is read-only too, and used by the next predict
    mine = np.full(v.shape, 0.01, "float32")
    before = m.predict(_data(), verbose=0)
    v.value = mine
    assert mine.flags.writeable and not v.value.flags.writeable
    mine[...] = 7.0  # the variable holds a copy: the caller's array stays the caller's
    assert np.all(v.value == np.float32(0.01))
    with pytest.raises(ValueError, match="read-only"):
        v.value[...] = 0
    after = m.predict(_data(), verbose=0)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, _fresh_prediction(m, _data()))
    # training after the rebinding trains the new array (the model re-claims it)
    m.train_on_batch(_data(), np.ones((B, T, 2), "float32"))
    assert np.any(v.value != np.float32(0.01))


def test_write_version_counts_each_write():
    m = _rnn_model(LSTM)
    v0 = write_version()
    m.layers[0].kernel.assign(m.layers[0].kernel.numpy())
    assert write_version() > v0


# ---- Embedding -> LSTM: the kept table -------------------------------------------------------

def _char_models(V=11, D=5, units=6, seed=0):
    def build(stateful, batch):
        m = Sequential([Input(batch_shape=(batch, None), dtype="int32"), Embedding(V, D),
                        LSTM(units, return_sequences=True, stateful=stateful),
                        TimeDistributed(Dense(V, activation="softmax"))])
        return m
    full = build(False, 2)
    stream = build(True, 2)
    rng = np.random.default_rng(seed)
    stream.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.4 for w in stream.get_weights()])
    full.set_weights(stream.get_weights())
    return full, stream, rng


def test_streaming_steps_equal_the_whole_sequence_and_follow_weight_changes():
    full, stream, rng = _char_models()
    ids = rng.integers(0, 11, (2, 9)).astype("int32")
    want = full.predict(ids, verbose=0)
    got = np.concatenate([stream.predict_on_batch(ids[:, t:t + 1]) for t in range(9)], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    fused = [s.op for s in stream._plan.steps if hasattr(s.op, "_kept")]
    assert fused and fused[0]._kept is not None  # the table was made and kept
    table = fused[0]._kept[3][0]
    stream.predict_on_batch(ids[:, :1])
    assert fused[0]._kept[3][0] is table  # reused
    # change the embeddings: the next step must use the new table
    E = stream.layers[0].embeddings
    E.assign(E.numpy()[::-1].copy())
    full.set_weights(stream.get_weights())
    stream.reset_states()
    want = full.predict(ids, verbose=0)
    got = np.concatenate([stream.predict_on_batch(ids[:, t:t + 1]) for t in range(9)], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_streaming_bad_ids_still_raise():
    _, stream, _ = _char_models()
    for _ in range(3):
        stream.predict_on_batch(np.zeros((2, 1), "int32"))
    with pytest.raises(ValueError, match=r"received token id 11 at position \(1, 0\); ids must lie in \[0, input_dim=11\)"):
        stream.predict_on_batch(np.array([[0], [11]], "int32"))
    with pytest.raises(ValueError, match="non-integral value 0.5"):
        stream.predict_on_batch(np.array([[0], [0.5]]))
    with pytest.raises(ValueError, match="stateful with batch size 2"):
        stream.predict_on_batch(np.zeros((3, 1), "int32"))


# ---- Stream: one step per call, the numbers and states of predict_on_batch -------------------

def _stream_model(cls=LSTM, stacked=False, V=13, dense_input=False, seed=3, mask_zero=False):
    from fusedlstm.models import Sequential as Seq
    layers = [Input(batch_shape=(2, None, 4)) if dense_input else Input(batch_shape=(2, None), dtype="int32")]
    if not dense_input:
        layers.append(Embedding(V, 5, mask_zero=mask_zero))
    layers.append(cls(6, return_sequences=True, stateful=True))
    if stacked:
        layers.append(cls(4, return_sequences=True, stateful=True))
    layers.append(TimeDistributed(Dense(V, activation="softmax")))
    m = Seq(layers)
    rng = np.random.default_rng(seed)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.4 for w in m.get_weights()])
    return m, rng


def _inputs(rng, n, dense_input, V=13):
    if dense_input:
        return [rng.standard_normal((2, 1, 4)).astype("float32") for _ in range(n)]
    return [rng.integers(0, V, (2, 1)).astype("int32") for _ in range(n)]


@pytest.mark.parametrize("cls,stacked,dense_input,mask_zero", [
    (LSTM, False, False, False), (LSTM, True, False, False), (GRU, False, False, False),
    (SimpleRNN, False, False, False), (LSTM, False, True, False), (LSTM, False, False, True)],
    ids=["lstm", "lstm_stacked", "gru", "simple_rnn", "lstm_dense_input", "lstm_mask_zero"])
def test_stream_equals_predict_on_batch_bitwise(cls, stacked, dense_input, mask_zero):
    from fusedlstm.models import Stream
    m, rng = _stream_model(cls, stacked, dense_input=dense_input, mask_zero=mask_zero)
    xs = _inputs(rng, 12, dense_input)
    want = [m.predict_on_batch(x) for x in xs]
    m.reset_states()
    s = Stream(m, exact=True)
    assert s.uses_kernel
    got = [s.step(x) for x in xs]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # the states are the model's: stream steps and predict_on_batch calls continue each other
    s.reset_states()
    mixed = [s.step(x) if k % 2 else m.predict_on_batch(x) for k, x in enumerate(xs)]
    for g, w in zip(mixed, want):
        np.testing.assert_array_equal(g, w)
    m.reset_states()
    np.testing.assert_array_equal(s(xs[0]), want[0])  # calling the stream is step()


def test_stream_follows_weight_changes():
    from fusedlstm.models import Stream
    m, rng = _stream_model()
    xs = _inputs(rng, 6, False)
    s = Stream(m, exact=True)
    for x in xs[:3]:
        s.step(x)
    new = [w * 0.7 for w in m.get_weights()]
    m.set_weights(new)
    twin, _ = _stream_model()
    twin.set_weights(new)
    twin.layers[1].reset_states([st.copy() for st in m.layers[1].states])
    for x in xs[3:]:
        np.testing.assert_array_equal(s.step(x), twin.predict_on_batch(x))


def _assert_batch_and_dtype_errors(stream):
    """A batch of the wrong size, floats that are not ids, strings: predict_on_batch's errors."""
    with pytest.raises(ValueError, match="stateful with batch size 2"):
        stream.step(np.zeros((3, 1), "int32"))
    with pytest.raises(ValueError, match="non-integral value 0.5"):
        stream.step(np.array([[0.5], [1.0]]))
    with pytest.raises(TypeError, match="numeric array"):
        stream.step(np.array([["a"], ["b"]]))


def test_stream_bad_input_gives_predict_on_batch_errors():
    from fusedlstm.models import Stream
    m, _ = _stream_model()
    s = Stream(m)
    with pytest.raises(ValueError, match=r"received token id 13 at position \(0, 0\); ids must lie in \[0, input_dim=13\)"):
        s.step(np.array([[13], [0]], "int32"))
    with pytest.raises(ValueError, match=r"received token id -1"):
        s.step(np.array([[0], [-1]], "int64"))
    _assert_batch_and_dtype_errors(s)
    d, _ = _stream_model(dense_input=True)
    sd = Stream(d)
    bad = np.zeros((2, 1, 4), "float32")
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"must hold finite values, got nan at position \(1, 0, 2\)"):
        sd.step(bad)
    with pytest.raises(ValueError, match="incompatible with the model"):
        sd.step(np.zeros((2, 1, 5), "float32"))


def test_stream_refuses_models_it_cannot_stream():
    from fusedlstm.models import Stream
    m = Sequential([Input((None,), dtype="int32"), Embedding(5, 3), LSTM(4)])
    with pytest.raises(ValueError, match="layer 'lstm.*' is not stateful"):
        Stream(m)
    d = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match="has no recurrent layer"):
        Stream(d)


# ---- Stream's C++ step (_core.StreamKernel) ----------------------------------------------------

def _head_model(cls=LSTM, stacked=False, dense_input=False, mask_zero=False, dtype="float32", act="softmax",
                V=13, policy=None, seed=5, heads=1, last_only=False, rnn_kw=None):
    kw = {"dtype": policy or dtype}
    rkw = dict(kw, **(rnn_kw or {}))
    layers = [Input(batch_shape=(2, None, 4), dtype=dtype) if dense_input else Input(batch_shape=(2, None), dtype="int32")]
    if not dense_input:
        layers.append(Embedding(V, 5, mask_zero=mask_zero, **kw))
    layers.append(cls(6, return_sequences=not (last_only and not stacked), stateful=True, **rkw))
    if stacked:
        layers.append(cls(4, return_sequences=not last_only, stateful=True, **rkw))
    if heads == 2:
        layers.append(Dense(7, activation="relu", **kw))
    if heads:
        layers.append(Dense(min(V, 13), activation=act, **kw) if last_only
                      else TimeDistributed(Dense(min(V, 13), activation=act, **kw)))
    m = Sequential(layers)
    rng = np.random.default_rng(seed)
    m.set_weights([rng.standard_normal(w.shape).astype(dtype) * 0.4 for w in m.get_weights()])
    return m, rng


def _xs(rng, n, dense_input, dtype="float32", V=13, T=1):
    if dense_input:
        return [rng.standard_normal((2, T, 4)).astype(dtype) for _ in range(n)]
    return [rng.integers(0, V, (2, T)).astype("int32") for _ in range(n)]


def _compare(got, want, act, dtype):
    """Bitwise unless the kernel computed a softmax head: the kernels' exp, sum and division
    against NumPy's (measured on 2000 char-model steps per ISA level: at most 7 ulp, 4.3e-7
    relative in float32); everything before the head is bitwise, so it does not grow with steps."""
    if act == "softmax":
        np.testing.assert_allclose(got, want, rtol=16 * np.finfo(dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


KERNEL_PLANS = [
    dict(), dict(stacked=True), dict(cls=GRU), dict(cls=SimpleRNN), dict(dense_input=True), dict(mask_zero=True),
    dict(act="linear"), dict(act="relu", heads=2), dict(act="sigmoid"), dict(dtype="float64"),
    dict(dtype="float64", act="linear", cls=GRU, stacked=True), dict(policy="mixed_bfloat16"),
    dict(policy="mixed_bfloat16", act="linear", stacked=True), dict(heads=0, act="linear"),
    dict(last_only=True), dict(last_only=True, stacked=True, cls=GRU, act="linear"),
    dict(V=90000), dict(V=90000, mask_zero=True, act="linear"),
    dict(cls=GRU, rnn_kw={"reset_after": False}, act="linear", stacked=True),
    dict(cls=GRU, rnn_kw={"use_bias": False}, act="linear"),
    dict(rnn_kw={"activation": "relu", "recurrent_activation": "hard_sigmoid", "go_backwards": True}, act="linear"),
    dict(cls=SimpleRNN, rnn_kw={"activation": "relu"}, dense_input=True, act="relu", heads=2)]  # E·W too large to keep: E's rows


def _plan_id(p):
    return "-".join(f"{k}={getattr(v, '__name__', v)}" for k, v in p.items()).replace(" ", "") or "default"


@pytest.mark.parametrize("plan", KERNEL_PLANS, ids=_plan_id)
@pytest.mark.parametrize("T", [1, 3])
def test_stream_kernel_equals_predict_on_batch(plan, T):
    from fusedlstm.models import Stream
    m, rng = _head_model(**plan)
    act, dtype = plan.get("act", "softmax"), plan.get("dtype", "float32")
    xs = _xs(rng, 8, plan.get("dense_input", False), dtype, V=plan.get("V", 13), T=T)
    if plan.get("mask_zero"):
        xs[2][0, 0] = 0
    want = [m.predict_on_batch(x) for x in xs]
    m.reset_states()
    s = Stream(m)
    assert s.uses_kernel
    got = [s.step(x) for x in xs]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        _compare(g, w, act, dtype)
    # mixed with predict_on_batch, reset_states in between: the same states carry on
    m.reset_states()
    mixed = [s.step(x) if k % 3 else m.predict_on_batch(x) for k, x in enumerate(xs)]
    for g, w in zip(mixed, want):
        _compare(g, w, act, dtype)
    rnn = [l for l in m.layers if hasattr(l, "states") and l.states is not None][-1]
    arrays = list(rnn.states)
    s.step(xs[0])
    assert all(a is b for a, b in zip(rnn.states, arrays))  # written in place


def test_stream_kernel_exact_is_bitwise_for_softmax_and_costs_the_numpy_softmax_only():
    from fusedlstm.models import Stream
    m, rng = _head_model()
    xs = _xs(rng, 6, False)
    want = [m.predict_on_batch(x) for x in xs]
    m.reset_states()
    s = Stream(m, exact=True)
    assert s.uses_kernel
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(s.step(x), w)


def test_stream_kernel_states_follow_every_way_they_are_set():
    from fusedlstm.models import Stream
    m, rng = _head_model(act="linear")
    twin, _ = _head_model(act="linear")
    s = Stream(m)
    lstm = m.layers[1]
    xs = _xs(rng, 10, False)
    h = rng.standard_normal((2, 6)).astype("float32")
    c = rng.standard_normal((2, 6)).astype("float32")
    for states in ([h, c], [h.astype("float64"), c], [h[:, ::-1], c]):  # copied by reset_states
        lstm.reset_states(states)
        twin.layers[1].reset_states(states)
        for x in xs[:3]:
            np.testing.assert_array_equal(s.step(x), twin.predict_on_batch(x))
        np.testing.assert_array_equal(lstm.states[1], twin.layers[1].states[1])
    # arrays the step cannot write in place: read-only, one array twice, a strided view
    ro = h.copy()
    ro.flags.writeable = False
    for states in ([ro, c.copy()], [h.copy()] * 2, [np.ones((2, 12), "float32")[:, ::2], c.copy()]):
        lstm.states = list(states)
        twin.layers[1].states = [np.array(a, "float32") for a in states]
        for x in xs[3:6]:
            np.testing.assert_array_equal(s.step(x), twin.predict_on_batch(x))
        np.testing.assert_array_equal(lstm.states[0], twin.layers[1].states[0])
    np.testing.assert_array_equal(ro, h)  # never written
    # a list changed in place
    lstm.states[0] = np.zeros((2, 6), "float32")
    twin.layers[1].states[0] = np.zeros((2, 6), "float32")
    np.testing.assert_array_equal(s.step(xs[6]), twin.predict_on_batch(xs[6]))
    lstm.states.pop()
    with pytest.raises(Exception):
        s.step(xs[7])  # what predict_on_batch says about a broken state list


@pytest.mark.parametrize("write", ["set_weights", "assign", "train_on_batch", "dtype_policy"])
def test_stream_kernel_follows_weight_writes(write):
    from fusedlstm.models import Stream
    m, rng = _head_model(act="linear")
    m.compile(optimizer="adam", loss="mse")
    s = Stream(m)
    xs = _xs(rng, 6, False)
    for x in xs[:3]:
        s.step(x)
    kernel = s._kernel
    if write == "set_weights":
        m.set_weights([w * 0.7 for w in m.get_weights()])
    elif write == "assign":
        U = m.layers[1].recurrent_kernel
        U.assign(U.numpy()[::-1].copy())
    elif write == "train_on_batch":
        m.train_on_batch(xs[0], np.zeros((2, 1, 13), "float32"))
    else:
        m.layers[1].dtype_policy = "mixed_bfloat16"
    twin, _ = _head_model(act="linear", policy="mixed_bfloat16" if write == "dtype_policy" else None)
    twin.set_weights(m.get_weights())
    twin.layers[1].reset_states([st.copy() for st in m.layers[1].states])
    if write == "dtype_policy":  # the twin's other layers stay float32, as m's
        for l in twin.layers:
            if l is not twin.layers[1]:
                l.dtype_policy = "float32"
    for x in xs[3:]:
        np.testing.assert_array_equal(s.step(x), twin.predict_on_batch(x))
    assert s._kernel is not kernel and s.uses_kernel


def test_stream_kernel_bad_input_gives_predict_on_batch_errors():
    from fusedlstm.models import Stream
    m, _ = _head_model()
    s = Stream(m)
    assert s.uses_kernel
    for ids in ([[13], [0]], [[0], [-1]], [[2**40], [0]]):
        with pytest.raises(ValueError, match="received token id"):
            s.step(np.array(ids, "int64"))
    with pytest.raises(ValueError, match="received token id 13"):
        s.step(np.array([[13], [0]], "int32"))
    _assert_batch_and_dtype_errors(s)
    with pytest.raises(ValueError, match="incompatible with the model"):
        s.step(np.zeros((2,), "int32"))
    # inputs of another kind that predict_on_batch takes: the same numbers
    ids = np.array([[3, 4], [5, 6]], "int32")
    m, _ = _head_model(act="linear")
    m2, _ = _head_model(act="linear")
    s = Stream(m)
    for x in (ids[:, ::2], ids[:, :1].astype("int16"), ids[:, :1].tolist(), ids[:, :1].astype("uint8")):
        m.reset_states(), m2.reset_states()
        np.testing.assert_array_equal(s.step(x), m2.predict_on_batch(np.asarray(x)))
    d, rng = _head_model(dense_input=True, act="linear")
    sd = Stream(d)
    assert sd.uses_kernel
    for val in (np.nan, np.inf):
        bad = np.zeros((2, 1, 4), "float32")
        bad[1, 0, 2] = val
        with pytest.raises(ValueError, match=r"must hold finite values"):
            sd.step(bad)
    with pytest.raises(ValueError, match="incompatible with the model"):
        sd.step(np.zeros((2, 1, 5), "float32"))
    twin, _ = _head_model(dense_input=True, act="linear")
    x = rng.standard_normal((2, 1, 4))
    np.testing.assert_array_equal(sd.step(x), twin.predict_on_batch(x))  # float64 into float32: cast, as predict


def test_stream_kernel_threads_do_not_change_results():
    from fusedlstm.models import Stream
    m, rng = _head_model(stacked=True)
    xs = _xs(rng, 6, False, T=2)
    s = Stream(m)
    outs = {}
    for n in (1, 2, 3):
        m.reset_states()
        s._kernel.threads = n
        outs[n] = [s.step(x) for x in xs]
    for n in (2, 3):
        for a, b in zip(outs[1], outs[n]):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        s._kernel.threads = -1


def test_stream_kernel_falls_back_for_plans_it_does_not_run():
    from fusedlstm.layers import Activation, Dropout
    from fusedlstm.models import Stream

    def check(m, xs):
        s = Stream(m)
        assert not s.uses_kernel
        want = [m.predict_on_batch(x) for x in xs]
        m.reset_states()
        for x, w in zip(xs, want):
            np.testing.assert_array_equal(s.step(x), w)
    ids = [np.array([[1], [2]], "int32"), np.array([[3], [0]], "int32")]
    inp = lambda: Input(batch_shape=(2, None), dtype="int32")
    check(Sequential([inp(), Embedding(13, 5), LSTM(6, return_sequences=True, stateful=True), Dropout(0.5),
                      Dense(3)]), ids)
    check(Sequential([inp(), Embedding(13, 5), LSTM(6, return_sequences=True, stateful=True), Activation("tanh")]),
          ids)
    check(Sequential([inp(), Embedding(13, 5), LSTM(6, return_sequences=True, stateful=True),
                      Dense(4, activation="tanh"), Dense(3)]), ids)


def test_stream_kernel_class_checks_its_arguments():
    from fusedlstm.variables import _WRITES
    with pytest.raises(ValueError, match="dtype must be"):
        _core.StreamKernel(1, "float16", True, 5, _WRITES)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        _core.StreamKernel(0, "float32", True, 5, _WRITES)
    with pytest.raises(ValueError, match="write_counter"):
        _core.StreamKernel(1, "float32", True, 5, [])
    with pytest.raises(ValueError, match="set_embedding needs token-id input"):
        _core.StreamKernel(1, "float32", False, 5, _WRITES).set_embedding(np.zeros((5, 2), "float32"))
    with pytest.raises(ValueError, match=r"E must have shape \(V, D\) = \(5, 2\)"):
        _core.StreamKernel(1, "float32", True, 5, _WRITES).set_embedding(np.zeros((4, 2), "float32"))
    k = _core.StreamKernel(1, "float32", True, 5, _WRITES)
    with pytest.raises(ValueError, match="add_dense before any add_recurrent"):
        k.add_dense(np.zeros((3, 2), "float32"), None)
    lstm = LSTM(3)
    with pytest.raises(ValueError, match=r"W must have shape \(V, G\) = \(5, 12\)"):
        k.add_recurrent(lstm, "lstm", np.zeros((4, 12), "float32"), np.zeros((3, 12), "float32"), None, None)
    with pytest.raises(TypeError, match="float64 but the stream's dtype is float32"):
        k.add_recurrent(lstm, "lstm", np.zeros((5, 12)), np.zeros((3, 12), "float32"), None, None)
    with pytest.raises(ValueError, match="cell must be"):
        k.add_recurrent(lstm, "rnn", np.zeros((5, 12), "float32"), np.zeros((3, 12), "float32"), None, None)
    with pytest.raises(ValueError, match="activation must be one of"):
        k.add_recurrent(lstm, "lstm", np.zeros((5, 12), "float32"), np.zeros((3, 12), "float32"), None, None,
                        activation="gelu")
    with pytest.raises(TypeError, match="packed_U must be"):
        k.add_recurrent(lstm, "lstm", np.zeros((5, 12), "float32"), np.zeros((3, 12), "float32"), None, 3)
    k.add_recurrent(lstm, "lstm", np.zeros((5, 12), "float32"), np.zeros((3, 12), "float32"), None, None)
    with pytest.raises(ValueError, match="activation must be 'linear', 'relu' or 'softmax'"):
        k.add_dense(np.zeros((3, 2), "float32"), None, activation="tanh")
    with pytest.raises(ValueError, match=r"W must have shape \(K, N\) = \(3, 2\)"):
        k.add_dense(np.zeros((4, 2), "float32"), None)
    with pytest.raises(ValueError, match="set_embedding must come once, before add_recurrent"):
        k.set_embedding(np.zeros((5, 2), "float32"))
    assert k.step(np.array([[1]], "int32")) is None  # the layer has no states to write: the Python path's case
