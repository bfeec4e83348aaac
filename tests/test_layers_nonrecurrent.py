"""Pooling, reshaping, normalization, activation and noise layers: the float64 reference, masks,
training behaviour, configs, weights and bad input.

Reference checks run each layer's float32 forward and backward (a random upstream
gradient R, so dx = (∂y/∂x)ᵀR) against the loop-by-loop float64 oracle in
fusedlstm.reference, at odd sizes; whole-model finite differences are in
test_layers_gradients.py, Keras parity in test_keras_parity_layers.py.
"""

import numpy as np
import pytest

from fusedlstm import reference as ref
from fusedlstm.layers import (LSTM, AlphaDropout, AveragePooling1D, BatchNormalization, Cropping1D, Dense, ELU,
                              Embedding, GaussianDropout, GaussianNoise, GlobalAveragePooling1D, GlobalMaxPooling1D,
                              Input, LayerNormalization, LeakyReLU, MaxPooling1D, Permute, PReLU, ReLU, Softmax,
                              TimeDistributed, UpSampling1D, ZeroPadding1D)
from fusedlstm.layers.base import Context
from fusedlstm.layers.serialization import deserialize, serialize
from fusedlstm.models import Model, Sequential, load_model
from fusedlstm.utils import set_random_seed
from gradcheck import scaled_error

TOL = 2e-6  # float32 layer vs float64 reference, relative to the largest value


def run(layer, x, mask=None, training=False, dy=None, rng=None):
    """(y, out_mask, dx, {weight name: gradient}) of one forward + backward of `layer`."""
    x = np.asarray(x)
    layer._build_from_shapes([(None,) + x.shape[1:]])
    for v in layer.weights:
        v.grad = np.zeros_like(v.value)
    ctx = Context(training=training, want_grads=True)
    outs, masks, cache = layer._fwd([x], [mask], training, ctx)
    y = outs[0]
    if dy is None:
        dy = rng.standard_normal(y.shape).astype(y.dtype)
    dx = layer._bwd(cache, [dy], [True], ctx)[0]
    grads = {v.name: (v.grad.copy() if v._gstamp == ctx.stamp else np.zeros_like(v.value)) for v in layer.weights}
    return y, masks[0], dx, grads, dy


def close(got, want, what):
    err = scaled_error(got, want)
    assert err <= TOL, f"{what}: error {err:.3g}"


def f32(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Against the float64 reference
# ---------------------------------------------------------------------------------------------

POOLS = [(2, None, "valid"), (3, 2, "valid"), (3, 1, "valid"), (2, 3, "valid"), (3, 2, "same"), (4, 1, "same"),
         (5, 3, "same"), (2, 2, "same"), (1, 1, "same")]


@pytest.mark.parametrize("pool,strides,padding", POOLS)
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_matches_reference(rng, seed, kind, pool, strides, padding, data_format):
    B, L, C = 3, 11, 5
    x = f32(rng, (B, L, C))
    cls = MaxPooling1D if kind == "max" else AveragePooling1D
    layer = cls(pool, strides=strides, padding=padding, data_format=data_format)
    xin = x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 2, 1))
    y, m, dx, _, dy = run(layer, xin, rng=rng)
    if data_format == "channels_first":
        y, dx, dy = y.transpose(0, 2, 1), dx.transpose(0, 2, 1), dy.transpose(0, 2, 1)
    fn = ref.max_pool1d if kind == "max" else ref.average_pool1d
    want_y, want_dx = fn(x, dy, pool, strides or pool, padding)
    assert m is None
    close(y, want_y, f"seed={seed} y")
    close(dx, want_dx, f"seed={seed} dx")
    assert layer.compute_output_shape(xin.shape)[1 if data_format == "channels_last" else 2] == want_y.shape[1]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_masked_matches_reference(rng, seed, keepdims, data_format):
    B, L, C = 5, 7, 3
    x = f32(rng, (B, L, C))
    mask = rng.random((B, L)) < 0.6
    mask[0] = False  # all masked: 0 (Keras: 0/0)
    mask[1] = True
    layer = GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    xin = x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 2, 1))
    for m in (None, mask):
        dy = f32(rng, (B, C))
        y, out_mask, dx, _, _ = run(layer, xin, m, dy=dy.reshape(layer.compute_output_shape(xin.shape)))
        want_y, want_dx = ref.global_average_pool1d(x, dy, m)
        assert out_mask is None  # consumed: Keras's compute_mask returns None
        close(y.reshape(B, C), want_y, f"seed={seed} mask={m is not None} y")
        close(dx if data_format == "channels_last" else dx.transpose(0, 2, 1), want_dx, f"seed={seed} dx")
    assert np.all(run(layer, xin, mask, rng=rng)[0].reshape(B, C)[0] == 0)


