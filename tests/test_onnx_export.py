"""ONNX export (fusedlstm.io.onnx) checked against ONNX Runtime.

Every exported graph must pass onnx.checker (full check: strict shape inference)
and give predict()'s outputs to 1e-5 under onnxruntime (absolute, relative for
values beyond 1: unbounded activations reach magnitudes where float32's own
rounding is 1e-6), at several batch sizes and sequence lengths from one export. Weights are drawn larger than the initialisers'
so that gates saturate and every path (masks, reversal, state) moves the numbers.
What cannot be exported must be refused with OnnxExportError naming the layer.
"""

import os

import numpy as np
import pytest

from conftest import require
from fusedlstm import layers as L
from fusedlstm import models as M

ATOL = 1e-5
ACTS = ("tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2", "relu", "linear")


@pytest.fixture(scope="module", autouse=True)
def onnx_stack():
    require("onnx", "onnx")
    require("onnxruntime", "onnx")


def _export(model, **kw):
    import onnx

    from fusedlstm.io.onnx import export_onnx

    proto = export_onnx(model, **kw)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _session(proto):
    from fusedlstm.io.onnx.runtime import inference_session

    return inference_session(proto)


def _as_list(y):
    return [np.asarray(a) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


def _randomize(model, rng, scale=0.6):
    model.set_weights([(rng.standard_normal(w.shape) * scale).astype(w.dtype) for w in model.get_weights()])


def _err(got, want):
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))) if want.size else 0.0


def _compare(sess, model, xs, what=""):
    xs = xs if isinstance(xs, list) else [xs]
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
    got = sess.run([o.name for o in sess.get_outputs()][:len(model.outputs)], feeds)
    want = _as_list(model.predict(xs if len(xs) > 1 else xs[0], verbose=0))
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} output {k}: {g.shape} vs {w.shape}"
        err = _err(g, w)
        assert err <= ATOL, f"{what} output {k}: max abs diff {err:.3g} (ours max |y| {np.abs(w).max():.3g})"


def check(model, make_inputs, sizes=((1, 1), (3, 7), (17, 12))):
    """Export once; compare at every (batch, time) in `sizes`."""
    sess = _session(_export(model))
    for B, T in sizes:
        _compare(sess, model, make_inputs(B, T), f"B={B} T={T}")
    return sess


def floats(rng, features):
    return lambda B, T: rng.standard_normal((B, T, features)).astype(np.float32)


