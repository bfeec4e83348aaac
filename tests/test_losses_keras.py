"""Every loss against real Keras 3.15.1 (torch backend): value and gradient w.r.t. y_pred.

Keras's gradient is torch autograd through `keras.losses.<Class>(...)(y_true, y_pred,
sample_weight)`; ours is `loss.grad` weighted by `reduction_weights`, which is what
a training step feeds back. Both in float32; every reduction, with and without
sample weights. Model-level parity (training steps with these losses, the fused
softmax path with ignore_class and label smoothing) is in test_losses_training_keras.py.
"""

import numpy as np
import pytest

from conftest import require
from loss_cases import LOSS_PARAMS, make_data

import keras_parity_support as ps
from fusedlstm import losses

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]

VALUE_TOL = 1e-5
GRAD_TOL = 1e-5


@pytest.fixture(scope="module")
def keras():
    torch = require("torch", "compare")
    keras = require("keras", "compare")
    return keras, torch


def keras_value_and_grad(keras_mods, name, kw, t, p, sw, reduction):
    keras, torch = keras_mods
    loss = getattr(keras.losses, name)(reduction=reduction, **kw)
    tp = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    tt = torch.tensor(t)
    if tt.dtype == torch.float64:
        tt = tt.float()
    v = loss(tt, tp, sample_weight=None if sw is None else torch.tensor(sw, dtype=torch.float32))
    if v.ndim:
        v.backward(torch.ones_like(v))
    else:
        v.backward()
    return v.detach().numpy(), tp.grad.numpy()


def our_value_and_grad(name, kw, t, p, sw, reduction):
    loss = getattr(losses, name)(reduction=reduction, **kw)
    p = p.astype(np.float32)
    value = loss(t, p, sample_weight=sw)
    tt = loss.prepare_targets(t, p.shape)
    v = loss.values(tt, p)
    w = losses.reduction_weights(v.shape, sw, loss.values_mask(tt), loss.reduction)
    return value, loss.grad(tt, p, w)


@pytest.mark.parametrize("case", LOSS_PARAMS)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None])
@pytest.mark.parametrize("weighted", [False, True])
def test_value_and_gradient_match_keras(keras, case, reduction, weighted, rng, seed):
    name, kw, tkind, pkind = case
    t, p = make_data(rng, tkind, pkind, (4, 5, 7), dtype=np.float32)
    sw = rng.uniform(0.0, 2.0, size=(4, 5)).astype(np.float32) if weighted else None
    kv, kg = keras_value_and_grad(keras, name, kw, t, p, sw, reduction)
    ov, og = our_value_and_grad(name, kw, t, p, sw, reduction)
    scale = max(1.0, float(np.max(np.abs(kv))))
    err = float(np.max(np.abs(np.asarray(ov, np.float64) - kv))) / scale
    assert err <= VALUE_TOL, f"seed={seed}: value keras {kv} vs ours {ov} (rel {err:.3g})"
    gscale = max(float(np.max(np.abs(kg))), 1e-30)
    gerr = float(np.max(np.abs(og - kg))) / gscale
    assert gerr <= GRAD_TOL, f"seed={seed}: gradient differs by {gerr:.3g} relative"


@pytest.mark.parametrize("fn, cls", [("huber", "Huber"), ("log_cosh", "LogCosh"), ("kl_divergence", "KLDivergence"),
                                     ("mean_absolute_percentage_error", "MeanAbsolutePercentageError"),
                                     ("mean_squared_logarithmic_error", "MeanSquaredLogarithmicError"),
                                     ("cosine_similarity", "CosineSimilarity"), ("poisson", "Poisson"),
                                     ("hinge", "Hinge"), ("squared_hinge", "SquaredHinge"),
                                     ("categorical_hinge", "CategoricalHinge"),
                                     ("binary_focal_crossentropy", "BinaryFocalCrossentropy"),
                                     ("categorical_focal_crossentropy", "CategoricalFocalCrossentropy")])
def test_loss_functions_return_keras_per_sample_values(keras, fn, cls, rng):
    from loss_cases import LOSS_CASES
    _, _, tkind, pkind = next(c for c in LOSS_CASES if c[0] == cls)
    t, p = make_data(rng, tkind, pkind, (6, 5), dtype=np.float32)
    want = getattr(keras[0].losses, fn)(t, p).numpy()
    got = getattr(losses, fn)(t, p)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_default_names_and_configs_match_keras(keras):
    for name in ("Huber", "LogCosh", "KLDivergence", "Poisson", "MeanAbsolutePercentageError",
                 "MeanSquaredLogarithmicError", "CosineSimilarity", "Hinge", "SquaredHinge", "CategoricalHinge",
                 "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "SparseCategoricalCrossentropy",
                 "CategoricalCrossentropy", "BinaryCrossentropy"):
        k = getattr(keras[0].losses, name)()
        o = getattr(losses, name)()
        assert o.name == k.name, name
        kc = {key: v for key, v in k.get_config().items() if key != "dtype"}
        oc = o.get_config()
        # Keras's Huber and CosineSimilarity leave delta / axis out of their configs (so a
        # saved Huber(delta=0.5) comes back as delta=1): ours keep them; Keras's classes take them.
        assert {key: v for key, v in oc.items() if key in kc} == kc, name
        assert set(oc) - set(kc) <= {"delta", "axis"}, name
        getattr(keras[0].losses, name).from_config(oc)
