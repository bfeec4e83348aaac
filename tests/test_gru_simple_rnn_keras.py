"""GRU and SimpleRNN against Keras 3.15.1 (torch backend): parity and Keras files both ways.

Parity (keras_parity_support, its tolerances): the same builder makes a Keras model
and ours, Keras's randomised weights are copied into ours, then predictions, the
loss, every weight gradient of one train_on_batch, and 10 Adam steps are compared.
Files: a Keras model's .keras / .weights.h5 / .h5 load into ours and predict as
Keras does; ours saved in those formats load in Keras and predict as ours does.
Figures measured on this machine are in docs/keras-parity.md's GRU section.
"""

import numpy as np
import pytest

import keras_parity_support as ps
from test_keras_parity import B, I, T, _padded_ids, dense, keras, onehot, seq, td, xs  # noqa: F401 (keras: fixture)

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]


def gru(units, **kw):
    return lambda L: L.GRU(units, **kw)


def rnn(units, **kw):
    return lambda L: L.SimpleRNN(units, **kw)


def _gru_return_state_initial_state(lib):
    L = lib.layers
    enc_in, dec_in = lib.Input(shape=(T, I)), lib.Input(shape=(T - 2, 3))
    _, h = L.GRU(5, return_state=True)(enc_in)
    dec, hd = L.SimpleRNN(5, return_sequences=True, return_state=True)(dec_in, initial_state=[h])
    return lib.Model([enc_in, dec_in], [L.TimeDistributed(L.Dense(3, activation="softmax"))(dec), hd])


def _embedding(core):
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(T,), dtype="int32"), L.Embedding(12, 6, mask_zero=True), core(L),
                               L.Dense(3, activation="softmax")])
    return build


def _masking(core):
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(T, I)), L.Masking(0.0), core(L), L.Dense(2)])
    return build


def _holes(rng):
    x = xs(rng)
    x[1, 3:] = 0.0
    x[2, :2] = 0.0
    x[3, 2] = 0.0
    return x