def token_ids(rng, vocab, padding=None):
    """Ids in [1, vocab) with 0-padding: 'trailing', 'leading', 'middle', 'random' or None."""
    def make(B, T):
        ids = rng.integers(1, vocab, (B, T)).astype(np.int32)
        if padding is None:
            return ids
        for b in range(B):
            n = int(rng.integers(0, T + 1))
            if padding == "trailing":
                ids[b, n:] = 0
            elif padding == "leading":
                ids[b, :T - n] = 0
            elif padding == "middle":
                a = int(rng.integers(0, T))
                ids[b, a:a + n // 2] = 0
            else:
                ids[b, rng.random(T) < 0.4] = 0
        if B > 2:
            ids[-1] = 0  # a row with no real step at all
        return ids
    return make


# --- the classic tasks' models ----------------------------------------------------------------

_TINY = {"echo": dict(examples=20, eval=10), "echo-long": dict(time_budget=0.2, eval=10),
         "echo-sequence": dict(sequences=5, eval=2), "seq2seq": dict(sequences=3, eval=2, units=24),
         "seq2seq-4": dict(sequences=3, eval=2, units=24), "chars": dict(windows=256, epochs=1, sample=1),
         "chars-seq": dict(windows=256, epochs=1, sample=1, units=32), "digitsum": dict(epochs=1, batch_size=720),
         "addition": dict(epochs=1, examples=20, eval=20)}


def _task_model(name, seed):
    from fusedlstm.tasks.registry import run_task

    return run_task(name, overrides=_TINY[name], quick=True, verbose=0, out=lambda *a: None, seed=seed).model


def _task_inputs(model, rng):
    shape, dtype = model.inputs[0].shape, str(model.inputs[0].dtype)
    if dtype.startswith("int"):
        return lambda B, T: rng.integers(0, 27, (B, T)).astype(dtype)
    return floats(rng, shape[-1])


# Tasks whose models hold a layer the exporter does not have yet, and that layer.
_NOT_EXPORTABLE = {"motif-order": ("Conv1D", dict(examples=40, eval=10, epochs=1))}


def test_every_task_model_is_listed():
    from fusedlstm.tasks.registry import TASKS

    assert set(_TINY) | set(_NOT_EXPORTABLE) == set(TASKS)


@pytest.mark.parametrize("task", sorted(_NOT_EXPORTABLE))
def test_task_model_refused_by_name(task, seed):
    from fusedlstm.io.onnx import OnnxExportError
    from fusedlstm.tasks.registry import run_task

    layer, tiny = _NOT_EXPORTABLE[task]
    model = run_task(task, overrides=tiny, quick=True, verbose=0, out=lambda *a: None, seed=seed).model
    with pytest.raises(OnnxExportError, match=rf"\({layer}\): this layer class cannot be exported to ONNX"):
        _export(model)


@pytest.mark.parametrize("task", sorted(_TINY))
def test_task_model_matches_predict(task, seed, rng):
    model = _task_model(task, seed)
    make = _task_inputs(model, rng)
    if any(getattr(layer, "stateful", False) for layer in model.layers):
        # A stateful model: fixed batch; the state carries through three calls.
        from fusedlstm.io.onnx.runtime import StatefulSession

        B, T = model.inputs[0].shape[:2]
        model.reset_states()
        sess = StatefulSession(_export(model), batch_size=B)
        for call in range(3):
            x = make(B, T)
            got, want = sess.run({sess.session.get_inputs()[0].name: x})[0], model.predict(x, batch_size=B, verbose=0)
            assert _err(got, want) <= ATOL, f"call {call}"
        return
    T = model.inputs[0].shape[1] or 9
    check(model, make, sizes=((1, T), (5, T), (3, T + 4), (2, 1)))


# --- LSTM options -----------------------------------------------------------------------------

@pytest.mark.parametrize("act,ract", [(a, r) for a in ACTS for r in ACTS if a == "tanh" or r == "sigmoid"])
def test_lstm_activations(act, ract, rng):
    model = M.Sequential([L.Input((None, 4)), L.LSTM(6, activation=act, recurrent_activation=ract,
                                                    return_sequences=True)])
    # Unbounded activations (relu, linear) let c grow without limit at larger weights.
    _randomize(model, rng, scale=0.6 if {act, ract} <= {"tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2"}
               else 0.3)
    check(model, floats(rng, 4))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
def test_lstm_sequences_and_states(go_backwards, use_bias, rng):
    inp = L.Input((None, 3))
    seq, h, c = L.LSTM(5, go_backwards=go_backwards, use_bias=use_bias, return_sequences=True,
                       return_state=True)(inp)
    last = L.LSTM(4, go_backwards=go_backwards, use_bias=use_bias)(seq)
    model = M.Model(inp, [seq, h, c, last])
    _randomize(model, rng)
    check(model, floats(rng, 3))


def test_go_backwards_outputs_in_processing_order(rng):
    """Keras returns a go_backwards sequence reversed (processing order): the graph must too."""
    model = M.Sequential([L.Input((None, 2)), L.LSTM(3, go_backwards=True, return_sequences=True)])
    _randomize(model, rng)
    x = floats(rng, 2)(2, 6)
    sess = _session(_export(model))
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    forward = M.Sequential([L.Input((None, 2)), L.LSTM(3, return_sequences=True)])
    forward.set_weights(model.get_weights())
    assert np.allclose(got, forward.predict(x[:, ::-1], verbose=0), atol=ATOL)


def test_initial_state_from_other_inputs(rng):
    x_in, h_in, c_in = L.Input((None, 3)), L.Input((5,)), L.Input((5,))
    y = L.LSTM(5, return_sequences=True)(x_in, initial_state=[h_in, c_in])
    model = M.Model([x_in, h_in, c_in], L.Dense(2)(y))
    _randomize(model, rng)
    check(model, lambda B, T: [floats(rng, 3)(B, T), rng.standard_normal((B, 5)).astype(np.float32),
                               rng.standard_normal((B, 5)).astype(np.float32)])


# --- masks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", ["trailing", "leading", "middle", "random"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_lstm_any_padding(padding, go_backwards, return_sequences, rng):
    model = M.Sequential([L.Input((None,), dtype="int32"), L.Embedding(11, 4, mask_zero=True),
                          L.LSTM(6, go_backwards=go_backwards, return_sequences=return_sequences)])
    _randomize(model, rng)
    check(model, token_ids(rng, 11, padding))


@pytest.mark.parametrize("zero_output", [False, True])
def test_masked_lstm_zero_output_and_initial_state(zero_output, rng):
    ids, h_in, c_in = L.Input((None,), dtype="int32"), L.Input((4,)), L.Input((4,))
    e = L.Embedding(7, 3, mask_zero=True)(ids)
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True, zero_output_for_mask=zero_output)(
        e, initial_state=[h_in, c_in])
    last = L.LSTM(4, zero_output_for_mask=zero_output)(seq, initial_state=[h, c])
    model = M.Model([ids, h_in, c_in], [seq, h, c, last])
    _randomize(model, rng)
    pad = token_ids(rng, 7, "random")
    check(model, lambda B, T: [pad(B, T), rng.standard_normal((B, 4)).astype(np.float32),
                               rng.standard_normal((B, 4)).astype(np.float32)])


