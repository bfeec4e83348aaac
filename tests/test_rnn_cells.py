"""keras.layers.RNN(cell) with LSTMCell, GRUCell and SimpleRNNCell against Keras 3.15.1 (torch backend).

RNN(cell) runs on the same fused kernels as LSTM/GRU/SimpleRNN (layers/rnn.py); these tests
check it computes what Keras's RNN loop over its cell computes (predictions, loss and
gradients, 10 Adam steps), that a cell called alone is Keras's cell step, that Keras files
holding RNN(cell) go both ways, and that what we cannot run (custom or stacked cells) is
refused by name.
"""

import numpy as np
import pytest

import keras_parity_support as ps
from test_keras_parity import B, I, T, _padded_ids, dense, keras, onehot, seq, td, xs  # noqa: F401 (keras: fixture)

import fusedlstm
import fusedlstm.layers as fl
from fusedlstm.io.layer_rules import UnsupportedModelError

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]


def rnn(cell, units, cell_kw=None, **kw):
    return lambda L: L.RNN(getattr(L, cell)(units, **(cell_kw or {})), **kw)


def normal(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def _holes(rng):
    x = xs(rng)
    x[1, 3:] = 0.0
    x[2, :2] = 0.0
    return x


def _masking(core):
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(T, I)), L.Masking(0.0), core(L), L.Dense(2)])
    return build


def _embedding(core):
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(T,), dtype="int32"), L.Embedding(12, 6, mask_zero=True), core(L),
                               L.Dense(3, activation="softmax")])
    return build


def _encoder_decoder(lib):
    L = lib.layers
    enc_in, dec_in = lib.Input(shape=(T, I)), lib.Input(shape=(T - 2, 3))
    _, h, c = L.RNN(L.LSTMCell(5), return_state=True)(enc_in)
    dec, hd, _ = L.RNN(L.LSTMCell(5), return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    return lib.Model([enc_in, dec_in], [L.TimeDistributed(L.Dense(3, activation="softmax"))(dec), hd])


def _case(name, build, make_xy, loss="mse"):
    return pytest.param(dict(build=build, make_xy=make_xy, loss=loss), id=name)


CASES = [
    _case("lstm_cell-last", seq(rnn("LSTMCell", 5), dense(3)), lambda r: (xs(r), normal(r, B, 3))),
    _case("lstm_cell-backwards-sequences-hard_sigmoid",
          seq(rnn("LSTMCell", 4, dict(recurrent_activation="hard_sigmoid", unit_forget_bias=False),
                  go_backwards=True, return_sequences=True), td(2)),
          lambda r: (xs(r), normal(r, B, T, 2))),
    _case("gru_cell-last", seq(rnn("GRUCell", 5), dense(3)), lambda r: (xs(r), normal(r, B, 3))),
    _case("gru_cell-reset_after=False-sequences-no-bias",
          seq(rnn("GRUCell", 4, dict(reset_after=False, use_bias=False), return_sequences=True), td(2)),
          lambda r: (xs(r), normal(r, B, T, 2))),
    _case("simple_rnn_cell-relu-backwards", seq(rnn("SimpleRNNCell", 4, dict(activation="relu"), go_backwards=True),
                                                dense(2)),
          lambda r: (xs(r), normal(r, B, 2))),
    _case("stacked-regularized-softmax",
          seq(rnn("GRUCell", 6, dict(kernel_regularizer="l2", bias_constraint="non_neg"), return_sequences=True),
              rnn("SimpleRNNCell", 4, dict(recurrent_regularizer="l1")), dense(3, "softmax")),
          lambda r: (xs(r), onehot(r, B, 3)), loss="categorical_crossentropy"),
    _case("return_state-initial_state", _encoder_decoder,
          lambda r: ([xs(r), xs(r, (B, T - 2, 3))], [onehot(r, (B, T - 2), 3), normal(r, B, 5)]),
          loss=["categorical_crossentropy", "mse"]),
    _case("embedding-mask_zero-gru_cell", _embedding(rnn("GRUCell", 5)),
          lambda r: (_padded_ids(r), r.integers(0, 3, size=B)), loss="sparse_categorical_crossentropy"),
    _case("masking-lstm_cell-sequences-zero_output",
          _masking(rnn("LSTMCell", 4, return_sequences=True, zero_output_for_mask=True)),
          lambda r: (_holes(r), normal(r, B, T, 2))),
    _case("masking-bidirectional-simple_rnn_cell",
          _masking(lambda L: L.Bidirectional(L.RNN(L.SimpleRNNCell(4), return_sequences=True), merge_mode="sum")),
          lambda r: (_holes(r), normal(r, B, T, 2))),
]


@pytest.mark.parametrize("case", CASES)
def test_forward_loss_gradients(keras, case, rng, seed):
    x, y = case["make_xy"](rng)
    pair = ps.Pair(keras, case["build"], rng).compile(case["loss"])
    ps.check_predictions(pair, x, f"seed={seed}")
    ps.check_loss_and_gradients(pair, x, y, f"seed={seed}")


@pytest.mark.parametrize("case", CASES)
def test_ten_adam_steps(keras, case, rng, seed):
    x, y = case["make_xy"](rng)
    pair = ps.Pair(keras, case["build"], rng).compile(case["loss"], optimizer="adam")
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, 10)
    assert loss_err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {loss_err:.3g} relative\n{lk}\n{lo}"
    assert w_err <= ps.TRAIN_TOL, f"seed={seed}: final weights differ by {w_err:.3g} relative"
    assert lk[-1] < lk[0], f"seed={seed}: the case does not train at all ({lk[0]} -> {lk[-1]})"


