"""Parity with Keras 3.15.1 (torch backend): same weights in, same numbers out.

For each case the model is built once in Keras and once in fusedlstm from one
builder, Keras's (randomised) weights are copied into ours, and we compare
predictions, the training loss, every weight gradient, and 20 train_on_batch
steps with Adam, SGD (momentum 0.9) and RMSprop. Tolerances and the way
gradients are observed: keras_parity_support. Measured differences are in
docs/keras-parity.md.
"""

import numpy as np
import pytest

from conftest import require
import keras_parity_support as ps

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]

B, T, I = 6, 7, 4


@pytest.fixture(scope="module")
def keras():
    require("torch", "compare")
    return require("keras", "compare")


# ---------------------------------------------------------------------------------------------
# Builders: each takes `lib` (Keras's namespace or ours) and returns an uncompiled model.
# ---------------------------------------------------------------------------------------------

def seq(*layer_fns, shape=(T, I), dtype="float32", batch_size=None):
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=shape, dtype=dtype, batch_size=batch_size)] + [f(L) for f in layer_fns])
    return build


def lstm(units, **kw):
    return lambda L: L.LSTM(units, **kw)


def dense(units, activation=None):
    return lambda L: L.Dense(units, activation=activation)


def bidi(units, merge_mode="concat", **kw):
    return lambda L: L.Bidirectional(L.LSTM(units, **kw), merge_mode=merge_mode)


def td(units, activation=None):
    return lambda L: L.TimeDistributed(L.Dense(units, activation=activation))


def _return_state(lib):
    L = lib.layers
    x = lib.Input(shape=(T, I))
    y, h, c = L.LSTM(5, return_sequences=True, return_state=True)(x)
    return lib.Model(x, [y, h, c])


def _initial_state(lib):
    L = lib.layers
    enc_in, dec_in = lib.Input(shape=(T, I)), lib.Input(shape=(T - 2, 3))
    _, h, c = L.LSTM(5, return_state=True)(enc_in)
    dec = L.LSTM(5, return_sequences=True)(dec_in, initial_state=[h, c])
    return lib.Model([enc_in, dec_in], L.TimeDistributed(L.Dense(3, activation="softmax"))(dec))


def _bidi_none(lib):
    L = lib.layers
    x = lib.Input(shape=(T, I))
    yf, yb = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=None)(x)
    return lib.Model(x, [yf, yb])


def _embedding(bidirectional):
    def build(lib):
        L = lib.layers
        core = L.Bidirectional(L.LSTM(5)) if bidirectional else L.LSTM(5)
        return lib.Sequential([lib.Input(shape=(T,), dtype="int32"), L.Embedding(12, 6, mask_zero=True), core,
                               L.Dense(3, activation="softmax")])
    return build


def _padded_ids(rng, n=B, t=T, vocab=12):
    ids = rng.integers(1, vocab, size=(n, t)).astype(np.int32)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t  # one full row, one row of a single token
    lengths[1] = 1
    for r, n_real in enumerate(lengths):
        ids[r, : t - n_real] = 0  # pre-padding, as pad_sequences does by default
    return ids


def onehot(rng, shape, classes):
    return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, size=shape)]


def xs(rng, shape=(B, T, I)):
    return rng.normal(size=shape).astype(np.float32)


# (builder, inputs, targets, loss, sample weights) per case
def _case(name, build, make_xy, loss="mse", weights=None, train=True):
    return pytest.param(dict(build=build, make_xy=make_xy, loss=loss, weights=weights, train=train), id=name)