def test_masking_layer_and_mask_through_dense(rng):
    model = M.Sequential([L.Input((None, 3)), L.Masking(mask_value=0.5), L.LSTM(5, return_sequences=True),
                          L.Dense(4, activation="tanh"), L.Dropout(0.3), L.LSTM(3, go_backwards=True)])
    _randomize(model, rng)

    def make(B, T):
        x = floats(rng, 3)(B, T)
        x[rng.random((B, T)) < 0.35] = 0.5
        return x
    check(model, make)


# --- Bidirectional ------------------------------------------------------------------------------

@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_merge_modes(merge_mode, return_sequences, rng):
    inp = L.Input((None,), dtype="int32")
    e = L.Embedding(9, 4, mask_zero=True)(inp)
    out = L.Bidirectional(L.LSTM(5, return_sequences=return_sequences, return_state=True),
                          merge_mode=merge_mode)(e)
    model = M.Model(inp, out)
    _randomize(model, rng)
    check(model, token_ids(rng, 9, "random"))


def test_bidirectional_stacked_unmasked_with_backward_layer(rng):
    back = L.LSTM(4, go_backwards=True, return_sequences=True, activation="relu", recurrent_activation="hard_sigmoid")
    model = M.Sequential([L.Input((None, 3)),
                          L.Bidirectional(L.LSTM(4, return_sequences=True), backward_layer=back),
                          L.Bidirectional(L.LSTM(6), merge_mode="ave"), L.Dense(3, activation="softmax")])
    _randomize(model, rng)
    check(model, floats(rng, 3))


# --- GRU (ONNX GRU, linear_before_reset = reset_after) and SimpleRNN (ONNX RNN) ------------------

def _rnn(cls, units, **kw):
    return L.GRU(units, **kw) if cls == "GRU" else L.SimpleRNN(units, **{k: v for k, v in kw.items()
                                                                          if k not in ("recurrent_activation",
                                                                                       "reset_after")})


@pytest.mark.parametrize("cls,act,ract,reset_after", [
    ("GRU", "tanh", "sigmoid", True), ("GRU", "tanh", "sigmoid", False), ("GRU", "relu", "hard_sigmoid", True),
    ("GRU", "linear", "hard_sigmoid_k2", False), ("SimpleRNN", "tanh", None, None),
    ("SimpleRNN", "relu", None, None), ("SimpleRNN", "hard_sigmoid", None, None)])
