"""FBetaScore and F1Score (keras.src.metrics.f_score_metrics) on (batch, classes) data.

A prediction counts as positive where y_pred > threshold, or, with threshold None,
where it is its row's maximum (and not ~0). Per class (average None, 'macro',
'weighted') or over all entries ('micro'):

    P = TP / (TP + FP + ε),  R = TP / (TP + FN + ε),  F = (1 + β²) P R / (β² P + R + ε)

'macro' is the mean of the per-class F, 'weighted' their mean weighted by each
class's (weighted) count of positive labels, None the per-class array.
"""

import numbers

import numpy as np

from .. import registry as _registry
from .base import Metric

__all__ = ["FBetaScore", "F1Score"]

EPSILON = 1e-7


@_registry.register("metrics", aliases=("fbeta_score",))
class FBetaScore(Metric):
    """The F-beta score (keras.metrics.FBetaScore); see the module docstring."""

    accumulators = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")
    _default_name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average}")
        if not isinstance(beta, float):
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float. Received: beta={beta} "
                             f"of type '{type(beta)}'")
        if beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("Invalid `threshold` argument value. It should be a Python float. Received: "
                                 f"threshold={threshold} of type '{type(threshold)}'")
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError("Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                                 f"Received: threshold={threshold}")
        self.average, self.beta, self.threshold = average, beta, threshold
        self.axis = None if average == "micro" else 0
        for n in self.accumulators:
            setattr(self, n, None)
        super().__init__(name, dtype)

    def build(self, y_true_shape, y_pred_shape):
        if self.true_positives is not None:
            return
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects 2D inputs with shape (batch_size, output_dim). Received input "
                f"shapes: y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}.")
        shape = () if self.average == "micro" else (int(y_pred_shape[-1]),)
        for n in self.accumulators:
            setattr(self, n, np.zeros(shape))

    def reset_state(self):
        for n in self.accumulators:
            a = getattr(self, n, None)
            if a is not None:
                a[...] = 0

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_true = np.asarray(y_true, dtype=np.float32)
        y_pred = np.asarray(y_pred, dtype=np.float32)
        self.build(y_true.shape, y_pred.shape)
        if self.threshold is None:
            pos = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            pos = y_pred > self.threshold
        p = pos.astype(np.float64)
        t = y_true.astype(np.float64)
        w = None if sample_weight is None else np.asarray(sample_weight, np.float64)[:, None]

        def weighted_sum(val):
            if w is not None:
                val = val * w
            return val.sum(axis=self.axis)

        self.true_positives += weighted_sum(p * t)
        self.false_positives += weighted_sum(p * (1 - t))
        self.false_negatives += weighted_sum((1 - p) * t)
        self.intermediate_weights += weighted_sum(t)

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + EPSILON)
            return float(np.sum(f * weights))
        if self.average is not None:
            return float(np.mean(f))
        return f

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


@_registry.register("metrics", aliases=("f1_score",))
class F1Score(FBetaScore):
    """The F1 score: FBetaScore with beta = 1 (keras.metrics.F1Score)."""

    _default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        cfg = super().get_config()
        del cfg["beta"]
        return cfg
