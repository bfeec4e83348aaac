"""Losses on their own: gradients against float64 finite differences, the reduction
rule, names and configs, and bad arguments. Keras parity: test_losses_keras.py."""

import numpy as np
import pytest

from gradcheck import FD_STEP, rel_error
from loss_cases import LOSS_PARAMS, make_data

from fusedlstm import losses


def _loss(name, kw, reduction="sum_over_batch_size"):
    return getattr(losses, name)(reduction=reduction, **kw)


@pytest.mark.parametrize("case", LOSS_PARAMS)
@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 3)], ids=["2d", "3d"])
def test_gradient_matches_finite_differences(case, shape, rng, seed):
    """L = Σ values · w for random weights w: loss.grad(t, p, w) against central
    differences of L in float64."""
    name, kw, tkind, pkind = case
    loss = _loss(name, kw)
    t, p = make_data(rng, tkind, pkind, shape)
    tt = loss.prepare_targets(t, p.shape)
    w = rng.uniform(0.2, 1.5, size=loss.values(tt, p).shape)

    def L(x):
        return float(np.sum(loss.values(tt, x) * w))

    g = loss.grad(tt, p, w)
    assert g.shape == p.shape and g.dtype == np.float64
    fd = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        xp, xm = p.copy(), p.copy()
        xp[i] += FD_STEP
        xm[i] -= FD_STEP
        fd[i] = (L(xp) - L(xm)) / (2 * FD_STEP)
    err = rel_error(g, fd)
    assert err < 1e-6, f"seed={seed}: {name}{kw} gradient vs finite differences: {err:.3g}"


def test_reductions_follow_keras_rule():
    v_loss = losses.MeanSquaredError
    t = np.zeros((2, 3, 1), np.float32)
    p = np.arange(6, dtype=np.float32).reshape(2, 3, 1)  # values = p² per (sample, step)
    v = p[..., 0] ** 2
    sw = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]], np.float32)
    assert v_loss()(t, p) == pytest.approx(v.mean())
    assert v_loss(reduction="mean")(t, p) == pytest.approx(v.mean())
    assert v_loss(reduction="sum")(t, p, sample_weight=sw) == pytest.approx((v * sw).sum())
    assert v_loss()(t, p, sample_weight=sw) == pytest.approx((v * sw).sum() / v.size)
    assert v_loss(reduction="mean_with_sample_weight")(t, p, sample_weight=sw) == pytest.approx((v * sw).sum() / sw.sum())
    np.testing.assert_allclose(v_loss(reduction=None)(t, p, sample_weight=sw), v * sw)
    np.testing.assert_allclose(v_loss(reduction="none")(t, p), v)
    mask = np.array([[True, False, True], [True, True, False]])
    w = losses.reduction_weights(v.shape, None, mask, "sum_over_batch_size")
    assert float((v * w).sum()) == pytest.approx(v[mask].mean())
    w = losses.reduction_weights(v.shape, sw, mask, "mean_with_sample_weight")
    assert float((v * w).sum()) == pytest.approx((v * sw * mask).sum() / (sw * mask).sum())
    w = losses.reduction_weights(v.shape, np.zeros((2, 3)), None, "mean_with_sample_weight")
    assert not w.any()  # divide_no_nan: a zero divisor gives 0, not NaN


def test_ignore_class_masks_its_entries():
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    p = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], np.float32)
    y = np.array([1, -1, 0])
    want = -(np.log(0.8) + np.log(0.5)) / 2
    assert loss(y, p) == pytest.approx(want, rel=1e-6)
    assert losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="sum")(y, p) == pytest.approx(want * 2, rel=1e-6)
    with pytest.raises(ValueError, match="class id -2"):
        loss(np.array([1, -2, 0]), p)


def test_hinge_maps_binary_labels_to_signs():
    p = np.array([[0.3, -0.2]], np.float32)
    assert losses.Hinge()(np.array([[1, 0]]), p) == pytest.approx(np.mean([1 - 0.3, 1 - 0.2]))
    assert losses.Hinge()(np.array([[1, -1]]), p) == pytest.approx(np.mean([1 - 0.3, 1 - 0.2]))


@pytest.mark.parametrize("name, cls", [
    ("huber", losses.Huber), ("huber_loss", losses.Huber), ("log_cosh", losses.LogCosh), ("logcosh", losses.LogCosh),
    ("kld", losses.KLDivergence), ("KLD", losses.KLDivergence), ("kl_divergence", losses.KLDivergence),
    ("kullback_leibler_divergence", losses.KLDivergence), ("mape", losses.MeanAbsolutePercentageError),
    ("MAPE", losses.MeanAbsolutePercentageError), ("msle", losses.MeanSquaredLogarithmicError),
    ("cosine_similarity", losses.CosineSimilarity), ("poisson", losses.Poisson), ("hinge", losses.Hinge),
    ("squared_hinge", losses.SquaredHinge), ("categorical_hinge", losses.CategoricalHinge),
    ("binary_focal_crossentropy", losses.BinaryFocalCrossentropy), ("bce", losses.BinaryCrossentropy),
    ("categorical_focal_crossentropy", losses.CategoricalFocalCrossentropy), ("Huber", losses.Huber),
    ("CategoricalFocalCrossentropy", losses.CategoricalFocalCrossentropy),
])
def test_names_resolve(name, cls):
    obj = losses.get(name)
    assert type(obj) is cls and obj.name == name


@pytest.mark.parametrize("obj", [
    losses.Huber(delta=0.5, reduction="sum"), losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4,
                                                                             gamma=1.0, label_smoothing=0.1),
    losses.CategoricalFocalCrossentropy(alpha=0.3, from_logits=True), losses.CosineSimilarity(name="cos"),
    losses.SparseCategoricalCrossentropy(ignore_class=0, reduction="mean_with_sample_weight"),
])
def test_serialize_round_trip(obj):
    back = losses.deserialize(losses.serialize(obj))
    assert type(back) is type(obj) and back.get_config() == obj.get_config()


def test_loss_functions_take_keyword_arguments():
    t = np.zeros((2, 3), np.float32)
    p = np.full((2, 3), 2.0, np.float32)
    np.testing.assert_allclose(losses.huber(t, p, delta=0.5), [0.875, 0.875])
    assert losses.get(losses.huber).name == "huber"


@pytest.mark.parametrize("make, match", [
    (lambda: losses.Huber(delta=0), "delta"),
    (lambda: losses.Huber(delta="1"), "delta"),
    (lambda: losses.MeanSquaredError(reduction="avg"), "reduction"),
    (lambda: losses.BinaryFocalCrossentropy(gamma=-1), "gamma"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=1.5), "alpha"),
    (lambda: losses.CategoricalFocalCrossentropy(label_smoothing=2), "label_smoothing"),
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class=1.5), "ignore_class"),
    (lambda: losses.CosineSimilarity(axis=0), "axis"),
    (lambda: losses.get("dice"), "dice"),
    (lambda: losses.get("hubber"), "hubber"),
])
def test_bad_arguments_say_which(make, match):
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        make()


def test_compile_refuses_an_unreduced_loss():
    from fusedlstm.layers import Dense, Input
    from fusedlstm.models import Sequential

    m = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match="reduction=None"):
        m.compile("adam", loss=losses.MeanSquaredError(reduction=None))
