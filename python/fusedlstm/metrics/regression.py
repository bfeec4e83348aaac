"""RootMeanSquaredError and R2Score (keras.src.metrics.regression_metrics).

    root_mean_squared_error = sqrt(Σ_b w_b mean_j (p - t)² / Σ_b w_b)
    r2_score per output j   = 1 - Σ w (t - p)² / (Σ w t² - (Σ w t)² / Σ w)

R2Score aggregates the per-output scores uniformly ('uniform_average'), weighted
by each output's variance ('variance_weighted_average'), or not at all (None), and
with num_regressors = k > 0 adjusts it: 1 - (1 - r²)(n - 1)/(n - k - 1), n the
number of values seen (Keras warns and falls back to r² when n - 1 <= k).
"""

import numbers
import warnings

import numpy as np

from .. import registry as _registry
from .base import Mean, Metric, same_rank

__all__ = ["RootMeanSquaredError", "R2Score"]


@_registry.register("metrics", aliases=("root_mean_squared_error",))
class RootMeanSquaredError(Mean):
    _default_name = "root_mean_squared_error"

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        t, p = same_rank(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))
        self._accumulate(np.square(p - t), sample_weight)

    def result(self):
        return float(np.sqrt(self.total / self.count)) if self.count else 0.0


@_registry.register("metrics", aliases=("r2_score",))
class R2Score(Metric):
    """The coefficient of determination of y_pred for y_true, over (batch, outputs) data."""

    accumulators = ("squared_sum", "sum", "total_mse", "count", "num_samples")
    _default_name = "r2_score"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError(
                "Invalid value for argument `class_aggregation`. Expected one of (None, 'uniform_average', "
                f"'variance_weighted_average'). Received: class_aggregation={class_aggregation}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, numbers.Integral) or num_regressors < 0:
            raise ValueError(
                "Invalid value for argument `num_regressors`. Expected a value >= 0. "
                f"Received: num_regressors={num_regressors}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.squared_sum = self.sum = self.total_mse = self.count = None
        super().__init__(name, dtype)

    def build(self, y_true_shape, y_pred_shape):
        if self.squared_sum is not None:
            return
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                f"y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}.")
        n = int(y_pred_shape[-1])
        self.squared_sum, self.sum, self.total_mse, self.count = (np.zeros(n) for _ in range(4))

    def reset_state(self):
        self.num_samples = 0.0
        for name in ("squared_sum", "sum", "total_mse", "count"):
            a = getattr(self, name, None)
            if a is not None:
                a[...] = 0

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        t, p = same_rank(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))
        self.build(t.shape, p.shape)
        t64, p64 = t.astype(np.float64), p.astype(np.float64)
        w = np.ones(1) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 1:
            w = w[:, None]
        w = np.broadcast_to(w, t.shape)
        wt = t64 * w
        self.sum += wt.sum(axis=0)
        self.squared_sum += (t64 * wt).sum(axis=0)
        self.total_mse += (np.square(t64 - p64) * w).sum(axis=0)
        self.count += w.sum(axis=0)
        self.num_samples += t.size

    def result(self):
        if self.sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw = 1 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = float(np.sum(total * raw) / np.sum(total))
        else:
            r2 = raw
        k, n = self.num_regressors, self.num_samples
        if k:
            if k > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 score. Falling "
                              "back to standard R2 score.", stacklevel=2)
            elif k == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.",
                              stacklevel=2)
            else:
                r2 = 1.0 - (1.0 - r2) * (n - 1.0) / (n - k - 1.0)
        return r2

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
