"""Metrics accumulated over an epoch the way Keras 3 does.

Every metric is a mean of per-element values (accuracy: 1/0 per row; mse: the
row's mean squared error) weighted by sample weights and the output mask:

    total += Σ_b mean_rest(values · w),  count += Σ_b mean_rest(w)

(keras.src.metrics.reduction_metrics.reduce_to_samplewise_values), so a masked
sequence accuracy is the fraction of correct unmasked steps. 'acc'/'accuracy' is
resolved from the loss and shapes exactly as keras.src.trainers.compile_utils does
(binary when the output has 1 unit, sparse when y_true has one rank less or a
trailing 1, else categorical) and reported under the name the user wrote.
"""

import numpy as np

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "Accuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "BinaryAccuracy", "MeanSquaredError",
           "MeanAbsoluteError", "get"]


class Metric:
    """Base: update_state(...), result(), reset_state()."""

    def __init__(self, name=None, dtype=None):
        self.name = name or self._default_name
        self.reset_state()

    _default_name = "metric"

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def result(self):
        return float(self.total / self.count) if self.count else 0.0

    def _accumulate(self, values, weight=None):
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 0:
            v = v[None]
        B = v.shape[0]
        if weight is None:
            # Σ_b mean_rest(v) without the per-row pass.
            self.total += float(v.sum()) * B / v.size if v.size else 0.0
            self.count += B
            return
        w = np.asarray(weight, dtype=np.float64)
        while w.ndim > v.ndim and w.shape[-1] == 1:
            w = w.reshape(w.shape[:-1])
        r = w.ndim
        if v.ndim > r:
            v = v.reshape(v.shape[:r] + (-1,)).mean(axis=-1)
        w = np.broadcast_to(w.reshape(w.shape + (1,) * (v.ndim - r)), v.shape)
        vw = v * w
        self.total += float(vw.reshape(B, -1).mean(axis=1).sum()) if vw.size else 0.0
        self.count += float(w.reshape(B, -1).mean(axis=1).sum()) if w.size else 0.0

    reset_states = reset_state

    def get_config(self):
        return {"name": self.name}


class Mean(Metric):
    _default_name = "mean"

    def update_state(self, values, sample_weight=None):
        self._accumulate(values, sample_weight)

    def add(self, value, weight):
        """Scalar fast path: total += value·weight, count += weight (the loss trackers)."""
        self.total += value * weight
        self.count += weight


class MeanMetricWrapper(Metric):
    """A per-element function of (y_true, y_pred), averaged with weights and masks."""

    def __init__(self, fn, name=None, dtype=None):
        self._fn = fn
        super().__init__(name or getattr(fn, "__name__", "metric"))

    def values(self, y_true, y_pred):
        return self._fn(y_true, y_pred)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        v = self.values(np.asarray(y_true), np.asarray(y_pred))
        w = sample_weight
        if mask is not None:
            m = mask.astype(np.float64)
            if w is None:
                w = m
            else:
                w = np.asarray(w, dtype=np.float64)
                while w.ndim < m.ndim:
                    w = w[..., None]
                w = w * m
        self._accumulate(v, w)


def _labels_sparse(y_true, y_pred):
    y = np.asarray(y_true)
    if y.ndim == y_pred.ndim and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    return y


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


def _regression_pair(y_true, y_pred):
    y = np.asarray(y_true, dtype=np.float32)
    if y.ndim == y_pred.ndim - 1:
        y = y[..., None]
    return y.reshape(y_pred.shape)


def mean_squared_error(y_true, y_pred):
    return np.square(y_pred - _regression_pair(y_true, y_pred)).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.abs(y_pred - _regression_pair(y_true, y_pred)).mean(axis=-1)


def _wrapper(fn, default):
    class _M(MeanMetricWrapper):
        _default_name = default

        def __init__(self, name=None, dtype=None):
            super().__init__(fn, name or default)

    return _M


CategoricalAccuracy = _wrapper(categorical_accuracy, "categorical_accuracy")
CategoricalAccuracy.__name__ = "CategoricalAccuracy"
SparseCategoricalAccuracy = _wrapper(sparse_categorical_accuracy, "sparse_categorical_accuracy")
SparseCategoricalAccuracy.__name__ = "SparseCategoricalAccuracy"
BinaryAccuracy = _wrapper(binary_accuracy, "binary_accuracy")
BinaryAccuracy.__name__ = "BinaryAccuracy"
MeanSquaredError = _wrapper(mean_squared_error, "mean_squared_error")
MeanSquaredError.__name__ = "MeanSquaredError"
MeanAbsoluteError = _wrapper(mean_absolute_error, "mean_absolute_error")
MeanAbsoluteError.__name__ = "MeanAbsoluteError"


class Accuracy(MeanMetricWrapper):
    """Exact equality of y_true and y_pred (keras.metrics.Accuracy)."""

    _default_name = "accuracy"

    def __init__(self, name=None, dtype=None):
        super().__init__(lambda t, p: (np.asarray(t) == p).astype(np.float32), name or "accuracy")


_BY_NAME = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}


def _loss_metric(name):
    from . import losses

    loss = losses.get(name)

    def fn(y_true, y_pred):
        return loss.values(loss.prepare_targets(y_true, y_pred.shape), y_pred)

    return MeanMetricWrapper(fn, name)


def resolve_accuracy(y_true_shape, y_pred_shape):
    """Which accuracy Keras picks for 'acc'/'accuracy' (compile_utils.is_binary_or_sparse_categorical)."""
    if y_pred_shape[-1] == 1:
        return BinaryAccuracy
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return SparseCategoricalAccuracy
    return CategoricalAccuracy


def get(identifier, y_true_shape, y_pred_shape):
    """A fresh Metric for a compile() entry; its name is the string the user gave."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("acc", "accuracy"):
            return resolve_accuracy(y_true_shape, y_pred_shape)(name=identifier)
        cls = _BY_NAME.get(identifier)
        if cls is not None:
            return cls(name=identifier)
        if identifier in ("categorical_crossentropy", "sparse_categorical_crossentropy",
                          "binary_crossentropy"):
            return _loss_metric(identifier)
        raise NotImplementedError(
            f"Metric {identifier!r} is not supported by fusedlstm; supported: "
            f"{sorted(set(_BY_NAME) | {'accuracy', 'acc'})} and the cross-entropies.")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    fn_name = getattr(identifier, "__name__", None)
    if callable(identifier) and fn_name in _BY_NAME and globals().get(fn_name) is identifier:
        return _BY_NAME[fn_name](name=fn_name)
    raise NotImplementedError(f"Metric {identifier!r} is not supported by fusedlstm (custom metric functions are not).")