CASES = [
    _case("lstm-last", seq(lstm(5), dense(3)), lambda r: (xs(r), r.normal(size=(B, 3)).astype(np.float32))),
    _case("lstm-sequences", seq(lstm(5, return_sequences=True), td(2)),
          lambda r: (xs(r), r.normal(size=(B, T, 2)).astype(np.float32))),
    _case("return_state", _return_state,
          lambda r: (xs(r), [r.normal(size=s).astype(np.float32) for s in ((B, T, 5), (B, 5), (B, 5))])),
    _case("go_backwards", seq(lstm(5, go_backwards=True, return_sequences=True), dense(2)),
          lambda r: (xs(r), r.normal(size=(B, T, 2)).astype(np.float32))),
    _case("use_bias=False", seq(lstm(5, use_bias=False), dense(3, "softmax")),
          lambda r: (xs(r), onehot(r, B, 3)), loss="categorical_crossentropy"),
    _case("hard_sigmoid", seq(lstm(5, recurrent_activation="hard_sigmoid", return_sequences=True),
                              lstm(4, activation="hard_sigmoid"), dense(2)),
          lambda r: (xs(r) * 2, r.normal(size=(B, 2)).astype(np.float32))),
    _case("relu-linear", seq(lstm(4, activation="relu"), dense(2, "tanh")),
          lambda r: (xs(r), r.normal(size=(B, 2)).astype(np.float32))),
    _case("initial_state", _initial_state,
          lambda r: ([xs(r), xs(r, (B, T - 2, 3))], onehot(r, (B, T - 2), 3)), loss="categorical_crossentropy"),
    _case("embedding-mask_zero", _embedding(False), lambda r: (_padded_ids(r), r.integers(0, 3, size=B)),
          loss="sparse_categorical_crossentropy"),
    _case("embedding-mask_zero-bidirectional", _embedding(True),
          lambda r: (_padded_ids(r), r.integers(0, 3, size=B)), loss="sparse_categorical_crossentropy"),
    _case("stacked", seq(lstm(6, return_sequences=True), lstm(5, return_sequences=True), lstm(4), dense(2)),
          lambda r: (xs(r), r.normal(size=(B, 2)).astype(np.float32))),
    *[_case(f"bidirectional-{mode}", seq(bidi(4, mode, return_sequences=True), dense(2)),
            lambda r: (xs(r), r.normal(size=(B, T, 2)).astype(np.float32))) for mode in ("concat", "sum", "mul", "ave")],
    _case("bidirectional-last", seq(bidi(4), dense(2)), lambda r: (xs(r), r.normal(size=(B, 2)).astype(np.float32))),
    _case("bidirectional-None", _bidi_none,
          lambda r: (xs(r), [r.normal(size=(B, T, 4)).astype(np.float32) for _ in range(2)])),
    _case("dense-3d", seq(lstm(5, return_sequences=True), dense(4, "relu"), dense(3, "softmax")),
          lambda r: (xs(r), onehot(r, (B, T), 3)), loss="categorical_crossentropy"),
    _case("timedistributed-dense", seq(lstm(5, return_sequences=True), td(3, "softmax")),
          lambda r: (xs(r), r.integers(0, 3, size=(B, T))), loss="sparse_categorical_crossentropy"),
    _case("repeatvector", seq(lstm(5), lambda L: L.RepeatVector(3), lstm(4, return_sequences=True), td(3, "softmax")),
          lambda r: (xs(r), onehot(r, (B, 3), 3)), loss="categorical_crossentropy"),
    _case("sample_weight", seq(lstm(5), dense(3, "softmax")), lambda r: (xs(r), onehot(r, B, 3)),
          loss="categorical_crossentropy", weights=lambda r: r.uniform(0.0, 2.0, size=B).astype(np.float32)),
    _case("sample_weight-temporal", seq(lstm(5, return_sequences=True), td(3, "softmax")),
          lambda r: (xs(r), r.integers(0, 3, size=(B, T))), loss="sparse_categorical_crossentropy",
          weights=lambda r: r.uniform(0.0, 2.0, size=(B, T)).astype(np.float32)),
    _case("dropout-inference", seq(lstm(5, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
                                   lambda L: L.Dropout(0.5), lstm(4), dense(2)),
          lambda r: (xs(r), r.normal(size=(B, 2)).astype(np.float32)), train=False),
]


@pytest.mark.parametrize("case", CASES)
def test_forward_loss_gradients(keras, case, rng, seed):
    x, y = case["make_xy"](rng)
    sw = case["weights"](rng) if case["weights"] else None
    pair = ps.Pair(keras, case["build"], rng).compile(case["loss"])
    ps.check_predictions(pair, x, f"seed={seed}")
    if not case["train"]:
        lk = pair.k.test_on_batch(x, y, sample_weight=sw)
        lo = pair.o.test_on_batch(x, y, sample_weight=sw)
        assert abs(float(ps.as_list(lk)[0]) - float(ps.as_list(lo)[0])) <= ps.LOSS_TOL, f"seed={seed}: test loss"
        return
    ps.check_loss_and_gradients(pair, x, y, f"seed={seed}", sample_weight=sw)


TRAIN_CASES = [c for c in CASES if c.values[0]["train"]]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_twenty_training_steps(keras, case, optimizer, rng, seed):
    x, y = case["make_xy"](rng)
    sw = case["weights"](rng) if case["weights"] else None
    pair = ps.Pair(keras, case["build"], rng).compile(case["loss"], optimizer=optimizer, lr=1e-2)
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, 20, sw)
    assert loss_err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {loss_err:.3g} relative\n{lk}\n{lo}"
    assert w_err <= ps.TRAIN_TOL, f"seed={seed}: final weights differ by {w_err:.3g} relative"
    assert lk[-1] < lk[0], f"seed={seed}: the case does not train at all ({lk[0]} -> {lk[-1]})"
