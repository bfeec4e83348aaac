"""The Conv1D layer (layers/conv.py) on the C++ convolution kernels: the float64 reference,
finite differences, configs, weights, files and bad input.

The kernels themselves (every option, every ISA level, fuzzing) are tested in
test_conv1d_kernel.py; here the layer around them: channels_first, the activation, the
gradient buffers it writes, models, masks, TimeDistributed. Keras 3.15.1 parity is in
test_keras_parity_layers.py, Keras's files in test_keras_files.py.
"""

import numpy as np
import pytest

from fusedlstm import reference as ref
from fusedlstm.layers import (LSTM, Add, Conv1D, Dense, Embedding, GlobalMaxPooling1D, Input, MaxPooling1D,
                              TimeDistributed)
from fusedlstm.layers.serialization import deserialize, serialize
from fusedlstm.models import Model, Sequential, load_model
from test_layers_gradients import F, _away_from_kinks, check_model_gradients, onehot
from test_layers_nonrecurrent import close, f32, run

# (kernel_size, strides, padding, dilation_rate, groups), odd sizes throughout
OPTIONS = [(3, 1, "valid", 1, 1), (1, 1, "valid", 1, 1), (4, 3, "valid", 1, 1), (3, 1, "same", 1, 1),
           (4, 2, "same", 1, 1), (5, 3, "same", 1, 3), (3, 1, "causal", 2, 1), (2, 1, "causal", 3, 3),
           (3, 1, "same", 2, 1), (6, 1, "valid", 1, 3)]


def _reference(x, W, b, dy, activation, **opt):
    """(y, dx, dW, db) in float64: conv, then the activation, then back through both."""
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    z = ref.conv1d_forward(x64, W64, None if b is None else b.astype(np.float64), **opt)
    y, dz = {"linear": (z, dy), "tanh": (np.tanh(z), dy * (1 - np.tanh(z) ** 2)),
             "relu": (np.maximum(z, 0), dy * (z > 0))}[activation]
    dx, dW, db = ref.conv1d_backward(dz.astype(np.float64), x64, W64, b is not None, **opt)
    return y, dx, dW, db


@pytest.mark.parametrize("kernel_size,strides,padding,dilation_rate,groups", OPTIONS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv1d_matches_reference(rng, seed, kernel_size, strides, padding, dilation_rate, groups, data_format):
    B, L, C, Fl = 3, 13, 6, 9
    layer = Conv1D(Fl, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate, groups=groups,
                   data_format=data_format, activation="tanh")
    x = f32(rng, (B, L, C))
    xin = x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 2, 1))
    layer._build_from_shapes([(None,) + xin.shape[1:]])
    layer.set_weights([f32(rng, layer.kernel.shape, 0.4), f32(rng, (Fl,), 0.3)])
    y, mask, dx, grads, dy = run(layer, xin, rng=rng)
    to_last = (lambda a: a) if data_format == "channels_last" else (lambda a: a.transpose(0, 2, 1))
    opt = dict(strides=strides, padding=padding, dilation_rate=dilation_rate, groups=groups)
    ry, rdx, rdW, rdb = _reference(x, layer.kernel.value, layer.bias.value, to_last(dy).astype(np.float64), "tanh",
                                   **opt)
    what = f"seed={seed} {data_format} {opt}"
    assert mask is None  # Conv1D drops a mask, as every Keras 3 convolution
    close(to_last(y), ry, what + " y")
    close(to_last(dx), rdx, what + " dx")
    close(grads["kernel"], rdW, what + " dW")
    close(grads["bias"], rdb, what + " db")
    assert y.shape == layer.compute_output_shape((B,) + xin.shape[1:])


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_conv1d_without_bias_and_activations(rng, seed, activation):
    layer = Conv1D(5, 3, padding="same", use_bias=False, activation=activation)
    x = f32(rng, (4, 7, 2))
    layer._build_from_shapes([(None, 7, 2)])
    assert [v.name for v in layer.weights] == ["kernel"]
    y, _, dx, grads, dy = run(layer, x, rng=rng)
    ry, rdx, rdW, rdb = _reference(x, layer.kernel.value, None, dy.astype(np.float64), activation, padding="same")
    assert rdb is None
    close(y, ry, f"seed={seed} y")
    close(dx, rdx, f"seed={seed} dx")
    close(grads["kernel"], rdW, f"seed={seed} dW")


def test_gradients_accumulate_over_shared_uses(rng):
    """A Conv1D called twice in one model: both calls' weight gradients add up in the same buffer."""
    conv = Conv1D(4, 3, padding="causal", **F)
    a, b = Input((6, 3), **F), Input((6, 3), **F)
    out = Dense(2, **F)(Add(**F)([LSTM(3, **F)(conv(a)), LSTM(3, **F)(conv(b))]))
    m = Model([a, b], out)
    check_model_gradients(m, [rng.standard_normal((5, 6, 3)), rng.standard_normal((5, 6, 3))],
                          rng.standard_normal((5, 2)), "mse", rng)


