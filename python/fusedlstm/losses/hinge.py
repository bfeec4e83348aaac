"""Hinge losses (Keras 3.15.1's formulas) for labels in {-1, 1}; labels that are all 0
or 1 in a batch are mapped to -1/1 first, as Keras does:

    hinge               mean(max(1 - t p, 0))
    squared_hinge       mean(max(1 - t p, 0)²)
    categorical_hinge   max(max_j((1 - t_j) p_j) - Σ t p + 1, 0)   (t one-hot, not mapped)

The max over classes passes its gradient to the largest entries, shared equally
among ties (torch.amax).
"""

import numpy as np

from .. import registry as _registry
from .base import Loss, regression_targets, spread

__all__ = ["Hinge", "SquaredHinge", "CategoricalHinge"]


def _hinge_labels(name, y_true, y_pred_shape):
    t = regression_targets(name, y_true, y_pred_shape)
    if t.size and np.all((t == 0) | (t == 1)):
        t = 2.0 * t - 1.0
    return t


@_registry.register("losses", aliases=("hinge",))
class Hinge(Loss):
    _default_name = "hinge"

    def prepare_targets(self, y_true, y_pred_shape):
        return _hinge_labels(self.name, y_true, y_pred_shape)

    def values(self, t, y_pred):
        return np.maximum(1.0 - t * y_pred, 0.0).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return np.where(1.0 - t * y_pred > 0, -t, 0.0) * spread(dv, y_pred)


@_registry.register("losses", aliases=("squared_hinge",))
class SquaredHinge(Loss):
    _default_name = "squared_hinge"

    def prepare_targets(self, y_true, y_pred_shape):
        return _hinge_labels(self.name, y_true, y_pred_shape)

    def values(self, t, y_pred):
        return np.square(np.maximum(1.0 - t * y_pred, 0.0)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return -2.0 * np.maximum(1.0 - t * y_pred, 0.0) * t * spread(dv, y_pred)


@_registry.register("losses", aliases=("categorical_hinge",))
class CategoricalHinge(Loss):
    _default_name = "categorical_hinge"

    def values(self, t, y_pred):
        pos = (t * y_pred).sum(axis=-1)
        neg = ((1.0 - t) * y_pred).max(axis=-1)
        return np.maximum(neg - pos + 1.0, 0.0)

    def grad(self, t, y_pred, dv):
        other = (1.0 - t) * y_pred
        top = other == other.max(axis=-1, keepdims=True)
        share = top / top.sum(axis=-1, keepdims=True)
        active = (self.values(t, y_pred) > 0)[..., None]
        return np.where(active, share * (1.0 - t) - t, 0.0) * dv[..., None]
