"""Losses between distributions and counts: KLDivergence and Poisson (Keras 3.15.1's formulas).

    kl_divergence   Σ tc log(tc / pc),  tc = clip(t, ε, 1), pc = clip(p, ε, 1)   (a sum)
    poisson         mean(p - t log(p + ε))

with ε = 1e-7; a clipped entry passes no gradient (torch.clip).
"""

import numpy as np

from .. import registry as _registry
from .base import EPSILON, Loss, spread

__all__ = ["KLDivergence", "Poisson"]


@_registry.register("losses", aliases=("kl_divergence", "kld", "KLD", "kullback_leibler_divergence"))
class KLDivergence(Loss):
    """Kullback-Leibler divergence of y_pred from y_true over the last axis (keras.losses.KLDivergence)."""

    _default_name = "kl_divergence"

    def values(self, t, y_pred):
        tc = np.clip(t, EPSILON, 1.0)
        return (tc * np.log(tc / np.clip(y_pred, EPSILON, 1.0))).sum(axis=-1)

    def grad(self, t, y_pred, dv):
        tc = np.clip(t, EPSILON, 1.0)
        inside = (y_pred >= EPSILON) & (y_pred <= 1.0)
        return np.where(inside, -tc / np.clip(y_pred, EPSILON, 1.0), 0.0) * dv[..., None]


@_registry.register("losses", aliases=("poisson",))
class Poisson(Loss):
    """The Poisson negative log-likelihood up to a constant: mean(p - t log(p + ε))."""

    _default_name = "poisson"

    def values(self, t, y_pred):
        return (y_pred - t * np.log(y_pred + np.asarray(EPSILON, y_pred.dtype))).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return (1.0 - t / (y_pred + np.asarray(EPSILON, y_pred.dtype))) * spread(dv, y_pred)