def test_frozen_bias_with_trainable_kernel(rng):
    """The kernel's gradient goes to the flat buffer, the bias's does not exist: the call must
    write only what is asked for."""
    conv = Conv1D(4, 2, **F)
    m = Sequential([Input((6, 3), **F), conv, LSTM(3, **F), Dense(2, **F)])
    conv.bias.trainable = False
    check_model_gradients(m, rng.standard_normal((5, 6, 3)), rng.standard_normal((5, 2)), "mse", rng)


# ---------------------------------------------------------------------------------------------
# Whole models against finite differences (float64)
# ---------------------------------------------------------------------------------------------

def test_finite_differences_conv_stack(rng):
    m = Sequential([Input((11, 5), **F),
                    Conv1D(6, 3, padding="causal", dilation_rate=2, activation="tanh", **F),
                    Conv1D(4, 2, strides=2, padding="same", groups=2, **F),
                    Conv1D(3, 1, data_format="channels_first", use_bias=False, **F),  # over the 6 steps as channels
                    LSTM(3, **F), Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((4, 11, 5)), rng.standard_normal((4, 2)), "mse", rng)


def test_finite_differences_cnn_lstm_with_relu_and_pooling(rng):
    """The CNN-LSTM shape (Embedding -> Conv1D(relu) -> MaxPooling1D -> LSTM). A relu input within
    the step (1e-6) of 0 would make the difference quotient meaningless; with ~200 N(0, 0.5)
    inputs that happens about once in 10^4 draws. Windows of relu zeros tie at 0 on both sides."""
    ids = rng.integers(0, 9, (6, 12))
    m = Sequential([Input((12,), dtype="int32"), Embedding(9, 4, **F), Conv1D(5, 3, activation="relu", **F),
                    MaxPooling1D(2, **F), LSTM(4, **F), Dense(3, activation="softmax", **F)])
    check_model_gradients(m, ids, onehot(rng, 6, 3), "categorical_crossentropy", rng)


def test_finite_differences_one_hot_input(rng):
    m = Sequential([Input((10, 6), **F), Conv1D(5, 4, activation="tanh", **F), GlobalMaxPooling1D(**F),
                    Dense(2, **F)])
    x = _away_from_kinks(m, lambda: onehot(rng, (5, 10), 6) + 0.01 * rng.standard_normal((5, 10, 6)))
    check_model_gradients(m, x, rng.standard_normal((5, 2)), "mse", rng)


# ---------------------------------------------------------------------------------------------
# Shapes, configs, weights, files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,shape,out", [
    (dict(filters=4, kernel_size=3), (None, 10, 5), (None, 8, 4)),
    (dict(filters=4, kernel_size=3, padding="same", strides=2), (None, 10, 5), (None, 5, 4)),
    (dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2), (None, 10, 5), (None, 10, 4)),
    (dict(filters=4, kernel_size=(3,), strides=(3,)), (None, 10, 5), (None, 3, 4)),
    (dict(filters=6, kernel_size=2, groups=3, data_format="channels_first"), (None, 3, 10), (None, 6, 9)),
    (dict(filters=4, kernel_size=3), (None, None, 5), (None, None, 4)),
])
def test_output_shapes_and_param_counts(kw, shape, out):
    layer = Conv1D(**kw)
    m = Sequential([Input(shape[1:]), layer])
    assert m.output_shape == out
    C = shape[2] if kw.get("data_format") != "channels_first" else shape[1]
    k = kw["kernel_size"][0] if isinstance(kw["kernel_size"], tuple) else kw["kernel_size"]
    assert layer.count_params() == k * C // kw.get("groups", 1) * kw["filters"] + kw["filters"]  # Keras's summary
    assert [v.name for v in layer.weights] == ["kernel", "bias"]


@pytest.mark.parametrize("make", [
    lambda: Conv1D(4, 3),
    lambda: Conv1D(6, (5,), strides=2, padding="SAME", data_format="channels_first", groups=3, activation="relu",
                   use_bias=False, kernel_initializer="he_normal", bias_initializer="ones"),
    lambda: Conv1D(2, 2, padding="causal", dilation_rate=(4,), activation="tanh"),
])
def test_config_round_trip(make):
    layer = make()
    cfg = serialize(layer)
    again = deserialize(cfg)
    assert type(again) is Conv1D and serialize(again) == cfg
    assert cfg["config"]["padding"] in ("valid", "same", "causal")  # Keras writes lower case


def test_keras_alias():
    from fusedlstm import layers
    from fusedlstm.registry import lookup

    assert layers.Convolution1D is Conv1D and lookup("layers", "Convolution1D") is Conv1D
    assert serialize(layers.Convolution1D(2, 2))["class_name"] == "Conv1D"