def test_global_max_pooling_and_shared_ties(rng):
    x = f32(rng, (3, 6, 4))
    layer = GlobalMaxPooling1D()
    y, m, dx, _, dy = run(layer, x, mask=np.ones((3, 6), bool), rng=rng)
    np.testing.assert_array_equal(y, x.max(axis=1))
    assert m is None  # Keras 3: no mask support, the mask is dropped
    want = np.zeros_like(x)
    for b in range(3):
        for c in range(4):
            want[b, np.argmax(x[b, :, c]), c] = dy[b, c]
    np.testing.assert_array_equal(dx, want)
    ties = np.zeros((1, 4, 1), np.float32)
    ties[0, [1, 3], 0] = 2.0
    _, _, dx, _, _ = run(layer, ties, dy=np.ones((1, 1), np.float32))
    np.testing.assert_array_equal(dx.ravel(), [0, 0.5, 0, 0.5])  # shared, as Keras's max reduction


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_batch_normalization_training_matches_reference(rng, seed, masked, center, scale):
    B, T, C = 5, 7, 3
    x = f32(rng, (B, T, C), 2.0) + 1.5
    mask = (rng.random((B, T)) < 0.7) if masked else None
    layer = BatchNormalization(center=center, scale=scale, momentum=0.8, epsilon=1e-2)
    layer._build_from_shapes([(None, T, C)])
    g = f32(rng, (C,)) if scale else None
    b = f32(rng, (C,)) if center else None
    mm, mv = f32(rng, (C,)), np.abs(f32(rng, (C,))) + 0.5
    layer.set_weights([w for w in (g, b, mm, mv) if w is not None])
    y, m, dx, grads, dy = run(layer, x, mask, training=True, rng=rng)
    want = ref.batch_norm(x, dy, g, b, 1e-2, mask=mask)
    assert m is mask
    close(y, want[0], f"seed={seed} y")
    close(dx, want[1], f"seed={seed} dx")
    if scale:
        close(grads["gamma"], want[2], f"seed={seed} dgamma")
    if center:
        close(grads["beta"], want[3], f"seed={seed} dbeta")
    close(layer.moving_mean.value, 0.8 * mm + 0.2 * want[4], f"seed={seed} moving_mean")
    close(layer.moving_variance.value, 0.8 * mv + 0.2 * want[5], f"seed={seed} moving_variance")
    # inference: the moving statistics, nothing updated
    before = [w.copy() for w in layer.get_weights()]
    y, _, dx, grads, dy = run(layer, x, mask, training=False, rng=rng)
    want = ref.batch_norm(x, dy, g, b, 1e-2, moving=(before[-2], before[-1]))
    close(y, want[0], f"seed={seed} inference y")
    close(dx, want[1], f"seed={seed} inference dx")
    for a, w in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, w)


def test_batch_normalization_other_axis_and_frozen(rng):
    x = f32(rng, (4, 3, 6))
    layer = BatchNormalization(axis=1)
    y, *_ = run(layer, x, training=True, rng=rng)
    xt = x.transpose(0, 2, 1)
    want = ref.batch_norm(xt, None, None, None, 1e-3)[0].transpose(0, 2, 1)
    close(y, want, "axis=1")
    assert layer.moving_mean.shape == (3,)
    layer.trainable = False  # Keras 3: a frozen BatchNormalization runs in inference mode
    mm = layer.moving_mean.value.copy()
    y, *_ = run(layer, x, training=True, rng=rng)
    np.testing.assert_array_equal(layer.moving_mean.value, mm)
    close(y, ref.batch_norm(xt, None, None, None, 1e-3, moving=(mm, layer.moving_variance.value))[0]
          .transpose(0, 2, 1), "frozen")


@pytest.mark.parametrize("rms_scaling", [False, True])
@pytest.mark.parametrize("center,scale", [(True, True), (False, False)])
def test_layer_normalization_matches_reference(rng, seed, rms_scaling, center, scale):
    x = f32(rng, (3, 7, 5), 2.0) + 0.7
    if rms_scaling:
        with pytest.warns(UserWarning, match="rms_scaling"):
            layer = LayerNormalization(center=center, scale=scale, rms_scaling=True, epsilon=1e-2)
    else:
        layer = LayerNormalization(center=center, scale=scale, epsilon=1e-2)
    layer._build_from_shapes([(None, 7, 5)])
    params = [f32(rng, (5,)) for _ in layer.weights]
    layer.set_weights(params)
    g = params[0] if (scale or rms_scaling) else None
    b = params[-1] if (center and not rms_scaling) else None
    y, m, dx, grads, dy = run(layer, x, np.ones((3, 7), bool), rng=rng)
    want = ref.layer_norm(x, dy, g, b, 1e-2, rms_scaling=rms_scaling)
    assert m is not None  # passed through
    close(y, want[0], f"seed={seed} y")
    close(dx, want[1], f"seed={seed} dx")
    if g is not None:
        close(grads["gamma"], want[2], f"seed={seed} dgamma")
    if b is not None:
        close(grads["beta"], want[3], f"seed={seed} dbeta")


def test_layer_normalization_over_several_axes(rng):
    x = f32(rng, (4, 3, 5))
    layer = LayerNormalization(axis=[1, 2])
    layer._build_from_shapes([(None, 3, 5)])
    gamma, beta = f32(rng, (3, 5)), f32(rng, (3, 5))
    layer.set_weights([gamma, beta])
    y, _, dx, grads, dy = run(layer, x, rng=rng)
    want = ref.layer_norm(x.reshape(4, 15), dy.reshape(4, 15), gamma.ravel(), beta.ravel(), 1e-3)
    close(y.reshape(4, 15), want[0], "y")
    close(dx.reshape(4, 15), want[1], "dx")
    close(grads["gamma"].ravel(), want[2], "dgamma")


@pytest.mark.parametrize("kw", [dict(), dict(max_value=1.0), dict(negative_slope=0.3), dict(threshold=0.5),
                                dict(max_value=2.0, negative_slope=0.1, threshold=0.2), dict(max_value=6.0)])
def test_relu_matches_reference(rng, kw):
    x = f32(rng, (4, 9, 3), 2.0)
    y, _, dx, _, dy = run(ReLU(**kw), x, rng=rng)
    want_y, dydx = ref.relu_layer(x, **kw)
    close(y, want_y, f"{kw} y")
    close(dx, dy * dydx, f"{kw} dx")


def test_elementwise_activation_layers(rng):
    x = f32(rng, (3, 5, 4), 2.0)
    x64 = x.astype(np.float64)
    cases = [(LeakyReLU(), np.where(x64 > 0, x64, 0.3 * x64), np.where(x64 > 0, 1, 0.3)),
             (LeakyReLU(negative_slope=0.05), np.where(x64 > 0, x64, 0.05 * x64), np.where(x64 > 0, 1, 0.05)),
             (ELU(alpha=0.7), np.where(x64 > 0, x64, 0.7 * np.expm1(x64)), np.where(x64 > 0, 1, 0.7 * np.exp(x64)))]
    for layer, want, deriv in cases:
        y, m, dx, _, dy = run(layer, x, np.ones((3, 5), bool), rng=rng)
        close(y, want, layer.name)
        close(dx, dy * deriv, layer.name)
        assert m is not None


@pytest.mark.parametrize("shared_axes,alpha_shape", [(None, (5, 4)), ([1], (1, 4)), ([1, 2], (1, 1)), (2, (5, 1))])
def test_prelu_alpha_shapes_and_gradients(rng, shared_axes, alpha_shape):
    x = f32(rng, (3, 5, 4))
    layer = PReLU(shared_axes=shared_axes)
    layer._build_from_shapes([(None, 5, 4)])
    assert layer.alpha.shape == alpha_shape
    a = f32(rng, alpha_shape)
    layer.set_weights([a])
    y, _, dx, grads, dy = run(layer, x, rng=rng)
    x64 = x.astype(np.float64)
    close(y, np.where(x64 > 0, x64, a * x64), "y")
    close(dx, np.where(x64 > 0, dy, a * dy), "dx")
    terms = np.minimum(x64, 0) * dy
    want_da, scale = terms.sum(axis=0), np.abs(terms).sum(axis=0)
    for ax, n in enumerate(alpha_shape):
        if n == 1:
            want_da = want_da.sum(axis=ax, keepdims=True)
            scale = scale.sum(axis=ax, keepdims=True)
    # a sum of float32 products: its rounding is relative to the sum of their magnitudes
    err = float(np.max(np.abs(grads["alpha"] - want_da) / np.maximum(scale, 1e-12)))
    assert err <= TOL, f"dalpha: error {err:.3g}"


def test_softmax_axes_and_keras_mask(rng):
    x = f32(rng, (2, 5, 5))
    for axis in (-1, 1, [1, 2]):
        y, _, dx, _, dy = run(Softmax(axis=axis), x, rng=rng)
        ax = tuple(np.atleast_1d(axis) % 3)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        want = e / e.sum(axis=ax, keepdims=True)
        close(y, want, f"axis={axis}")
        close(dx, want * (dy - (dy * want).sum(axis=ax, keepdims=True)), f"axis={axis} dx")
    # The mask broadcasts against the input from the right, as in Keras (an attention-style
    # mask over the softmax axis).
    mask = np.array([[True, True, False, False, True], [False] * 5])[:, None, :]
    y, m, dx, _, _ = run(Softmax(), x, mask, rng=rng)
    assert m is mask
    assert np.all(y[0][:, 2:4] == 0) and np.allclose(y[0].sum(axis=-1), 1, atol=1e-6)
    assert np.all(y[1] == 0) and np.all(dx[1] == 0)  # fully masked rows output zeros
    with pytest.raises(ValueError, match=r"mask must broadcast .* got mask shape \(2, 5\) for input shape \(2, 5, 3\)"):
        run(Softmax(), f32(rng, (2, 5, 3)), mask[:, 0], rng=rng)


def test_reshaping_layers_forward_and_adjoint(rng):
    x = f32(rng, (2, 6, 3))
    cases = [(UpSampling1D(3), np.repeat(x, 3, axis=1)),
             (ZeroPadding1D((1, 2)), np.pad(x, ((0, 0), (1, 2), (0, 0)))),
             (ZeroPadding1D(2, data_format="channels_first"), np.pad(x, ((0, 0), (0, 0), (2, 2)))),
             (Cropping1D((2, 1)), x[:, 2:5]),
             (Cropping1D(0), x),
             (Permute((2, 1)), x.transpose(0, 2, 1))]
    for layer, want in cases:
        y, m, dx, _, dy = run(layer, x, np.ones((2, 6), bool), rng=rng)
        np.testing.assert_array_equal(y, want, err_msg=layer.name)
        assert m is None, layer.name  # Keras 3: these layers drop the mask
        # the adjoint: <dy, J x'> = <Jᵀ dy, x'> for a random x'
        xr = f32(rng, x.shape)
        yr = layer._fwd([xr], [None], False, Context())[0][0]
        # Summed in float64 with a tolerance on the scale of the terms: a sum that cancels to ~1e-3
        # missed a 1e-5 relative bound in float32; dx itself (UpSampling1D adds repeats) is float32.
        lhs, rhs = np.sum(dy.astype(np.float64) * yr), np.sum(dx.astype(np.float64) * xr)
        scale = np.sum(np.abs(dy.astype(np.float64) * yr))
        np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-6 * scale, err_msg=layer.name)
        assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + want.shape[1:]


# ---------------------------------------------------------------------------------------------
# Training behaviour: fit / evaluate / predict, seeds, TimeDistributed
# ---------------------------------------------------------------------------------------------

def test_batch_normalization_moving_statistics_under_fit_evaluate_predict(rng):
    set_random_seed(1)
    m = Sequential([Input((6, 3)), BatchNormalization(momentum=0.5), LSTM(4), Dense(1)])
    m.compile("sgd", "mse")
    x, y = f32(rng, (8, 6, 3), 3.0) + 2.0, f32(rng, (8, 1))
    bn = m.layers[0]
    start = [w.copy() for w in bn.get_weights()]
    m.predict(x, verbose=0)
    m.evaluate(x, y, verbose=0)
    for a, b in zip(bn.get_weights(), start):
        np.testing.assert_array_equal(a, b)  # inference never touches the statistics
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    mean = x.reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(bn.moving_mean.value, 0.5 * start[2] + 0.5 * mean, rtol=1e-5)
    var = x.reshape(-1, 3).astype(np.float64).var(axis=0)
    np.testing.assert_allclose(bn.moving_variance.value, 0.5 * start[3] + 0.5 * var, rtol=1e-5)
    assert len(m.trainable_weights) == 2 + 3 + 2 and len(m.non_trainable_weights) == 2
    # predict uses the moving statistics: not the batch's
    out = m.layers[0](x)
    want = ref.batch_norm(x, None, bn.gamma.value, bn.beta.value, 1e-3,
                          moving=(bn.moving_mean.value, bn.moving_variance.value))[0]
    close(out, want, "inference output")


def test_time_distributed_batch_normalization_runs_per_step(rng):
    """Keras 3's TimeDistributed calls the layer once per step: statistics per step and one
    moving-average update per step, in step order."""
    x = f32(rng, (4, 3, 2)) + 1.0
    td = TimeDistributed(BatchNormalization(momentum=0.6))
    y, _, dx, grads, dy = run(td, x, training=True, rng=rng)
    mm, mv = np.zeros(2), np.ones(2)
    dgamma = np.zeros(2)
    for t in range(3):
        want = ref.batch_norm(x[:, t], dy[:, t], np.ones(2), np.zeros(2), 1e-3)
        close(y[:, t], want[0], f"step {t}")
        close(dx[:, t], want[1], f"step {t} dx")
        mm, mv = 0.6 * mm + 0.4 * want[4], 0.6 * mv + 0.4 * want[5]
        dgamma += want[2]
    close(td.layer.moving_mean.value, mm, "moving_mean after 3 steps")
    close(td.layer.moving_variance.value, mv, "moving_variance")
    close(grads["gamma"], dgamma, "dgamma summed over steps")


@pytest.mark.parametrize("make", [lambda: GaussianNoise(0.5), lambda: GaussianDropout(0.3),
                                  lambda: AlphaDropout(0.2)])
def test_noise_layers_train_only_and_seeded(rng, make):
    x = f32(rng, (64, 8, 5))
    layer = make()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    set_random_seed(3)
    a = layer(x, training=True)
    set_random_seed(3)
    b = layer(x, training=True)
    np.testing.assert_array_equal(a, b)  # the library stream, seeded by set_random_seed
    assert not np.allclose(a, x)
    c1, c2 = type(layer)(**{k: v for k, v in layer.get_config().items() if k in ("stddev", "rate")}, seed=7), None
    c2 = type(layer)(**{k: v for k, v in layer.get_config().items() if k in ("stddev", "rate")}, seed=7)
    np.testing.assert_array_equal(c1(x, training=True), c2(x, training=True))  # own stream per seed


def test_noise_statistics(rng):
    x = np.ones((200, 50, 10), np.float32)
    n = GaussianNoise(0.4, seed=1)(x, training=True) - 1
    assert abs(n.mean()) < 0.01 and abs(n.std() - 0.4) < 0.01
    g = GaussianDropout(0.5, seed=2)(x, training=True)
    assert abs(g.mean() - 1) < 0.01 and abs(g.std() - 1.0) < 0.01  # std sqrt(rate/(1-rate)) = 1
    z = rng.standard_normal((200, 50, 10)).astype(np.float32)
    a = AlphaDropout(0.2, seed=3)(z, training=True)  # keeps zero mean and unit variance
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.03
    # noise_shape (None, 1, features): a feature is dropped at every step or at none. A dropped
    # value is exactly a·α' + b; inputs near α' are moved away so no kept value can equal it.
    alpha_p = np.float32(-1.6732632423543772 * 1.0507009873554805)
    z = np.where(np.abs(z - alpha_p) < 1e-3, np.float32(0), z)
    layer = AlphaDropout(0.5, noise_shape=(None, 1, 10), seed=4)
    dropped_value = layer(np.full((1, 1, 10), alpha_p), training=True).min()
    shared = layer(z, training=True)
    dropped = shared == dropped_value
    assert np.all(dropped.all(axis=1) | ~dropped.any(axis=1))
    assert 0.3 < dropped.all(axis=1).mean() < 0.7


def test_seeded_training_with_noise_is_repeatable(rng):
    x, y = f32(rng, (16, 6, 3)), f32(rng, (16, 1))

    def curve():
        set_random_seed(11)
        m = Sequential([Input((6, 3)), GaussianNoise(0.2), LSTM(4), AlphaDropout(0.1), Dense(1)])
        m.compile("adam", "mse")
        return m.fit(x, y, batch_size=4, epochs=2, verbose=0).history["loss"]

    assert curve() == curve()


# ---------------------------------------------------------------------------------------------
# Masks through a model: who consumes, passes and drops them (Keras 3's supports_masking)
# ---------------------------------------------------------------------------------------------

PASSES = [lambda: BatchNormalization(), lambda: LayerNormalization(), lambda: LeakyReLU(), lambda: PReLU(shared_axes=[1]),
          lambda: ReLU(), lambda: ELU(), lambda: GaussianNoise(0.1), lambda: GaussianDropout(0.1),
          lambda: AlphaDropout(0.1), lambda: TimeDistributed(LayerNormalization())]
DROPS = [lambda: MaxPooling1D(1), lambda: AveragePooling1D(1), lambda: UpSampling1D(1), lambda: ZeroPadding1D(0),
         lambda: Cropping1D(0), lambda: Permute((1, 2))]


