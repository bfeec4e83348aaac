"""Parity of the non-recurrent layers with Keras 3.15.1 (torch backend): same weights, same numbers.

Each case puts the layer(s) under test in a small model with an LSTM (their usual
company here), copies Keras's randomised weights into ours, and compares the
predictions, the training loss and every weight gradient of one batch, then the loss
curves and final weights (moving statistics included) of 10 Adam steps. Tolerances
and the way gradients are observed: keras_parity_support. The noise layers draw
different random numbers than Keras, so only their inference (identity) is compared.
Measured differences: docs/keras-parity.md.
"""

import numpy as np
import pytest

from conftest import require
import keras_parity_support as ps

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS),
              # Keras warns when a layer without mask support drops a mask (we drop it silently).
              pytest.mark.filterwarnings("ignore:Layer '.*' \\(of type .*\\) was passed an input with a mask"),
              pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")]

B, T, I = 4, 9, 3
ADAM_STEPS = 10


@pytest.fixture(scope="module")
def keras():
    require("torch", "compare")
    return require("keras", "compare")


class Pair(ps.Pair):
    """ps.Pair with positive moving variances (a uniform(-s, s) draw would make them negative)."""

    def __init__(self, keras, build, rng, scale=0.5):
        super().__init__(keras, build, rng, scale)
        for layer in self.k.layers:
            arrays = layer.get_weights()
            names = [w.path for w in layer.weights]
            if any("moving_variance" in n for n in names):
                layer.set_weights([np.abs(a) + 0.5 if "moving_variance" in n else a for a, n in zip(arrays, names)])
        ps.copy_weights(self.k, self.o)


def seq(*layer_fns, shape=(T, I), dtype="float32"):
    def build(lib):
        return lib.Sequential([lib.Input(shape=shape, dtype=dtype)] + [f(lib.layers) for f in layer_fns])
    return build


def xs(rng, shape=(B, T, I)):
    return rng.normal(size=shape).astype(np.float32)


def targets(shape):
    return lambda r: r.normal(size=shape).astype(np.float32)


def padded_ids(rng, n=B, t=T, vocab=12):
    ids = rng.integers(1, vocab, size=(n, t)).astype(np.int32)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0], lengths[1] = t, 1
    for r, n_real in enumerate(lengths):
        ids[r, : t - n_real] = 0
    return ids


def lstm(units=5, **kw):
    return lambda L: L.LSTM(units, **kw)


def dense(units=3, activation=None, use_bias=True):
    return lambda L: L.Dense(units, activation=activation, use_bias=use_bias)


# Before a batch normalization a bias has no effect (the normalization subtracts it again): its
# gradient is round-off, which Adam scales up to full steps of random sign. Models leave it out.
def dense_before_bn(units=4):
    return dense(units, use_bias=False)


def layer(name, *args, **kw):
    return lambda L: getattr(L, name)(*args, **kw)


def td(name, *args, **kw):
    return lambda L: L.TimeDistributed(getattr(L, name)(*args, **kw))


def case(name, build, make_x=xs, make_y=targets((B, 3)), loss="mse", train=True):
    return pytest.param(dict(build=build, make_x=make_x, make_y=make_y, loss=loss, train=train), id=name)


def _embedding_masked(*middle, pool=None):
    def build(lib):
        L = lib.layers
        layers = [lib.Input(shape=(T,), dtype="int32"), L.Embedding(12, 4, mask_zero=True)]
        layers += [f(L) for f in middle]
        layers += [L.LSTM(5, return_sequences=pool is not None)]
        if pool is not None:
            layers.append(pool(L))
        layers.append(L.Dense(3))
        return lib.Sequential(layers)
    return build


def _td_pooling(lib):
    """(B, T, L, C) frames: TimeDistributed pooling of each frame, then an LSTM over the frames."""
    L = lib.layers
    x = lib.Input(shape=(5, 8, 3))
    h = L.TimeDistributed(L.MaxPooling1D(2))(x)
    h = L.TimeDistributed(L.AveragePooling1D(3, strides=1, padding="same"))(h)
    h = L.TimeDistributed(L.GlobalAveragePooling1D())(h)
    return lib.Model(x, L.Dense(3)(L.LSTM(5)(h)))


