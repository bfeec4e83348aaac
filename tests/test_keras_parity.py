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

B, T, I = 4, 5, 3


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
    _case("hard_sigmoid", seq(lstm(5, activation="hard_sigmoid", recurrent_activation="hard_sigmoid"), dense(2)),
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
    pair = ps.Pair(keras, case["build"], rng).compile(case["loss"], optimizer=optimizer)
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, 20, sw)
    assert loss_err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {loss_err:.3g} relative\n{lk}\n{lo}"
    assert w_err <= ps.TRAIN_TOL, f"seed={seed}: final weights differ by {w_err:.3g} relative"
    assert lk[-1] < lk[0], f"seed={seed}: the case does not train at all ({lk[0]} -> {lk[-1]})"


# ---------------------------------------------------------------------------------------------
# Stateful LSTMs
# ---------------------------------------------------------------------------------------------

def _stateful(lib):
    L = lib.layers
    return lib.Sequential([lib.Input(batch_shape=(B, T, I)), L.LSTM(5, stateful=True, return_sequences=True),
                           L.Dense(2)])


def _stateless_with_state(lib):
    """The stateful model's computation with the carried state as explicit inputs and outputs."""
    L = lib.layers
    x, h0, c0 = lib.Input(batch_shape=(B, T, I)), lib.Input(batch_shape=(B, 5)), lib.Input(batch_shape=(B, 5))
    y, h, c = L.LSTM(5, return_sequences=True, return_state=True)(x, initial_state=[h0, c0])
    out = L.Dense(2)(y)
    return lib.Model([x, h0, c0], out), lib.Model([x, h0, c0], [h, c])


def test_stateful_forward_across_calls(keras, rng, seed):
    pair = ps.Pair(keras, _stateful, rng)
    chunks = [xs(rng) for _ in range(3)]
    outs = []
    for k, x in enumerate(chunks):
        pk = pair.k.predict(x, verbose=0, batch_size=B)
        po = pair.o.predict(x, verbose=0, batch_size=B)
        err = ps.max_diff(pk, po)
        assert err <= ps.PRED_TOL, f"seed={seed}: call {k} differs by {err:.3g}"
        outs.append(po)
    assert ps.max_diff(outs[0], pair.o.predict(chunks[0], verbose=0, batch_size=B)) > 1e-3  # the state carried
    for m in (pair.k, pair.o):
        for layer in m.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()
    pk = pair.k.predict(chunks[0], verbose=0, batch_size=B)
    po = pair.o.predict(chunks[0], verbose=0, batch_size=B)
    np.testing.assert_array_equal(po, outs[0])
    assert ps.max_diff(pk, po) <= ps.PRED_TOL, f"seed={seed}: after reset_states"


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_stateful_training_matches_explicit_state(keras, rng, seed, optimizer):
    """Keras-torch cannot train a stateful LSTM (an in-place autograd error), so our stateful
    training is compared with Keras training the same computation statelessly, the state carried
    by hand through initial_state: before each step the state after the chunk is computed with
    the weights of that step, which is what a stateful layer keeps."""
    klib, olib = ps.keras_lib(keras), ps.ours_lib()
    ktrain, kstate = _stateless_with_state(klib)
    ours = _stateful(olib)
    ps.randomize(ktrain, rng)
    ps.copy_weights(ktrain, ours)
    ktrain.compile(optimizer=ps.make_optimizer(klib, optimizer), loss="mse")
    ours.compile(optimizer=ps.make_optimizer(olib, optimizer), loss="mse")
    h = c = np.zeros((B, 5), np.float32)
    lk, lo = [], []
    for step in range(20):
        x, y = xs(rng), rng.normal(size=(B, T, 2)).astype(np.float32)
        h_next, c_next = kstate.predict([x, h, c], verbose=0, batch_size=B)
        lk.append(float(ktrain.train_on_batch([x, h, c], y)))
        lo.append(float(ps.as_list(ours.train_on_batch(x, y))[0]))
        h, c = h_next, c_next
    lk, lo = np.array(lk), np.array(lo)
    err = float(np.max(np.abs(lk - lo) / np.maximum(np.abs(lk), 1e-3)))
    assert err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {err:.3g}\n{lk}\n{lo}"
    for layer in (layer for layer in ktrain.layers if layer.get_weights()):
        for a, b in zip(layer.get_weights(), ours.get_layer(layer.name).get_weights()):
            assert np.max(np.abs(a - b)) <= ps.TRAIN_TOL * max(np.max(np.abs(a)), 1e-3), f"seed={seed}: {layer.name}"