@pytest.mark.parametrize("make", PASSES)
def test_layers_that_pass_the_mask(rng, make):
    """With the mask reaching the LSTM, pre- and post-padding give the same output (the LSTM
    skips padded steps either way); a dropped mask would make them differ."""
    ids = Input((6,), dtype="int32")
    m = Model(ids, LSTM(3)(make()(Embedding(9, 4, mask_zero=True)(ids))))
    seq = rng.integers(1, 9, (2, 3))
    pre = np.concatenate([np.zeros((2, 3), int), seq], axis=1)
    post = np.concatenate([seq, np.zeros((2, 3), int)], axis=1)
    np.testing.assert_allclose(m.predict(pre, verbose=0), m.predict(post, verbose=0), rtol=1e-5, atol=1e-6)
    filled = np.concatenate([seq, np.full((2, 3), 5)], axis=1)  # real steps where post has padding
    assert not np.allclose(m.predict(post, verbose=0), m.predict(filled, verbose=0))


@pytest.mark.parametrize("make", DROPS)
def test_layers_that_drop_the_mask(rng, make):
    layer = make()
    x = f32(rng, (2, 5, 3))
    _, out_mask, _, _, _ = run(layer, x, np.ones((2, 5), bool), rng=rng)
    assert out_mask is None


def test_global_average_pooling_uses_the_embedding_mask(rng):
    ids = Input((6,), dtype="int32")
    emb = Embedding(9, 4, mask_zero=True)
    m = Model(ids, GlobalAveragePooling1D()(emb(ids)))
    x = rng.integers(1, 9, (3, 6))
    x[1, 4:] = 0
    got = m.predict(x, verbose=0)
    E = emb.get_weights()[0]
    np.testing.assert_allclose(got[1], E[x[1, :4]].mean(axis=0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got[0], E[x[0]].mean(axis=0), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Configs, weights, files
# ---------------------------------------------------------------------------------------------

CONFIGURED = [
    lambda: MaxPooling1D(3, strides=2, padding="SAME", data_format="channels_first"),
    lambda: AveragePooling1D((4,), strides=(1,), padding="same"),
    lambda: GlobalMaxPooling1D(keepdims=True), lambda: GlobalAveragePooling1D(data_format="channels_first"),
    lambda: UpSampling1D(3), lambda: ZeroPadding1D((1, 4)), lambda: Cropping1D(2), lambda: Permute((2, 1)),
    lambda: LayerNormalization(axis=[1, 2], epsilon=0.1, center=False),
    lambda: BatchNormalization(axis=1, momentum=0.7, epsilon=0.01, scale=False, gamma_initializer="zeros"),
    lambda: LeakyReLU(0.1), lambda: PReLU(alpha_initializer="ones", shared_axes=1),
    lambda: ReLU(max_value=3.0, negative_slope=0.2, threshold=0.5), lambda: ELU(0.4), lambda: Softmax(axis=[1, 2]),
    lambda: GaussianNoise(0.3, seed=4), lambda: GaussianDropout(0.4), lambda: AlphaDropout(0.2, noise_shape=(None, 1, 3)),
]


@pytest.mark.parametrize("make", CONFIGURED)
def test_config_round_trip(make):
    layer = make()
    cfg = serialize(layer)
    again = deserialize(cfg)
    assert type(again) is type(layer)
    assert serialize(again) == cfg


def test_keras_aliases():
    from fusedlstm import layers
    from fusedlstm.registry import lookup
    assert layers.MaxPool1D is MaxPooling1D and layers.AvgPool1D is AveragePooling1D
    assert layers.GlobalMaxPool1D is GlobalMaxPooling1D and layers.GlobalAvgPool1D is GlobalAveragePooling1D
    assert lookup("layers", "GlobalAvgPool1D") is GlobalAveragePooling1D
    assert serialize(layers.MaxPool1D())["class_name"] == "MaxPooling1D"  # Keras 3 writes the canonical name
    with pytest.warns(UserWarning, match="`alpha` is deprecated"):
        assert LeakyReLU(alpha=0.2).negative_slope == 0.2  # Keras 2 spelling


def test_param_counts_and_weight_order():
    m = Sequential([Input((7, 5)), BatchNormalization(), LayerNormalization(), PReLU(shared_axes=[1]),
                    TimeDistributed(BatchNormalization(center=False)), LSTM(3)])
    counts = [layer.count_params() for layer in m.layers]
    assert counts == [20, 10, 5, 15, 4 * 3 * (5 + 3 + 1)]  # Keras's summary numbers
    assert [v.name for v in m.layers[0].weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.trainable for v in m.layers[0].weights] == [True, True, False, False]
    assert len(m.non_trainable_weights) == 4


def test_our_file_format_round_trip(tmp_path, rng):
    ids = Input((8,), dtype="int32")
    h = Embedding(12, 4, mask_zero=True)(ids)
    h = BatchNormalization()(h)
    h = PReLU(shared_axes=[1])(LayerNormalization()(h))
    h = MaxPooling1D(2, padding="same")(LSTM(5, return_sequences=True)(h))
    h = TimeDistributed(BatchNormalization())(ZeroPadding1D(1)(h))
    out = Softmax()(Dense(3)(GlobalAveragePooling1D()(UpSampling1D(2)(h))))
    m = Model(ids, out)
    m.compile("adam", "categorical_crossentropy")
    x = rng.integers(0, 12, (16, 8))
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.fusedlstm")
    r = load_model(tmp_path / "m.fusedlstm")
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    for a, b in zip(r.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    assert float(r.train_on_batch(x, y)) == float(m.train_on_batch(x, y))


# ---------------------------------------------------------------------------------------------
# Bad input: the argument, what was expected, what was given
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: MaxPooling1D(0), ValueError, r"`pool_size`, expected positive integer\(s\), got 0"),
    (lambda: MaxPooling1D(2, strides=(1, 1)), ValueError, r"`strides`, expected an integer or a tuple of 1 integer\(s\), got \(1, 1\)"),
    (lambda: AveragePooling1D(2, padding="full"), ValueError, r"`padding`, expected one of \('valid', 'same'\).*'full'"),
    (lambda: AveragePooling1D(2, padding="causal"), ValueError, "`padding`.*got 'causal'"),
    (lambda: MaxPooling1D(data_format="NCW"), ValueError, "`data_format`, expected 'channels_last' or 'channels_first', got 'NCW'"),
    (lambda: GlobalAveragePooling1D(keepdims="yes"), TypeError, "`keepdims`, expected a bool, got 'yes'"),
    (lambda: UpSampling1D(0), ValueError, "`size`, expected a positive integer, got 0"),
    (lambda: ZeroPadding1D((1, 2, 3)), ValueError, r"`padding`, expected an integer or a tuple of 2"),
    (lambda: Cropping1D(-1), ValueError, r"`cropping`, expected non-negative integer\(s\), got -1"),
    (lambda: Permute((1, 1)), ValueError, r"`dims`, expected a permutation of 1..n .* got \(1, 1\)"),
    (lambda: BatchNormalization(momentum=1.5), ValueError, r"`momentum`, expected a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: BatchNormalization(axis="last"), TypeError, "`axis`, expected an int, got 'last'"),
    (lambda: BatchNormalization(renorm=True), NotImplementedError, "renorm=True"),
    (lambda: BatchNormalization(gamma_regularizer="l2"), NotImplementedError, "gamma_regularizer"),
    (lambda: LayerNormalization(epsilon=-1), ValueError, "`epsilon`.*got -1"),
    (lambda: LayerNormalization(axis="x"), TypeError, "`axis`, expected an int or a list of ints, got 'x'"),
    (lambda: LeakyReLU(negative_slope=-0.1), ValueError, "`negative_slope`, expected a finite number >= 0.0, got -0.1"),
    (lambda: ReLU(max_value=-1), ValueError, "`max_value`.*>= 0.0 or None, got -1"),
    (lambda: ReLU(threshold=None), ValueError, "`threshold`.*got None"),
    (lambda: PReLU(shared_axes=[0]), ValueError, r"`shared_axes`, expected positive axis numbers .* got \[0\]"),
    (lambda: Softmax(axis="last"), ValueError, "`axis`, expected an int or a list of ints, got 'last'"),
    (lambda: GaussianNoise(1.5), ValueError, "`stddev`. Expected a float value between 0 and 1.*stddev=1.5"),
    (lambda: GaussianDropout(1.0), ValueError, r"`rate`.*\(1 excluded.*rate=1.0"),
    (lambda: AlphaDropout(-0.1), ValueError, "`rate`.*rate=-0.1"),
    (lambda: GaussianNoise(0.1, seed=-3), ValueError, "`seed`.*got -3"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make,shape,match", [
    (lambda: MaxPooling1D(), (None, 4), r"expected ndim=3, found ndim=2"),
    (lambda: GlobalMaxPooling1D(), (None, 3, 4, 5), r"expected ndim=3, found ndim=4"),
    (lambda: AveragePooling1D(5), (None, 4, 2), "an input of 4 steps is shorter than pool_size=5 with padding='valid'"),
    (lambda: Cropping1D((2, 2)), (None, 4, 2), r"`cropping`=\(2, 2\) must remove fewer steps than the input has"),
    (lambda: Permute((2, 1)), (None, 3, 4, 5), r"expected ndim=3, found ndim=4"),
    (lambda: BatchNormalization(axis=3), (None, 4, 2), "axis 3 is out of bounds for an input of rank 3"),
    (lambda: BatchNormalization(), (None, 4, None), "axis -1 of the input must have a fixed size"),
    (lambda: LayerNormalization(axis=0), (None, 4, 2), "the batch axis 0 cannot be normalised over"),
    (lambda: PReLU(), (None, None, 3), r"alpha needs every non-shared axis .*share the free axes with `shared_axes`"),
    (lambda: PReLU(shared_axes=[3]), (None, 4, 2), "shared axis 3 does not exist in an input of rank 3"),
    (lambda: Softmax(axis=4), (None, 4, 2), "axis 4 is out of range for an input of rank 3"),
])
def test_bad_input_shapes(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(Input(shape[1:]))


def test_bad_inputs_at_run_time(rng):
    m = Sequential([Input((None, 3)), MaxPooling1D(4), LSTM(2)])
    with pytest.raises(ValueError, match=r"an input of 3 steps is shorter than pool_size=4 with padding='valid' "
                                         r"\(input shape \(2, 3, 3\)\)"):
        m.predict(f32(rng, (2, 3, 3)), verbose=0)
    crop = Sequential([Input((None, 3)), Cropping1D((2, 2))])
    with pytest.raises(ValueError, match="must remove fewer steps than the input has"):
        crop.predict(f32(rng, (2, 4, 3)), verbose=0)
    bn = BatchNormalization()
    Sequential([Input((5, 4)), bn])
    with pytest.raises(ValueError, match=r"expected ndim=3 and axis -1 of size 4, got input shape \(None, 5, 6\)"):
        bn(Input((5, 6)))
    with pytest.raises(ValueError, match=r"the mask should have one dimension less than the inputs, got mask shape "
                                         r"\(2,\) for input shape \(2, 5, 4\)"):
        bn(f32(rng, (2, 5, 4)), training=True, mask=np.ones(2, bool))
    gap = GlobalAveragePooling1D()
    with pytest.raises(ValueError, match=r"the mask has shape \(2, 4\), expected \(batch, steps\) = \(2, 5\)"):
        gap(f32(rng, (2, 5, 3)), mask=np.ones((2, 4), bool))


# ---------------------------------------------------------------------------------------------
# TimeDistributed around each layer (as Keras 3 runs it: the layer on each step's slice)
# ---------------------------------------------------------------------------------------------

TD_INNER = [  # (layer factory, one step's input shape without the batch)
    (lambda: MaxPooling1D(2, padding="same"), (7, 3)), (lambda: AveragePooling1D(3, strides=2), (7, 3)),
    (lambda: GlobalMaxPooling1D(), (7, 3)), (lambda: GlobalAveragePooling1D(keepdims=True), (7, 3)),
    (lambda: UpSampling1D(2), (7, 3)), (lambda: ZeroPadding1D((2, 1)), (7, 3)), (lambda: Cropping1D(2), (7, 3)),
    (lambda: Permute((2, 1)), (7, 3)), (lambda: LayerNormalization(), (5,)), (lambda: BatchNormalization(), (5,)),
    (lambda: LeakyReLU(), (5,)), (lambda: PReLU(), (5,)), (lambda: ReLU(max_value=0.5), (5,)), (lambda: ELU(), (5,)),
    (lambda: Softmax(), (5,)), (lambda: GaussianNoise(0.2), (5,)), (lambda: GaussianDropout(0.2), (5,)),
    (lambda: AlphaDropout(0.2), (5,)),
]


@pytest.mark.parametrize("make,step_shape", TD_INNER)
def test_time_distributed_is_the_layer_on_every_step(rng, make, step_shape):
    inner = make()
    m = Sequential([Input((4,) + step_shape), TimeDistributed(inner)])
    if inner.weights:
        inner.set_weights([np.abs(f32(rng, w.shape)) + 0.5 if "variance" in w.name else f32(rng, w.shape)
                           for w in inner.weights])
    x = f32(rng, (3, 4) + step_shape)
    got = m.predict(x, verbose=0)
    want = np.stack([inner(np.ascontiguousarray(x[:, t])) for t in range(4)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert m.output_shape == (None, 4) + want.shape[2:]