def _cnn_lstm_ids(lib):
    """Keras's imdb_cnn_lstm shape in small: Embedding -> Conv1D(relu) -> MaxPooling1D -> LSTM."""
    L = lib.layers
    return lib.Sequential([lib.Input(shape=(T + 3,), dtype="int32"), L.Embedding(12, 4),
                           L.Conv1D(6, 3, activation="relu"), L.MaxPooling1D(2), L.LSTM(5), L.Dense(3)])


CASES = [
    # convolution
    case("conv1d-valid-relu", seq(layer("Conv1D", 4, 3, activation="relu"), lstm(), dense())),
    case("conv1d-same-strided", seq(layer("Conv1D", 5, 4, strides=2, padding="same", activation="tanh"), lstm(),
                                    dense())),
    case("conv1d-causal-dilated-groups", seq(layer("Conv1D", 6, 2, padding="causal", dilation_rate=2, groups=3),
                                             layer("Conv1D", 4, 3, padding="same", use_bias=False), lstm(), dense())),
    case("conv1d-channels-first", seq(layer("Conv1D", 4, 2, data_format="channels_first"), lstm(), dense(),
                                      shape=(T, 5)), make_x=lambda r: xs(r, (B, T, 5))),
    case("cnn-lstm", _cnn_lstm_ids, make_x=lambda r: r.integers(0, 12, (B, T + 3)).astype(np.int32)),
    case("td-conv1d", seq(td("Conv1D", 3, 2, padding="same"), layer("Reshape", (5, 8 * 3)), lstm(), dense(),
                          shape=(5, 8, 2)), make_x=lambda r: xs(r, (B, 5, 8, 2))),
    # pooling
    case("max-pooling-valid", seq(layer("MaxPooling1D"), lstm(), dense())),
    case("max-pooling-same-strided", seq(layer("MaxPooling1D", 3, strides=2, padding="same"), lstm(), dense())),
    case("average-pooling-valid", seq(layer("AveragePooling1D", 3, strides=2), lstm(), dense())),
    # 9 steps, pool 3, stride 1: one padding step each side (even: Keras's torch backend agrees, see pooling.py)
    case("average-pooling-same", seq(layer("AveragePooling1D", 3, strides=1, padding="same"), lstm(), dense())),
    case("pooling-channels-first", seq(layer("MaxPooling1D", 2, data_format="channels_first"),
                                       layer("AveragePooling1D", 2, data_format="channels_first"), lstm(), dense(),
                                       shape=(T, 8)),
         make_x=lambda r: xs(r, (B, T, 8))),
    case("global-max-pooling", seq(lstm(5, return_sequences=True), layer("GlobalMaxPooling1D"), dense())),
    case("global-average-pooling-keepdims", seq(lstm(5, return_sequences=True),
                                                layer("GlobalAveragePooling1D", keepdims=True), layer("Flatten"),
                                                dense())),
    case("global-average-pooling-masked", _embedding_masked(pool=layer("GlobalAveragePooling1D")),
         make_x=padded_ids),
    # reshaping
    case("upsampling-padding-cropping", seq(layer("UpSampling1D", 2), layer("ZeroPadding1D", (1, 2)),
                                            layer("Cropping1D", (2, 0)), lstm(), dense())),
    case("permute", seq(layer("Permute", (2, 1)), lstm(), dense(), shape=(T, 4)), make_x=lambda r: xs(r, (B, T, 4))),
    # normalization
    case("layer-normalization", seq(lstm(5, return_sequences=True), layer("LayerNormalization"), lstm(4), dense())),
    case("layer-normalization-options", seq(lstm(5, return_sequences=True),
                                            layer("LayerNormalization", axis=[1, 2], center=False, epsilon=1e-2),
                                            layer("LayerNormalization", rms_scaling=True), lstm(4), dense())),
    case("batch-normalization-3d", seq(dense_before_bn(), layer("BatchNormalization", momentum=0.9), lstm(), dense())),
    case("batch-normalization-2d", seq(lstm(6), layer("BatchNormalization", center=False, epsilon=1e-2),
                                       dense())),
    case("batch-normalization-masked", _embedding_masked(layer("BatchNormalization", momentum=0.5)),
         make_x=padded_ids),
    # activations
    case("activation-layers", seq(dense(6), layer("LeakyReLU"), layer("ReLU", max_value=0.8, threshold=0.1,
                                                                      negative_slope=0.2),
                                  layer("ELU", alpha=0.7), layer("PReLU", shared_axes=[1]), lstm(), dense())),
    case("relu-variants", seq(dense(6), layer("ReLU", negative_slope=0.1), layer("ReLU", max_value=6.0),
                              layer("LeakyReLU", negative_slope=0.05), layer("PReLU"), lstm(), dense())),
    case("softmax-layers", seq(lstm(5, return_sequences=True), layer("Softmax", axis=1), lstm(4), dense(3),
                               layer("Softmax")), make_y=lambda r: np.eye(3, dtype=np.float32)[r.integers(0, 3, B)],
         loss="categorical_crossentropy"),
    case("noise-inference", seq(layer("GaussianNoise", 0.3), layer("GaussianDropout", 0.2),
                                layer("AlphaDropout", 0.1), lstm(), dense()), train=False),
    # TimeDistributed
    case("td-batch-normalization", seq(dense_before_bn(), td("BatchNormalization", momentum=0.8), lstm(), dense())),
    case("td-normalization-activations", seq(td("LayerNormalization"), td("PReLU"), td("LeakyReLU", 0.1),
                                             lstm(), dense())),
    case("td-pooling", _td_pooling, make_x=lambda r: xs(r, (B, 5, 8, 3))),
]