# ---------------------------------------------------------------------------------------------
# fit over several batches; cross-entropy after softmax
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mse"])
def test_fit_epoch_losses(keras, rng, seed, loss):
    pair = ps.Pair(keras, seq(lstm(5), dense(3, "softmax")), rng).compile(loss, "adam", metrics=["accuracy"])
    x, y = xs(rng, (10, T, I)), onehot(rng, 10, 3)  # batches of 4, 4 and 2: the last one weighs less
    hk = pair.k.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0).history
    ho = pair.o.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0).history
    for key in ("loss", "accuracy"):
        a, b = np.array(hk[key]), np.array(ho[key])
        assert np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-3)) <= ps.TRAIN_TOL, f"seed={seed}: {key}\n{a}\n{b}"


def test_softmax_crossentropy_clips_as_keras_torch(keras, rng, seed):
    """Keras 3 on torch clips softmax probabilities to [1e-7, 1 - 1e-7] before the log (on
    TensorFlow it would use the logits); we follow the torch backend: a confidently wrong
    prediction costs -log(1e-7) = 16.118, and no gradient flows through the clipped entry."""
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(I,)), L.Dense(3, activation="softmax")])

    pair = ps.Pair(keras, build, rng, scale=20.0).compile("categorical_crossentropy", "sgd", 1e-3)
    x = rng.normal(size=(8, I)).astype(np.float32) * 3
    probs = pair.k.predict(x, verbose=0)
    y = np.eye(3, dtype=np.float32)[np.argmin(probs, axis=1)]  # the least likely class: clipped rows
    assert np.sum(np.min(probs, axis=1) < 1e-7) >= 2, f"seed={seed}: the case needs saturated rows"
    ps.check_predictions(pair, x, f"seed={seed}")
    ps.check_loss_and_gradients(pair, x, y, f"seed={seed}")
    ours = float(pair.o.test_on_batch(x, y))
    clipped = float(np.mean(-np.log(np.clip(probs[y.astype(bool)], 1e-7, 1 - 1e-7))))
    assert abs(ours - clipped) <= 1e-5 * clipped
    logits = x @ pair.k.layers[0].get_weights()[0] + pair.k.layers[0].get_weights()[1]
    tf_style = float(np.mean(-(logits - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1,
                                                      keepdims=True)) - logits.max(1, keepdims=True))[y.astype(bool)]))
    assert tf_style > ours + 1.0  # the logits value is not what Keras-torch (or we) report


# ---------------------------------------------------------------------------------------------
# Keras 2's hard_sigmoid (files from Keras < 3 load as 'hard_sigmoid_k2')
# ---------------------------------------------------------------------------------------------

def test_keras2_hard_sigmoid_matches_keras_with_the_keras2_function(keras, rng, seed, tmp_path):
    """A Keras 2 .h5 whose LSTM uses 'hard_sigmoid' must compute clip(0.2x + 0.5, 0, 1): the
    reference is Keras 3 running that function as a custom recurrent activation."""
    require("h5py", "h5")
    from fusedlstm.io import load_keras_file
    import json
    import h5py

    def k2_hard_sigmoid(z):
        return keras.ops.clip(0.2 * z + 0.5, 0.0, 1.0)

    L = keras.layers
    ref = keras.Sequential([keras.Input((T, I)), L.LSTM(5, recurrent_activation=k2_hard_sigmoid), L.Dense(2)])
    ps.randomize(ref, rng, scale=1.5)
    lstm_w, dense_w = ref.layers[0].get_weights(), ref.layers[1].get_weights()
    cfg = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        {"class_name": "LSTM", "config": {"name": "lstm_1", "units": 5, "batch_input_shape": [None, T, I],
                                          "recurrent_activation": "hard_sigmoid", "activation": "tanh"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2}}]}}
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["model_config"] = json.dumps(cfg).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"lstm_1", b"dense_1"]
        for name, arrays, names in (("lstm_1", lstm_w, ("kernel", "recurrent_kernel", "bias")),
                                    ("dense_1", dense_w, ("kernel", "bias"))):
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/{n}:0".encode() for n in names]
            for n, a in zip(names, arrays):
                lg.create_dataset(f"{name}/{n}:0", data=a)
    ours = load_keras_file(path)
    x = xs(rng) * 2
    err = ps.max_diff(ref.predict(x, verbose=0), ours.predict(x, verbose=0))
    assert err <= ps.PRED_TOL, f"seed={seed}: Keras 2 hard_sigmoid differs by {err:.3g}"
    # Keras 3 has no such function: saving this model to a Keras file is refused, nothing written.
    from fusedlstm.io import UnsupportedModelError, save_keras_file
    for name in ("m.keras", "m.weights.h5", "m.h5"):
        with pytest.raises(UnsupportedModelError, match="hard_sigmoid_k2.*no equivalent in Keras 3"):
            save_keras_file(ours, tmp_path / name)
        assert not (tmp_path / name).exists()