def test_our_file_format_round_trip(tmp_path, rng):
    m = Sequential([Input((12, 4)), Conv1D(6, 3, padding="same", activation="relu"), MaxPooling1D(2),
                    Conv1D(4, 2, groups=2, dilation_rate=2, padding="causal"), LSTM(5), Dense(3, activation="softmax")])
    m.compile("adam", "categorical_crossentropy")
    x, y = f32(rng, (16, 12, 4)), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.fusedlstm")
    r = load_model(tmp_path / "m.fusedlstm")
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    for a, b in zip(r.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert float(r.train_on_batch(x, y)) == float(m.train_on_batch(x, y))


def test_time_distributed_conv1d_is_the_layer_on_every_step(rng):
    inner = Conv1D(4, 3, padding="same", activation="tanh")
    m = Sequential([Input((5, 7, 3)), TimeDistributed(inner)])
    x = f32(rng, (2, 5, 7, 3))
    want = np.stack([inner(np.ascontiguousarray(x[:, t])) for t in range(5)], axis=1)
    np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)


def test_conv1d_drops_the_mask(rng):
    ids = rng.integers(1, 9, (3, 6))
    ids[0, :2] = 0
    m = Sequential([Input((6,), dtype="int32"), Embedding(9, 4, mask_zero=True), Conv1D(3, 2, padding="same"), LSTM(2)])
    conv, lstm = m.layers[1], m.layers[2]
    trunk = Model(m.inputs, conv.output)
    assert trunk.predict(ids, verbose=0).shape == (3, 6, 3)
    # The LSTM runs every step (no mask): the same as on the unmasked convolution output.
    plain = Sequential([Input((6, 3)), LSTM(2)])
    plain.set_weights(lstm.get_weights())
    np.testing.assert_allclose(m.predict(ids, verbose=0), plain.predict(trunk.predict(ids, verbose=0), verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_deterministic_across_thread_counts(rng):
    from fusedlstm import set_num_threads, get_num_threads

    m = Sequential([Input((40, 16)), Conv1D(32, 5, padding="same"), Conv1D(8, 3, groups=2)])
    m.compile("sgd", "mse")
    x, y = f32(rng, (24, 40, 16)), f32(rng, (24, 38, 8))
    before = get_num_threads()
    try:
        results = []
        for n in (1, 2):
            set_num_threads(n)
            _, grads = m.compute_gradients(x, y)
            results.append((m.predict(x, verbose=0), grads))
    finally:
        set_num_threads(before)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Bad input: the argument, what was expected, what was given
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: Conv1D(0, 3), ValueError, "`filters`, expected a positive integer, got 0"),
    (lambda: Conv1D(4.5, 3), ValueError, "`filters`, expected a positive integer, got 4.5"),
    (lambda: Conv1D(4, 0), ValueError, r"`kernel_size`, expected positive integer\(s\), got 0"),
    (lambda: Conv1D(4, (3, 3)), ValueError, r"`kernel_size`, expected an integer or a tuple of 1 integer\(s\)"),
    (lambda: Conv1D(4, 3, groups=3), ValueError, "filters must be evenly divisible by the number of groups.*groups=3, filters=4"),
    (lambda: Conv1D(4, 3, strides=2, dilation_rate=2), ValueError, "`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda: Conv1D(4, 3, padding="full"), ValueError, r"`padding`, expected one of \('valid', 'same', 'causal'\).*'full'"),
    (lambda: Conv1D(4, 3, data_format="NWC"), ValueError, "`data_format`, expected 'channels_last' or 'channels_first', got 'NWC'"),
    (lambda: Conv1D(4, 3, activation="swishy"), ValueError, "swishy"),
    (lambda: Conv1D(4, 3, kernel_regularizer="l3"), ValueError, "kernel_regularizer"),
    (lambda: Conv1D(4, 3, lora_rank=2), NotImplementedError, "lora_rank"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make,shape,match", [
    (lambda: Conv1D(4, 3), (None, 4), r"expected ndim=3, found ndim=2"),
    (lambda: Conv1D(4, 3, groups=2), (None, 8, 3), "input channels must be evenly divisible by the number of groups.*groups=2.*3 channels"),
    (lambda: Conv1D(4, 5, dilation_rate=2), (None, 8, 3), r"an input of 8 steps is shorter than the kernel's span of 9 steps"),
    (lambda: Conv1D(4, 3), (None, 8, None), "the channels axis of the input must be defined"),
])
def test_bad_input_shapes(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(Input(shape[1:]))


def test_bad_inputs_at_run_time(rng):
    m = Sequential([Input((None, 3)), Conv1D(2, 4), LSTM(2)])
    with pytest.raises(ValueError, match=r"an input of 3 steps is shorter than the kernel's span of 4 steps .*"
                                         r"\(input shape \(2, 3, 3\)\)"):
        m.predict(f32(rng, (2, 3, 3)), verbose=0)
    conv = m.layers[0]
    with pytest.raises(ValueError, match=r"expected axis 2 of input shape to have value 3, but received input with "
                                         r"shape \(2, 5, 4\)"):
        conv(f32(rng, (2, 5, 4)))