def test_dropout_inference_and_stateful_predict(keras, rng, seed):
    build = seq(rnn("LSTMCell", 5, dict(dropout=0.3, recurrent_dropout=0.2), return_sequences=True),
                rnn("GRUCell", 4, dict(dropout=0.2)), dense(2))
    ps.check_predictions(ps.Pair(keras, build, rng), xs(rng), f"seed={seed}: dropout")
    pair = ps.Pair(keras, seq(rnn("SimpleRNNCell", 5, stateful=True, return_sequences=True), dense(2), batch_size=B),
                   rng)
    for k in range(3):
        ps.check_predictions(pair, xs(rng), f"seed={seed}: stateful call {k}", batch_size=B)
    for model in (pair.k, pair.o):
        model.layers[0].reset_states()
    ps.check_predictions(pair, xs(rng), f"seed={seed}: after reset_states", batch_size=B)


# ---------------------------------------------------------------------------------------------
# A cell called alone: one Keras cell step
# ---------------------------------------------------------------------------------------------

CELL_ARGS = [("LSTMCell", {}), ("LSTMCell", dict(activation="relu", use_bias=False)), ("GRUCell", {}),
             ("GRUCell", dict(reset_after=False)), ("SimpleRNNCell", {})]


@pytest.mark.parametrize("name,kw", CELL_ARGS, ids=[f"{n}-{sorted(k)}" for n, k in CELL_ARGS])
def test_cell_call_is_one_keras_step(keras, rng, seed, name, kw):
    kcell, ocell = getattr(keras.layers, name)(7, **kw), getattr(fl, name)(7, **kw)
    x = normal(rng, B, I)
    n = 2 if name == "LSTMCell" else 1
    states = [normal(rng, B, 7) for _ in range(n)]
    kcell.build((B, I))
    ocell.build((B, I))
    ocell.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in kcell.get_weights()])
    kcell.set_weights(ocell.get_weights())
    kh, kstates = kcell(x, states)
    kh, kstates = keras.ops.convert_to_numpy(kh), [keras.ops.convert_to_numpy(s) for s in kstates]
    oh, ostates = ocell(x, states)
    assert len(ostates) == n
    err = ps.max_diff([kh] + list(kstates), [oh] + list(ostates))
    assert err <= ps.PRED_TOL, f"seed={seed}: {name} step differs by {err:.3g}"
    assert ocell.state_size == kcell.state_size and ocell.output_size == kcell.output_size
    if n == 1:  # a single state tensor in, a single tensor out (Keras's GRUCell/SimpleRNNCell)
        oh1, ostate1 = ocell(x, states[0])
        assert isinstance(ostate1, np.ndarray) and np.array_equal(oh1, oh)
    # The cell's config builds Keras's cell and back.
    kback = type(kcell).from_config(ocell.get_config() | {"dtype": "float32"})
    assert kback.get_config()["units"] == 7
    assert type(ocell).from_config(ocell.get_config()).get_config() == ocell.get_config()