@pytest.mark.parametrize("case", CASES)
def test_forward_loss_gradients(keras, case, rng, seed):
    x, y = case["make_x"](rng), case["make_y"](rng)
    pair = Pair(keras, case["build"], rng).compile(case["loss"])
    ps.check_predictions(pair, x, f"seed={seed}")
    if not case["train"]:
        lk, lo = pair.k.test_on_batch(x, y), pair.o.test_on_batch(x, y)
        assert abs(float(ps.as_list(lk)[0]) - float(ps.as_list(lo)[0])) <= ps.LOSS_TOL, f"seed={seed}: test loss"
        return
    ps.check_loss_and_gradients(pair, x, y, f"seed={seed}")


TRAIN_CASES = [c for c in CASES if c.values[0]["train"]]


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_adam_steps(keras, case, rng, seed):
    x, y = case["make_x"](rng), case["make_y"](rng)
    pair = Pair(keras, case["build"], rng).compile(case["loss"], optimizer="adam")
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, ADAM_STEPS)
    assert loss_err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {loss_err:.3g} relative\n{lk}\n{lo}"
    assert w_err <= ps.TRAIN_TOL, f"seed={seed}: final weights differ by {w_err:.3g} relative"
    assert lk[-1] < lk[0], f"seed={seed}: the case does not train at all ({lk[0]} -> {lk[-1]})"
    # and inference afterwards uses the (now moved) moving statistics alike
    ps.check_predictions(pair, x, f"seed={seed} after training")


def test_average_pooling_same_uneven_padding_excludes_padding(keras):
    """With uneven 'same' padding Keras 3.15's torch backend repeats the edge step into the
    window (keras-team/keras#23233, fixed after 3.15); we average the real steps only, as
    TensorFlow and JAX do. Where the padding is even both agree (the case above)."""
    from fusedlstm.layers import AveragePooling1D

    x = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)
    ours = AveragePooling1D(4, strides=1, padding="same")(x).ravel()
    np.testing.assert_allclose(ours, [2.0, 2.5, 3.5, 4.0, 4.5])  # windows [1,2,3] [1..4] [2..5] [3,4,5] [4,5]
    torch_backend = np.asarray(keras.layers.AveragePooling1D(4, strides=1, padding="same")(x)).ravel()
    assert abs(torch_backend[0] - 1.75) < 1e-6  # (1 + 1 + 2 + 3) / 4: the repeated edge
