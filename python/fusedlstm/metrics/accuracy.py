"""Accuracy metrics: 1/0 per sample (or step), averaged by MeanMetricWrapper.

As keras.src.metrics.accuracy_metrics: categorical compares argmaxes; sparse
compares the id with the argmax; binary thresholds y_pred (> 0.5); top-k counts the
target as found when its score is at least the k-th largest (ties count as found,
torch's in_top_k).
"""

import numbers

import numpy as np

from .. import registry as _registry
from .base import MeanMetricWrapper

__all__ = ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "accuracy", "binary_accuracy",
           "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy"]


def _labels_sparse(y_true, y_pred):
    y = np.asarray(y_true)
    if y.ndim == y_pred.ndim and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    return y


def accuracy(y_true, y_pred):
    return (np.asarray(y_true) == y_pred).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    y = _labels_sparse(y_true, y_pred)
    return (y.astype(np.int64) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y = np.asarray(y_true)
    if y.ndim == y_pred.ndim - 1:
        y = y[..., None]
    return ((y_pred > threshold).astype(np.float32) == y.astype(np.float32)).mean(axis=-1)


def _in_top_k(ids, y_pred, k):
    """Whether each row's target id scores at least its k-th largest score."""
    C = y_pred.shape[-1]
    if k > C:
        raise ValueError(f"top-k accuracy: k={k} is larger than the number of classes ({C}) of the output.")
    scores = y_pred.reshape(-1, C)
    ids = ids.reshape(-1).astype(np.int64)
    kth = -np.partition(-scores, k - 1, axis=-1)[:, k - 1]
    target = np.take_along_axis(scores, ids[:, None], axis=-1)[:, 0]
    return (target >= kth).astype(np.float32).reshape(y_pred.shape[:-1])


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    y = _labels_sparse(y_true, y_pred)
    if from_sorted_ids:
        # y_pred holds the ids of the top predictions, best first.
        return np.any(y.reshape(-1, 1) == y_pred.reshape(y.size, -1)[:, :k], axis=1).astype(np.float32).reshape(y.shape)
    return _in_top_k(y, y_pred, k)


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"Received an invalid value for argument `k`, expected a positive integer, got {k!r}.")
    return int(k)


class _Wrapped(MeanMetricWrapper):
    """A MeanMetricWrapper whose fn is fixed by the class (the Keras metric classes)."""

    fn = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self).fn, name or self._default_name, dtype, **kwargs)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}


@_registry.register("metrics")
class Accuracy(_Wrapped):
    """Exact equality of y_true and y_pred (keras.metrics.Accuracy)."""

    fn = staticmethod(accuracy)
    _default_name = "accuracy"


@_registry.register("metrics", aliases=("binary_accuracy",))
class BinaryAccuracy(_Wrapped):
    fn = staticmethod(binary_accuracy)
    _default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype, threshold=float(threshold))
        self.threshold = float(threshold)


@_registry.register("metrics", aliases=("categorical_accuracy",))
class CategoricalAccuracy(_Wrapped):
    fn = staticmethod(categorical_accuracy)
    _default_name = "categorical_accuracy"


@_registry.register("metrics", aliases=("sparse_categorical_accuracy",))
class SparseCategoricalAccuracy(_Wrapped):
    fn = staticmethod(sparse_categorical_accuracy)
    _default_name = "sparse_categorical_accuracy"


@_registry.register("metrics", aliases=("top_k_categorical_accuracy",))
class TopKCategoricalAccuracy(_Wrapped):
    """Whether the one-hot target's class is among the k highest scores (keras.metrics.TopKCategoricalAccuracy)."""

    fn = staticmethod(top_k_categorical_accuracy)
    _default_name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(name, dtype, k=_check_k(k))
        self.k = self._fn_kwargs["k"]


@_registry.register("metrics", aliases=("sparse_top_k_categorical_accuracy",))
class SparseTopKCategoricalAccuracy(_Wrapped):
    """Whether the target id is among the k highest scores (keras.metrics.SparseTopKCategoricalAccuracy)."""

    fn = staticmethod(sparse_top_k_categorical_accuracy)
    _default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        super().__init__(name, dtype, k=_check_k(k), from_sorted_ids=bool(from_sorted_ids))
        self.k = self._fn_kwargs["k"]
        self.from_sorted_ids = bool(from_sorted_ids)

    def get_config(self):
        cfg = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            cfg["from_sorted_ids"] = True
        return cfg