def test_gru_simple_rnn_activations(cls, act, ract, reset_after, rng):
    kw = dict(activation=act, return_sequences=True)
    if cls == "GRU":
        kw.update(recurrent_activation=ract, reset_after=reset_after)
    model = M.Sequential([L.Input((None, 4)), _rnn(cls, 6, **kw)])
    _randomize(model, rng, scale=0.6 if act in ("tanh", "hard_sigmoid") else 0.3)
    check(model, floats(rng, 4))


@pytest.mark.parametrize("cls", ["GRU", "SimpleRNN"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
def test_gru_simple_rnn_sequences_states_initial_state(cls, go_backwards, use_bias, rng):
    inp, h_in = L.Input((None, 3)), L.Input((5,))
    seq, h = _rnn(cls, 5, go_backwards=go_backwards, use_bias=use_bias, return_sequences=True,
                  return_state=True)(inp, initial_state=[h_in])
    last = _rnn(cls, 4, go_backwards=go_backwards, use_bias=use_bias, reset_after=False)(seq)
    model = M.Model([inp, h_in], [seq, h, last])
    _randomize(model, rng)
    check(model, lambda B, T: [floats(rng, 3)(B, T), rng.standard_normal((B, 5)).astype(np.float32)])


@pytest.mark.parametrize("cls", ["GRU", "SimpleRNN"])
@pytest.mark.parametrize("padding", ["trailing", "random"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_gru_simple_rnn(cls, padding, return_sequences, rng):
    model = M.Sequential([L.Input((None,), dtype="int32"), L.Embedding(11, 4, mask_zero=True),
                          _rnn(cls, 6, go_backwards=padding == "random", return_sequences=return_sequences)])
    _randomize(model, rng)
    check(model, token_ids(rng, 11, padding))


@pytest.mark.parametrize("cls", ["GRU", "SimpleRNN"])
@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_bidirectional_gru_simple_rnn(cls, merge_mode, rng):
    inp = L.Input((None,), dtype="int32")
    e = L.Embedding(9, 4, mask_zero=True)(inp)
    out = L.Bidirectional(_rnn(cls, 5, return_sequences=True, return_state=True), merge_mode=merge_mode)(e)
    model = M.Model(inp, out)
    _randomize(model, rng)
    check(model, token_ids(rng, 9, "random"))


@pytest.mark.parametrize("cls", ["GRU", "SimpleRNN"])
def test_stateful_gru_simple_rnn_streaming(cls, rng):
    from fusedlstm.io.onnx.runtime import StatefulSession, state_names

    model = M.Sequential([L.Input(batch_shape=(3, 4, 2)), L.Bidirectional(_rnn(cls, 5, stateful=True,
                                                                                 return_sequences=True)),
                          _rnn(cls, 3, stateful=True)])
    _randomize(model, rng)
    model.reset_states()
    proto = _export(model)
    assert [len(s["inputs"]) for s in state_names(proto)] == [1, 1, 1]  # h only: no c
    stream = StatefulSession(proto, batch_size=3)
    for call in range(3):
        x = floats(rng, 2)(3, 4)
        got = stream.run({stream.session.get_inputs()[0].name: x})[0]
        assert _err(got, model.predict(x, batch_size=3, verbose=0)) <= ATOL, f"call {call}"


# --- other layers, graphs ----------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax",
                                        "hard_sigmoid", "hard_sigmoid_k2", "softplus", "softsign", "elu", "selu",
                                        "exponential", "silu", "leaky_relu"])
def test_dense_activations(activation, rng):
    inp = L.Input((6,))
    model = M.Model(inp, [L.Dense(5, activation=activation)(inp), L.Activation(activation)(inp)])
    _randomize(model, rng, scale=0.4)
    check(model, lambda B, T: rng.standard_normal((B, 6)).astype(np.float32), sizes=((1, 0), (9, 0)))


def test_shape_layers(rng):
    model = M.Sequential([L.Input((5, 4)), L.LSTM(6, return_sequences=True), L.SpatialDropout1D(0.2),
                          L.Flatten(), L.Reshape((5, 6)), L.TimeDistributed(L.Dense(3)), L.Flatten(),
                          L.Dense(4), L.RepeatVector(3), L.LSTM(2, return_sequences=True),
                          L.TimeDistributed(L.Activation("softmax")), L.Reshape((-1,))])
    _randomize(model, rng)
    check(model, floats(rng, 4), sizes=((1, 5), (7, 5)))


def test_multi_input_output_merges(rng):
    ids, feats = L.Input((None,), dtype="int32", name="ids"), L.Input((None, 3), name="feats")
    e = L.Embedding(8, 3)(ids)
    a, h1, c1 = L.LSTM(4, return_sequences=True, return_state=True)(e)
    b, h2, c2 = L.LSTM(4, return_sequences=True, return_state=True, go_backwards=True)(feats)
    shared = L.Dense(4, activation="tanh")
    merged = [L.Add()([shared(a), shared(b)]), L.Subtract()([h1, h2]), L.Multiply()([c1, c2, h1]),
              L.Average()([h1, h2, c1]), L.Concatenate()([h1, c2]), L.Concatenate(axis=1)([a, b])]
    model = M.Model([ids, feats], merged)
    _randomize(model, rng)
    check(model, lambda B, T: [rng.integers(0, 8, (B, T)).astype(np.int32), floats(rng, 3)(B, T)])


def test_float_token_ids(rng):
    model = M.Sequential([L.Input((None,)), L.Embedding(6, 3, mask_zero=True), L.LSTM(3)])
    _randomize(model, rng)
    check(model, lambda B, T: token_ids(rng, 6, "random")(B, T).astype(np.float32))


def test_dynamic_axes_and_names(rng):
    import onnx

    model = M.Sequential([L.Input((12,), dtype="int32", name="chars"), L.Embedding(5, 3), L.LSTM(4)])
    dims = [d.dim_param or d.dim_value for d in _export(model).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time"]
    fixed = _export(model, dynamic_batch=False, dynamic_time=False)
    dims = [d.dim_param or d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 12]  # the model leaves its batch free: it stays free
    assert [o.name for o in fixed.graph.output] == ["lstm" if model.layers[-1].name == "lstm"
                                                    else model.layers[-1].name]
    assert isinstance(fixed, onnx.ModelProto)


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(opset, rng):
    model = M.Sequential([L.Input((None,), dtype="int32"), L.Embedding(9, 4, mask_zero=True),
                          L.Bidirectional(L.LSTM(5, return_sequences=True, go_backwards=True)),
                          L.TimeDistributed(L.Dense(3, activation="softmax"))])
    _randomize(model, rng)
    proto = _export(model, opset=opset)
    assert proto.opset_import[0].version == opset
    sess = _session(proto)
    for B, T in ((2, 5), (4, 9)):
        _compare(sess, model, token_ids(rng, 9, "middle")(B, T), f"opset {opset}")


# --- stateful models: streaming through initial_h/initial_c -> Y_h/Y_c ----------------------------

@pytest.mark.parametrize("units", [8, 33])
def test_streaming_char_model_equals_full_sequence(units, rng):
    from fusedlstm.io.onnx.runtime import StatefulSession, state_names

    def char_model(batch_shape, stateful):
        return M.Sequential([L.Input(batch_shape=batch_shape, dtype="int32"), L.Embedding(27, 16),
                             L.LSTM(units, return_sequences=True, stateful=stateful),
                             L.TimeDistributed(L.Dense(27, activation="softmax"))])

    twin = char_model((1, 1), True)
    _randomize(twin, rng)
    full = char_model((1, None), False)
    full.set_weights(twin.get_weights())
    proto = _export(twin)
    names = state_names(proto)
    assert [s["inputs"] for s in names] == [[f"{twin.layers[1].name}/initial_h", f"{twin.layers[1].name}/initial_c"]]
    stream = StatefulSession(proto, batch_size=1)
    ids = rng.integers(0, 27, (1, 15)).astype(np.int32)
    steps = [stream.run({stream.session.get_inputs()[0].name: ids[:, t:t + 1]})[0] for t in range(15)]
    want = full.predict(ids, verbose=0)
    assert np.max(np.abs(np.concatenate(steps, axis=1) - want)) <= ATOL
    ours = [twin.predict_on_batch(ids[:, t:t + 1]) for t in range(15)]
    assert np.max(np.abs(np.concatenate(ours, axis=1) - want)) <= ATOL
    stream.reset_states()
    assert np.max(np.abs(stream.run({stream.session.get_inputs()[0].name: ids[:, :1]})[0] - want[:, :1])) <= ATOL


def test_stateful_bidirectional_and_stack(rng):
    from fusedlstm.io.onnx.runtime import StatefulSession

    model = M.Sequential([L.Input(batch_shape=(3, 4, 2)), L.Bidirectional(L.LSTM(5, stateful=True,
                                                                                return_sequences=True)),
                          L.LSTM(3, stateful=True)])
    _randomize(model, rng)
    model.reset_states()
    stream = StatefulSession(_export(model), batch_size=3)
    assert len(stream.states) == 3  # forward, backward, second LSTM
    for call in range(3):
        x = floats(rng, 2)(3, 4)
        got = stream.run({stream.session.get_inputs()[0].name: x})[0]
        assert _err(got, model.predict(x, batch_size=3, verbose=0)) <= ATOL, f"call {call}"


# --- refusals ----------------------------------------------------------------------------------

def _refused(model, *words):
    from fusedlstm.io.onnx import OnnxExportError

    with pytest.raises(OnnxExportError) as info:
        _export(model)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_refuses_dropout_at_inference():
    inp = L.Input((4,))
    drop = L.Dropout(0.5, name="mc_dropout")
    _refused(M.Model(inp, drop(L.Dense(3)(inp), training=True)), "mc_dropout", "training=True")


def test_refuses_lstm_dropout_at_inference():
    inp = L.Input((None, 2))
    lstm = L.LSTM(3, dropout=0.2, name="noisy")
    _refused(M.Model(inp, lstm(inp, training=True)), "noisy", "training=True")


def test_refuses_nested_model():
    inner_in = L.Input((None, 2))
    inner = M.Model(inner_in, L.LSTM(3)(inner_in), name="encoder")
    outer_in = L.Input((None, 2))
    _refused(M.Model(outer_in, L.Dense(2)(inner(outer_in))), "encoder", "cannot be exported")


def test_refuses_float64_model():
    model = M.Sequential([L.Input((None, 2)), L.LSTM(3, dtype="float64", name="wide")])
    _refused(model, "wide", "float64")


def test_refuses_shared_stateful_layer():
    inp = L.Input(batch_shape=(2, 3, 2))
    lstm = L.LSTM(2, stateful=True, return_sequences=True, name="twice")
    _refused(M.Model(inp, lstm(lstm(inp))), "twice", "stateful")


def test_refuses_masked_time_concatenation():
    inp = L.Input((None,), dtype="int32")
    e = L.Embedding(5, 3, mask_zero=True)(inp)
    cat = L.Concatenate(axis=1, name="joined")
    _refused(M.Model(inp, L.LSTM(2)(cat([e, e]))), "joined", "axis 1")


def test_bad_arguments():
    from fusedlstm.io.onnx import export_onnx

    model = M.Sequential([L.Input((None, 2)), L.LSTM(3)])
    for bad in (12, 10**3, "17", True):
        with pytest.raises(ValueError, match="opset"):
            export_onnx(model, opset=bad)
    with pytest.raises(ValueError, match="not built"):
        export_onnx(M.Sequential([L.LSTM(3)]))


def test_writes_file_atomically(tmp_path, rng):
    import onnx

    from fusedlstm.io.onnx import export_onnx

    model = M.Sequential([L.Input((None, 2)), L.LSTM(3)])
    path = tmp_path / "m.onnx"
    proto = export_onnx(model, str(path))
    assert onnx.load(str(path)) == proto
    assert os.listdir(tmp_path) == ["m.onnx"]


# --- the description adapter reads Keras 3's config dialect too ----------------------------------

class _KerasDialect:
    """A model whose get_config() is the config Keras 3 writes for it (io.model_config)."""

    def __init__(self, model):
        from fusedlstm.io.convert import describe_model
        from fusedlstm.io.model_config import keras3_model_config

        self._model = model
        self._config = keras3_model_config(describe_model(model)[0])["config"]
        self.name, self.built, self.inputs, self.outputs = model.name, True, model.inputs, model.outputs

    def get_config(self):
        return self._config

    def get_layer(self, name):
        return self._model.get_layer(name)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_config_dialect_exports_the_same_graph(kind, rng):
    from fusedlstm.io.onnx import export_onnx

    if kind == "sequential":
        model = M.Sequential([L.Input((None,), dtype="int32"), L.Embedding(9, 4, mask_zero=True),
                              L.Bidirectional(L.LSTM(5, return_sequences=True), merge_mode="mul"),
                              L.TimeDistributed(L.Dense(3, activation="softmax"))])
        make = token_ids(rng, 9, "random")
    else:
        a, b = L.Input((None, 3)), L.Input((None, 2))
        _, h, c = L.LSTM(4, return_state=True, go_backwards=True)(a)
        y = L.LSTM(4, return_sequences=True)(b, initial_state=[h, c])
        model = M.Model([a, b], [L.Dense(2)(y), L.Concatenate()([h, c])])
        make = lambda B, T: [floats(rng, 3)(B, T), floats(rng, 2)(B, T + 1)]
    _randomize(model, rng)
    proto = export_onnx(_KerasDialect(model))
    sess = _session(proto)
    for B, T in ((1, 3), (4, 6)):
        _compare(sess, model, make(B, T), f"{kind} B={B} T={T}")


# --- model.export: Keras's entry point --------------------------------------------------------------

def test_model_export_writes_the_same_graph(tmp_path, rng, capsys):
    import onnx

    model = M.Sequential([L.Input((None,), dtype="int32"), L.Embedding(7, 4, mask_zero=True), L.LSTM(5),
                          L.Dense(3, activation="softmax")])
    _randomize(model, rng)
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx", opset_version=15)
    assert capsys.readouterr().out.strip() == f"Saved artifact at '{path}'."
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 15
    assert proto.SerializeToString() == _export(model, opset=15).SerializeToString()
    _compare(_session(proto), model, token_ids(rng, 7, "post")(3, 6), "model.export")
    model.export(tmp_path / "quiet.onnx", format="onnx", verbose=False)
    assert capsys.readouterr().out == ""


def test_model_export_refusals(tmp_path):
    model = M.Sequential([L.Input((4, 2)), L.LSTM(3)])
    with pytest.raises(ValueError, match=r"format='tf_saved_model' is not supported.*format='onnx'"):
        model.export(tmp_path / "m")
    with pytest.raises(ValueError, match=r"format='torchscript' is not supported \(supported: 'onnx'\)"):
        model.export(tmp_path / "m", format="torchscript")
    with pytest.raises(NotImplementedError, match="input_signature"):
        model.export(tmp_path / "m.onnx", format="onnx", input_signature=[(None, 4, 2)])
    with pytest.raises(ValueError, match="opset=13 and opset_version=17 disagree"):
        model.export(tmp_path / "m.onnx", format="onnx", opset=13, opset_version=17)
    assert not any(tmp_path.iterdir())


def test_rnn_of_cells_exports_as_its_fused_layer(rng):
    """RNN(LSTMCell/GRUCell/SimpleRNNCell) exports as the LSTM/GRU/RNN operator its kernel is."""
    inp = L.Input((None, 4))
    h = L.RNN(L.LSTMCell(5), return_sequences=True)(inp)
    h = L.Bidirectional(L.RNN(L.GRUCell(3, reset_after=False), return_sequences=True))(h)
    y, state = L.RNN(L.SimpleRNNCell(4, activation="relu"), go_backwards=True, return_state=True)(h)
    model = M.Model(inp, L.Dense(2)(L.Concatenate()([y, state])))
    _randomize(model, rng)
    check(model, floats(rng, 4))