def normal(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def _case(name, build, make_xy, loss="mse"):
    # weights/train: the keys keras_parity_report.py reads (no sample weights; every case trains)
    return pytest.param(dict(build=build, make_xy=make_xy, loss=loss, weights=None, train=True), id=name)


CASES = [
    _case("gru-last", seq(gru(5), dense(3)), lambda r: (xs(r), normal(r, B, 3))),
    _case("gru-reset_after=False-sequences", seq(gru(5, reset_after=False, return_sequences=True), td(2)),
          lambda r: (xs(r), normal(r, B, T, 2))),
    _case("gru-go_backwards-no-bias", seq(gru(4, go_backwards=True, use_bias=False, return_sequences=True), dense(2)),
          lambda r: (xs(r), normal(r, B, T, 2))),
    _case("gru-hard_sigmoid-relu", seq(gru(4, activation="relu", recurrent_activation="hard_sigmoid"), dense(2)),
          lambda r: (xs(r) * 2, normal(r, B, 2))),
    _case("gru-stacked-softmax", seq(gru(6, return_sequences=True), gru(4, reset_after=False), dense(3, "softmax")),
          lambda r: (xs(r), onehot(r, B, 3)), loss="categorical_crossentropy"),
    _case("simple_rnn-last", seq(rnn(5), dense(3)), lambda r: (xs(r), normal(r, B, 3))),
    _case("regularizers-constraints", seq(gru(5, kernel_regularizer="l2", recurrent_regularizer="l1",
                                              bias_constraint="non_neg", return_sequences=True),
                                          rnn(4, recurrent_regularizer="l2", kernel_constraint="unit_norm"),
                                          dense(3)),
          lambda r: (xs(r), normal(r, B, 3))),
    _case("simple_rnn-relu-backwards-sequences", seq(rnn(4, activation="relu", go_backwards=True,
                                                         return_sequences=True), td(2)),
          lambda r: (xs(r), normal(r, B, T, 2))),
    _case("return_state-initial_state", _gru_return_state_initial_state,
          lambda r: ([xs(r), xs(r, (B, T - 2, 3))], [onehot(r, (B, T - 2), 3), normal(r, B, 5)]),
          loss=["categorical_crossentropy", "mse"]),
    _case("embedding-mask_zero-gru", _embedding(gru(5)), lambda r: (_padded_ids(r), r.integers(0, 3, size=B)),
          loss="sparse_categorical_crossentropy"),
    _case("embedding-mask_zero-bidirectional-simple_rnn", _embedding(lambda L: L.Bidirectional(L.SimpleRNN(4))),
          lambda r: (_padded_ids(r), r.integers(0, 3, size=B)), loss="sparse_categorical_crossentropy"),
    _case("masking-gru-sequences", _masking(gru(4, return_sequences=True)), lambda r: (_holes(r), normal(r, B, T, 2))),
    _case("masking-bidirectional-gru-sequences",
          _masking(lambda L: L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False), merge_mode="sum")),
          lambda r: (_holes(r), normal(r, B, T, 2))),
    _case("masking-simple_rnn-last", _masking(rnn(4)), lambda r: (_holes(r), normal(r, B, 2))),
    _case("repeatvector-gru", seq(gru(5), lambda L: L.RepeatVector(3), gru(4, return_sequences=True),
                                  td(3, "softmax")),
          lambda r: (xs(r), onehot(r, (B, 3), 3)), loss="categorical_crossentropy"),
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
    """Dropout layers predict as without dropout; a stateful GRU carries h across predict calls as Keras's."""
    build = seq(gru(5, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
                rnn(4, dropout=0.2, recurrent_dropout=0.4), dense(2))
    ps.check_predictions(ps.Pair(keras, build, rng), xs(rng), f"seed={seed}: dropout")
    stateful = seq(gru(5, stateful=True, return_sequences=True), dense(2), batch_size=B)
    pair = ps.Pair(keras, stateful, rng)
    for k in range(3):
        ps.check_predictions(pair, xs(rng), f"seed={seed}: stateful call {k}", batch_size=B)
    for model in (pair.k, pair.o):
        for layer in model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()
    ps.check_predictions(pair, xs(rng), f"seed={seed}: after reset_states", batch_size=B)


# ---------------------------------------------------------------------------------------------
# Keras files, both ways
# ---------------------------------------------------------------------------------------------

def _keras_sequential(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((T, I)), L.Masking(0.0), L.GRU(6, return_sequences=True),
        L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False)),
        L.Bidirectional(L.SimpleRNN(3, return_sequences=True, activation="relu"), merge_mode="ave"),
        L.SimpleRNN(5, go_backwards=True), L.Dense(2)])


def _keras_functional(keras):
    L = keras.layers
    inp = keras.Input((T, I))
    h = L.GRU(6, return_sequences=True, use_bias=False)(inp)
    y, state = L.SimpleRNN(5, return_state=True, go_backwards=True)(h)
    y2, hf, hb = L.Bidirectional(L.GRU(3, return_state=True))(h)
    out = L.Dense(2)(L.Concatenate()([y, state, y2, hf, hb]))
    return keras.Model(inp, out)


MODELS = {"sequential": _keras_sequential, "functional": _keras_functional}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_keras_written_files_load_into_ours(keras, tmp_path, rng, seed, suffix, kind):
    km = MODELS[kind](keras)
    ps.randomize(km, rng)
    x = _holes(rng)
    ours = ps.keras_file_into_ours(km, lambda: MODELS[kind](keras), tmp_path / f"m{suffix}")
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
    gru = [layer for layer in back.layers if type(layer).__name__ == "GRU"][0]
    assert [w.shape for w in gru.get_weights()] == [(3, 18), (6, 18), (2, 18)][:2 + gru.use_bias]