def test_rnn_layer_object(rng):
    cell = fl.GRUCell(4, reset_after=False)
    layer = fl.RNN(cell, return_sequences=True)
    assert isinstance(layer, fl.RNN) and isinstance(layer, fl.GRU)
    assert type(layer).__name__ == "RNN" and layer.name.startswith("rnn")
    y = layer(normal(rng, 2, 3, 5))
    assert y.shape == (2, 3, 4)
    # The layer's weights are the cell's variables: one set, moved together.
    assert [id(v) for v in layer.weights] == [id(v) for v in cell.weights]
    assert [w.shape for w in layer.get_weights()] == [(5, 12), (4, 12), (12,)]
    cfg = fusedlstm.layers.serialize(layer)
    assert cfg["class_name"] == "RNN" and cfg["config"]["cell"]["class_name"] == "GRUCell"
    assert cfg["config"]["cell"]["config"]["reset_after"] is False
    assert "kernel_regularizer" not in cfg["config"]
    back = fusedlstm.layers.deserialize(cfg)
    assert isinstance(back, fl.GRU) and isinstance(back.cell, fl.GRUCell) and back.return_sequences
    # A cell already called alone keeps its weights inside RNN.
    lstm_cell = fl.LSTMCell(3)
    h, _ = lstm_cell(normal(rng, 2, 5))
    before = lstm_cell.get_weights()
    wrapped = fl.RNN(lstm_cell)
    x = normal(rng, 2, 1, 5)
    assert np.allclose(wrapped(x), lstm_cell(x[:, 0])[0], atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(wrapped.get_weights(), before))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 5"):
        wrapped(normal(rng, 2, 1, 6))
    with pytest.raises(ValueError, match="built for 5 input features"):
        fl.RNN(lstm_cell)(normal(rng, 2, 1, 6))


def test_cell_dropout_when_training(rng):
    x, states = normal(rng, 64, 6), [normal(rng, 64, 5)]
    a, b = fl.SimpleRNNCell(5, dropout=0.5, seed=3), fl.SimpleRNNCell(5, dropout=0.5, seed=3)
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    plain = a(x, states)[0]
    dropped = a(x, states, training=True)[0]
    assert not np.allclose(plain, dropped)
    assert np.array_equal(dropped, b(x, states, training=True)[0])  # same seed, same masks
    a.reset_dropout_mask()
    assert np.array_equal(a(x, states, training=False)[0], plain)


def test_own_format_round_trip(tmp_path, rng):
    L = fusedlstm.layers
    model = fusedlstm.models.Sequential([L.Input((T, I)), L.RNN(L.LSTMCell(5), return_sequences=True),
                                         L.Bidirectional(L.RNN(L.GRUCell(3))), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x, y = xs(rng), normal(rng, B, 2)
    before = model.layers[0].cell.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    # Training moved the cell's own variables (they are the layer's weights).
    after = model.layers[0].cell.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after, model.layers[0].get_weights()))
    assert not np.array_equal(after[0], before[0])
    path = tmp_path / "m.fusedlstm"
    model.save(path)
    back = fusedlstm.models.load_model(path)
    assert [type(layer).__name__ for layer in back.layers] == ["RNN", "Bidirectional", "Dense"]
    assert np.array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    model.summary(print_fn=lambda *a, **k: None)


# ---------------------------------------------------------------------------------------------
# Keras files, both ways
# ---------------------------------------------------------------------------------------------

def _keras_sequential(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((T, I)), L.Masking(0.0), L.RNN(L.LSTMCell(6), return_sequences=True),
        L.Bidirectional(L.RNN(L.GRUCell(4, reset_after=False), return_sequences=True)),
        L.RNN(L.SimpleRNNCell(5, activation="relu"), go_backwards=True), L.Dense(2)])


def _keras_functional(keras):
    L = keras.layers
    inp = keras.Input((T, I))
    h = L.RNN(L.GRUCell(6, use_bias=False), return_sequences=True)(inp)
    y, hs, cs = L.RNN(L.LSTMCell(5), return_state=True)(h)
    y2, hf, hb = L.Bidirectional(L.RNN(L.SimpleRNNCell(3), return_state=True))(h)
    out = L.Dense(2)(L.Concatenate()([y, hs, cs, y2, hf, hb]))
    return keras.Model(inp, out)


