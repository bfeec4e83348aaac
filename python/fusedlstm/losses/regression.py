"""Regression losses: each a mean over the last axis of an elementwise error of d = p - t.

Keras 3.15.1's formulas (keras/src/losses/losses.py), ε = 1e-7:

    mean_squared_error               d²
    mean_absolute_error              |d|
    mean_absolute_percentage_error   100 |d| / max(|t|, ε)
    mean_squared_logarithmic_error   (log(max(p, ε) + 1) - log(max(t, ε) + 1))²
    huber                            d²/2 where |d| <= δ, else δ|d| - δ²/2
    log_cosh                         d + softplus(-2d) - log 2      (= log cosh d)
    cosine_similarity                -Σ normalize(t) · normalize(p)   (a sum, not a mean)

with normalize(x) = x · min(1/‖x‖, 1/ε) over the last axis. Gradients follow torch's
conventions at kinks: |x|' = sign(x) (0 at 0), max(x, ε)' = 1 only where x > ε.
"""

import numbers

import numpy as np

from .. import registry as _registry
from .base import EPSILON, Loss, check_last_axis, spread

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanSquaredLogarithmicError", "Huber", "LogCosh", "CosineSimilarity"]

_LOG2 = np.float32(np.log(2.0))


@_registry.register("losses", aliases=("mean_squared_error", "mse", "MSE"))
class MeanSquaredError(Loss):
    _default_name = "mean_squared_error"

    def values(self, t, y_pred):
        return np.square(y_pred - t).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return 2.0 * (y_pred - t) * spread(dv, y_pred)


@_registry.register("losses", aliases=("mean_absolute_error", "mae", "MAE"))
class MeanAbsoluteError(Loss):
    _default_name = "mean_absolute_error"

    def values(self, t, y_pred):
        return np.abs(y_pred - t).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return np.sign(y_pred - t) * spread(dv, y_pred)


@_registry.register("losses", aliases=("mean_absolute_percentage_error", "mape", "MAPE"))
class MeanAbsolutePercentageError(Loss):
    _default_name = "mean_absolute_percentage_error"

    def values(self, t, y_pred):
        return 100.0 * np.abs((t - y_pred) / np.maximum(np.abs(t), EPSILON)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return 100.0 * np.sign(y_pred - t) / np.maximum(np.abs(t), EPSILON) * spread(dv, y_pred)


@_registry.register("losses", aliases=("mean_squared_logarithmic_error", "msle", "MSLE"))
class MeanSquaredLogarithmicError(Loss):
    _default_name = "mean_squared_logarithmic_error"

    @staticmethod
    def _logs(t, y_pred):
        a = np.log(np.maximum(y_pred, EPSILON) + 1.0)
        return a - np.log(np.maximum(t, EPSILON) + 1.0)

    def values(self, t, y_pred):
        return np.square(self._logs(t, y_pred)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        d = self._logs(t, y_pred)
        inside = y_pred > EPSILON
        return np.where(inside, 2.0 * d / (np.maximum(y_pred, EPSILON) + 1.0), 0.0) * spread(dv, y_pred)


@_registry.register("losses", aliases=("huber", "huber_loss"))
class Huber(Loss):
    """Quadratic for |error| <= delta, linear beyond (keras.losses.Huber)."""

    _default_name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction)
        if isinstance(delta, (bool, str, bytes)) or not isinstance(delta, numbers.Real) or not np.isfinite(delta):
            raise TypeError(f"Received an invalid value for argument `delta`, expected a positive float, got {delta!r}.")
        if delta <= 0:
            raise ValueError(f"Received an invalid value for argument `delta`, expected a positive float, got {delta!r}.")
        self.delta = float(delta)

    def values(self, t, y_pred):
        d = y_pred - t
        ad = np.abs(d)
        delta = np.asarray(self.delta, y_pred.dtype)
        return np.where(ad <= delta, 0.5 * np.square(d), delta * ad - 0.5 * np.square(delta)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        d = y_pred - t
        delta = np.asarray(self.delta, y_pred.dtype)
        return np.where(np.abs(d) <= delta, d, delta * np.sign(d)) * spread(dv, y_pred)

    def get_config(self):
        cfg = super().get_config()
        cfg["delta"] = self.delta
        return cfg


@_registry.register("losses", aliases=("log_cosh", "logcosh"))
class LogCosh(Loss):
    """log(cosh(p - t)), computed as d + softplus(-2d) - log 2 (keras.losses.LogCosh)."""

    _default_name = "log_cosh"

    def values(self, t, y_pred):
        d = y_pred - t
        return (d + np.logaddexp(0.0, -2.0 * d) - _LOG2).mean(axis=-1).astype(y_pred.dtype, copy=False)

    def grad(self, t, y_pred, dv):
        return np.tanh(y_pred - t) * spread(dv, y_pred)


def _normalize(x):
    """(x · s, s) with s = min(1/‖x‖, 1/ε) over the last axis (keras.ops.normalize)."""
    inv = 1.0 / np.sqrt(np.square(x).sum(axis=-1, keepdims=True))
    with np.errstate(divide="ignore"):
        s = np.minimum(inv, 1.0 / EPSILON)
    return x * s, s, inv < 1.0 / EPSILON


@_registry.register("losses", aliases=("cosine_similarity",))
class CosineSimilarity(Loss):
    """Minus the cosine similarity of y_true and y_pred (keras.losses.CosineSimilarity)."""

    _default_name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)

    def values(self, t, y_pred):
        with np.errstate(divide="ignore"):
            nt, _, _ = _normalize(t)
            npred, _, _ = _normalize(y_pred)
        return -(nt * npred).sum(axis=-1)

    def grad(self, t, y_pred, dv):
        with np.errstate(divide="ignore"):
            nt, _, _ = _normalize(t)
            npred, s, scaled = _normalize(y_pred)
        dn = -nt * dv[..., None]
        # n = x/‖x‖: dx = (dn - n (n·dn)) / ‖x‖; where the 1/ε cap applies, n = x/ε: dx = dn/ε.
        return np.where(scaled, s * (dn - npred * (npred * dn).sum(axis=-1, keepdims=True)), dn * s)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg
