"""Metrics accumulated over an epoch the way Keras 3 does.

Every metric is a mean of per-element values (accuracy: 1/0 per row; mse: the
row's mean squared error) weighted by sample weights and the output mask:

    total += Σ_b mean_rest(values · w),  count += Σ_b mean_rest(w)

(keras.src.metrics.reduction_metrics.reduce_to_samplewise_values), so a masked
sequence accuracy is the fraction of correct unmasked steps. 'acc'/'accuracy' is
resolved from the loss and shapes exactly as keras.src.trainers.compile_utils does
(binary when the output has 1 unit, sparse when y_true has one rank less or a
trailing 1, else categorical) and reported under the name the user wrote.

Metric classes register in fusedlstm.registry (the lowercase names users type are
aliases), so a compile config can hold a metric object as {"class_name", "config"}.
"""

import numpy as np

from . import losses as _losses
from . import registry as _registry

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

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_registry.register("metrics")
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


def _named(cls, name, *aliases):
    cls.__name__ = cls.__qualname__ = name
    return _registry.register("metrics", aliases=aliases)(cls)


CategoricalAccuracy = _named(_wrapper(categorical_accuracy, "categorical_accuracy"), "CategoricalAccuracy",
                             "categorical_accuracy")
SparseCategoricalAccuracy = _named(_wrapper(sparse_categorical_accuracy, "sparse_categorical_accuracy"),
                                   "SparseCategoricalAccuracy", "sparse_categorical_accuracy")
BinaryAccuracy = _named(_wrapper(binary_accuracy, "binary_accuracy"), "BinaryAccuracy", "binary_accuracy")
MeanSquaredError = _named(_wrapper(mean_squared_error, "mean_squared_error"), "MeanSquaredError",
                          "mse", "mean_squared_error")
MeanAbsoluteError = _named(_wrapper(mean_absolute_error, "mean_absolute_error"), "MeanAbsoluteError",
                           "mae", "mean_absolute_error")


@_registry.register("metrics")
class Accuracy(MeanMetricWrapper):
    """Exact equality of y_true and y_pred (keras.metrics.Accuracy)."""

    _default_name = "accuracy"

    def __init__(self, name=None, dtype=None):
        super().__init__(lambda t, p: (np.asarray(t) == p).astype(np.float32), name or "accuracy")




def _loss_metric(name):
    loss = _losses.get(name)

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


def _by_name(name):
    """The metric class for a name users type ('mse', 'categorical_accuracy'), or None."""
    return _registry.lookup("metrics", name) if isinstance(name, str) and name.islower() else None


def get(identifier, y_true_shape, y_pred_shape):
    """A fresh Metric for a compile() entry (a name, a {"class_name", "config"} dict, a
    Metric class or instance); its name is the string the user gave."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("acc", "accuracy"):
            return resolve_accuracy(y_true_shape, y_pred_shape)(name=identifier)
        cls = _by_name(identifier)
        if cls is not None:
            return cls(name=identifier)
        if identifier in ("categorical_crossentropy", "sparse_categorical_crossentropy",
                          "binary_crossentropy"):
            return _loss_metric(identifier)
        supported = sorted({n for n in _registry.names("metrics") if n.islower()} | {"accuracy", "acc"})
        raise NotImplementedError(
            f"Metric {identifier!r} is not supported by fusedlstm; supported: {supported} and the cross-entropies.")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    fn_name = getattr(identifier, "__name__", None)
    if callable(identifier) and _by_name(fn_name) is not None and globals().get(fn_name) is identifier:
        return _by_name(fn_name)(name=fn_name)
    raise NotImplementedError(f"Metric {identifier!r} is not supported by fusedlstm (custom metric functions are not).")


def serialize(metric):
    """What compile configs store for a metric: a name as it is; a Metric of a registered
    class as {"class_name", "config"}. Other metric objects cannot be rebuilt from a file."""
    if metric is None or isinstance(metric, str):
        return metric
    if isinstance(metric, Metric) and _registry.lookup("metrics", _registry.registered_name(metric)) is type(metric):
        return _registry.serialize_keras_object(metric)
    raise NotImplementedError(f"Cannot save the metric object {metric!r}; compile with metric names to save the model.")


def deserialize(config):
    """A Metric from serialize()'s dict form (its class looked up in fusedlstm.registry)."""
    cls = _registry.lookup("metrics", config.get("class_name"))
    if not isinstance(cls, type) or not issubclass(cls, Metric):
        raise NotImplementedError(f"Metric class {config.get('class_name')!r} is not supported (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}))