MODELS = {"sequential": _keras_sequential, "functional": _keras_functional}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_keras_written_files_load_into_ours(keras, tmp_path, rng, seed, suffix, kind):
    km = MODELS[kind](keras)
    ps.randomize(km, rng)
    x = _holes(rng)
    ours = ps.keras_file_into_ours(km, lambda: MODELS[kind](keras), tmp_path / f"m{suffix}")
    assert "RNN" in [type(layer).__name__ for layer in ours.layers]
    err = ps.max_diff(km.predict(x, verbose=0), ours.predict(x, verbose=0))
    assert err <= ps.PRED_TOL, f"seed={seed}: {suffix}: predictions differ by {err:.3g}"


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_our_files_load_in_keras(keras, tmp_path, rng, seed, suffix, kind):
    from fusedlstm.io import from_keras

    ours = from_keras(MODELS[kind](keras))
    back = ps.our_file_into_keras(keras, ours, lambda: MODELS[kind](keras), tmp_path / f"ours{suffix}", rng)
    x = _holes(rng)
    err = ps.max_diff(back.predict(x, verbose=0), ours.predict(x, verbose=0))
    assert err <= ps.PRED_TOL, f"seed={seed}: {suffix}: predictions differ by {err:.3g}"
    rnns = [getattr(layer, "forward_layer", layer) for layer in back.layers]
    kinds = {type(layer.cell).__name__ for layer in rnns if type(layer).__name__ == "RNN"}
    assert kinds == {"LSTMCell", "GRUCell", "SimpleRNNCell"}


# ---------------------------------------------------------------------------------------------
# What is refused
# ---------------------------------------------------------------------------------------------

class _MyCell(fl.Layer):
    state_size = 3

    def call(self, inputs, states):
        return inputs, states


@pytest.mark.parametrize("cell,error,message", [
    (3, ValueError, "argument `cell`"),
    ("lstm", ValueError, "argument `cell`"),
    (None, ValueError, "argument `cell`"),
    (fl.Dense(3), NotImplementedError, "the cell Dense is not supported"),
    (_MyCell(), NotImplementedError, "the cell _MyCell is not supported"),
    ([fl.LSTMCell(3), fl.LSTMCell(2)], NotImplementedError, "StackedRNNCells"),
])
def test_bad_cells_are_refused(cell, error, message):
    with pytest.raises(error, match=message):
        fl.RNN(cell)


def test_subclassing_rnn_is_refused():
    class MyRNN(fl.RNN):
        pass

    with pytest.raises(NotImplementedError, match="MyRNN: subclasses of RNN are not supported"):
        MyRNN(fl.LSTMCell(3))


def test_bad_cell_arguments_and_calls(rng):
    with pytest.raises(ValueError, match="`units`"):
        fl.LSTMCell(0)
    with pytest.raises(ValueError, match="`dropout`"):
        fl.GRUCell(3, dropout=1.5)
    with pytest.raises(NotImplementedError, match="not supported by the fused kernel"):
        fl.SimpleRNNCell(3, activation="softplus")
    cell = fl.LSTMCell(3)
    with pytest.raises(ValueError, match=r"expects 2 states \[h, c\], got 1"):
        cell(normal(rng, 2, 4), [normal(rng, 2, 3)])
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        cell(normal(rng, 2, 5, 4), None)
    with pytest.raises(NotImplementedError, match="symbolic"):
        cell(fl.Input((4,)), None)
    with pytest.raises(NotImplementedError, match="StackedRNNCells"):
        fl.StackedRNNCells  # noqa: B018


def _rnn_config(cell):
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, T, I], "name": "in"}},
        {"class_name": "RNN", "config": {"name": "rnn", "cell": cell}}]}}


@pytest.mark.parametrize("cell,message", [
    ({"class_name": "StackedRNNCells", "config": {"cells": []}}, "RNN with a StackedRNNCells cell"),
    ({"module": "my_cells", "class_name": "PeepholeCell", "config": {"units": 3}}, "RNN with a PeepholeCell cell"),
    ({"class_name": "LSTMCell", "config": {"units": 3, "activation": "softplus"}}, "activation='softplus'"),
])
def test_unsupported_cells_in_files_are_refused(cell, message):
    from fusedlstm.io.model_config import parse_model_config

    with pytest.raises(UnsupportedModelError, match=message):
        parse_model_config(_rnn_config(cell), keras_version="3.15.1", source="m.keras")
