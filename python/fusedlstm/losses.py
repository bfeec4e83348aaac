"""Keras 3 losses with their gradients, and the Keras reduction rule.

A loss here computes per-element values (the last axis reduced, as Keras's loss
functions do) and, given dL/dvalues, the gradient with respect to y_pred. The
reduction follows keras.src.losses.loss.reduce_weighted_values with
reduction='sum_over_batch_size':

    loss = Σ values · w / size(values),   w = sample_weight (broadcast)
    with a mask: w = sample_weight · mask · size/valid  ->  Σ values·w·mask / valid

so a masked sequence loss is the mean over unmasked steps. Cross-entropies follow
Keras 3's PyTorch backend: probabilities are renormalised and clipped to
[1e-7, 1 - 1e-7] before the log (no gradient through clipped entries); from_logits
uses log_softmax / the logistic form. When a softmax Dense feeds
(sparse_)categorical_crossentropy, training skips this module's NumPy path and
calls `_core.dense_softmax_xent`, which computes the same numbers.

`get(identifier)` resolves a name ('mse'), a {"class_name", "config"} dict or a Loss;
every place that turns a saved or written loss back into an object calls it. The
classes register themselves in fusedlstm.registry (the names users type are aliases).
"""

import numbers

import numpy as np

from . import registry as _registry
from .activations import _sigmoid

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
           "mean_squared_error", "mean_absolute_error", "mse", "mae", "get", "serialize", "deserialize",
           "reduction_weights", "mask_for_values"]

EPSILON = 1e-7


def mask_for_values(mask, values_shape):
    """`mask` when it applies to loss values of `values_shape` (the same shape, or its
    leading axes); None otherwise (a mask of another output shape does not weight them)."""
    if mask is None:
        return None
    if mask.shape == tuple(values_shape):
        return mask
    if mask.ndim < len(values_shape) and mask.shape == tuple(values_shape[:mask.ndim]):
        return mask
    return None


def reduction_weights(values_shape, sample_weight, mask, reduction="sum_over_batch_size"):
    """Per-element weights w such that the reduced loss is Σ values·w (Keras's rule).

    sample_weight: None, (B,) or an array broadcastable to values_shape after Keras's
    rank fix-up; mask: None or bool array of values_shape (or its leading axes).
    """
    size = int(np.prod(values_shape)) if len(values_shape) else 1
    w = None
    if mask is not None:
        m = mask.astype(np.float64)
        while m.ndim < len(values_shape):
            m = m[..., None]
        m = np.broadcast_to(m, values_shape)
        if reduction in ("sum_over_batch_size", "mean"):
            valid = m.sum()
            m = m * (size / valid if valid > 0 else 0.0)
        w = m
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.ndim == len(values_shape) + 1 and sw.shape[-1] == 1:
            sw = sw.reshape(sw.shape[:-1])
        while sw.ndim < len(values_shape):
            sw = sw[..., None]
        try:
            sw = np.broadcast_to(sw, values_shape)
        except ValueError:
            raise ValueError(
                f"sample_weight of shape {np.shape(sample_weight)} does not fit per-sample losses "
                f"of shape {tuple(values_shape)}.") from None
        w = sw if w is None else w * sw
    if w is None:
        w = np.ones(values_shape)
    if reduction in ("sum_over_batch_size", "mean"):
        w = w / max(size, 1) if size else w
    return w


class Loss:
    """Base: subclasses implement values(y_true, y_pred) and grad(y_true, y_pred, dv)."""

    # ('categorical' | 'sparse', from_logits) when softmax + this loss may be fused.
    fused_kind = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in ("sum_over_batch_size", "sum", "mean"):
            raise NotImplementedError(
                f"Loss reduction {reduction!r} is not supported; use 'sum_over_batch_size' "
                "(the default), 'mean' or 'sum'.")
        self.name = name or self._default_name
        self.reduction = reduction

    _default_name = "loss"

    def prepare_targets(self, y_true, y_pred_shape):
        """Check and convert y_true for this loss; raises ValueError when it does not fit."""
        return _regression_targets(self.name, y_true, y_pred_shape)

    def values(self, y_true, y_pred):
        raise NotImplementedError

    def grad(self, y_true, y_pred, dv):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss as a float (keras.losses.Loss.__call__)."""
        y_pred = np.asarray(y_pred, dtype=np.float32)
        t = self.prepare_targets(y_true, y_pred.shape)
        v = self.values(t, y_pred)
        w = reduction_weights(v.shape, sample_weight, None, self.reduction)
        return float(np.sum(v * w))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _xent_from_probs(t, p):
    """-Σ t log(clip(p / Σp)) over the last axis, and what its gradient needs."""
    S = p.sum(axis=-1, keepdims=True)
    q = p / S
    qc = np.clip(q, EPSILON, 1.0 - EPSILON)
    return -(t * np.log(qc)).sum(axis=-1), (S, q, qc)


def _xent_grad_probs(t, aux, dv):
    S, q, qc = aux
    inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
    dq = np.where(inside, -t / qc, 0.0) * dv[..., None]
    return (dq - (dq * q).sum(axis=-1, keepdims=True)) / S


def _log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _smoothing(value):
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `label_smoothing`, expected a float in [0, 1], got {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Received an invalid value for argument `label_smoothing`, expected a float in [0, 1], got {value!r}.")
    return float(value)


@_registry.register("losses", aliases=("categorical_crossentropy",))
class CategoricalCrossentropy(Loss):
    _default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction)
        if axis != -1:
            raise NotImplementedError("CategoricalCrossentropy: only axis=-1 is supported.")
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)
        self.fused_kind = ("categorical", self.from_logits)

    def prepare_targets(self, y_true, y_pred_shape):
        y = np.asarray(y_true)
        if y.shape[1:] != tuple(y_pred_shape[1:]) or (y_pred_shape[0] is not None and y.shape[0] != y_pred_shape[0]):
            hint = ""
            if y.ndim == len(y_pred_shape) - 1 or (y.ndim == len(y_pred_shape) and y.shape[-1] == 1):
                hint = (" It looks like integer class ids: use loss='sparse_categorical_crossentropy' "
                        "or one-hot encode them (fusedlstm.utils.to_categorical).")
            raise ValueError(
                f"categorical_crossentropy: `y_true` and `y_pred` must have the same shape; got "
                f"y_true {y.shape} and model output {tuple(y_pred_shape)}.{hint}")
        y = y.astype(np.float32) if y.dtype != np.float32 else y
        if self.label_smoothing:
            C = y.shape[-1]
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / C
        return y

    def values(self, t, y_pred):
        if self.from_logits:
            return -(t * _log_softmax(y_pred)).sum(axis=-1)
        v, _ = _xent_from_probs(t, y_pred)
        return v

    def grad(self, t, y_pred, dv):
        if self.from_logits:
            z = y_pred
            p = np.exp(_log_softmax(z))
            return (p * t.sum(axis=-1, keepdims=True) - t) * dv[..., None]
        _, aux = _xent_from_probs(t, y_pred)
        return _xent_grad_probs(t, aux, dv)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing)
        return cfg


@_registry.register("losses", aliases=("sparse_categorical_crossentropy",))
class SparseCategoricalCrossentropy(Loss):
    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction)
        if ignore_class is not None:
            raise NotImplementedError("SparseCategoricalCrossentropy: `ignore_class` is not supported.")
        self.from_logits = bool(from_logits)
        self.fused_kind = ("sparse", self.from_logits)

    def prepare_targets(self, y_true, y_pred_shape):
        y = np.asarray(y_true)
        if y.ndim == len(y_pred_shape) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        want = tuple(y_pred_shape[:-1])
        if y.ndim != len(want) or y.shape[1:] != want[1:] or (want[0] is not None and y.shape[0] != want[0]):
            hint = ""
            if y.ndim == len(y_pred_shape) and y.shape[-1] == y_pred_shape[-1] and y.shape[-1] > 1:
                hint = " It looks like one-hot targets: use loss='categorical_crossentropy'."
            raise ValueError(
                "sparse_categorical_crossentropy: `y_true` must hold one class id per output row: "
                f"expected shape {want} (or {want + (1,)}), got {np.shape(y_true)} for model output "
                f"{tuple(y_pred_shape)}.{hint}")
        C = y_pred_shape[-1]
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y) | (y != np.floor(y)) if y.size else np.zeros(y.shape, bool)
            if bad.any():
                pos = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    "sparse_categorical_crossentropy: `y_true` must be integer class ids, got the non-integral "
                    f"value {y[pos]} at position {pos}.")
        elif y.dtype.kind not in "iu":
            raise TypeError(f"sparse_categorical_crossentropy: `y_true` must be integer class ids, got dtype {y.dtype}.")
        ids = y.astype(np.int32)
        if ids.size and (ids.min() < 0 or ids.max() >= C):
            bad = ids[(ids < 0) | (ids >= C)].flat[0]
            raise ValueError(
                f"sparse_categorical_crossentropy: class id {int(bad)} in `y_true` is outside "
                f"[0, {C}) (the model outputs {C} classes).")
        return ids

    def _onehot(self, ids, C, dtype):
        t = np.zeros(ids.shape + (C,), dtype)
        np.put_along_axis(t, ids[..., None], 1, axis=-1)
        return t

    def values(self, ids, y_pred):
        t = self._onehot(ids, y_pred.shape[-1], y_pred.dtype)
        return CategoricalCrossentropy.values(self, t, y_pred)

    def grad(self, ids, y_pred, dv):
        t = self._onehot(ids, y_pred.shape[-1], y_pred.dtype)
        return CategoricalCrossentropy.grad(self, t, y_pred, dv)

    def get_config(self):
        cfg = super().get_config()
        cfg["from_logits"] = self.from_logits
        return cfg


@_registry.register("losses", aliases=("binary_crossentropy",))
class BinaryCrossentropy(Loss):
    _default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction)
        if axis != -1:
            raise NotImplementedError("BinaryCrossentropy: only axis=-1 is supported.")
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(label_smoothing)

    def prepare_targets(self, y_true, y_pred_shape):
        y = np.asarray(y_true)
        if y.ndim == len(y_pred_shape) - 1 and y_pred_shape[-1] == 1:
            y = y.reshape(y.shape + (1,))
        if y.shape[1:] != tuple(y_pred_shape[1:]) or (y_pred_shape[0] is not None and y.shape[0] != y_pred_shape[0]):
            raise ValueError(
                f"binary_crossentropy: `y_true` must have the model output's shape "
                f"{tuple(y_pred_shape)}, got {np.shape(y_true)}.")
        y = y.astype(np.float32)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return y

    def values(self, t, y_pred):
        if self.from_logits:
            z = y_pred
            v = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        else:
            p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
            v = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
        return v.mean(axis=-1)

    def grad(self, t, y_pred, dv):
        C = y_pred.shape[-1]
        d = dv[..., None] / C
        if self.from_logits:
            return (_sigmoid(y_pred) - t) * d
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        inside = (y_pred >= EPSILON) & (y_pred <= 1.0 - EPSILON)
        return np.where(inside, (p - t) / (p * (1 - p)), 0.0) * d

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing)
        return cfg


@_registry.register("losses", aliases=("mean_squared_error", "mse", "MSE"))
class MeanSquaredError(Loss):
    _default_name = "mean_squared_error"

    def prepare_targets(self, y_true, y_pred_shape):
        return _regression_targets(self.name, y_true, y_pred_shape)

    def values(self, t, y_pred):
        return np.square(y_pred - t.reshape(y_pred.shape)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return 2.0 * (y_pred - t.reshape(y_pred.shape)) * (dv[..., None] / y_pred.shape[-1])


@_registry.register("losses", aliases=("mean_absolute_error", "mae", "MAE"))
class MeanAbsoluteError(Loss):
    _default_name = "mean_absolute_error"

    def prepare_targets(self, y_true, y_pred_shape):
        return _regression_targets(self.name, y_true, y_pred_shape)

    def values(self, t, y_pred):
        return np.abs(y_pred - t.reshape(y_pred.shape)).mean(axis=-1)

    def grad(self, t, y_pred, dv):
        return np.sign(y_pred - t.reshape(y_pred.shape)) * (dv[..., None] / y_pred.shape[-1])


def _regression_targets(name, y_true, y_pred_shape):
    """Keras's rank fix-up: (N,) vs (N, 1) outputs line up; anything else must match."""
    y = np.asarray(y_true)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise TypeError(f"{name}: `y_true` must be numeric, got dtype {y.dtype}.")
    y = y.astype(np.float32)
    ps = tuple(y_pred_shape)
    if y.ndim == len(ps) - 1 and ps[-1] == 1:
        y = y.reshape(y.shape + (1,))
    elif y.ndim == len(ps) + 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.shape[1:] != ps[1:] or (ps[0] is not None and y.shape[0] != ps[0]):
        raise ValueError(f"{name}: `y_true` of shape {np.shape(y_true)} does not match the model output shape {ps}.")
    return y


def _fn(cls, **kw):
    def loss_fn(y_true, y_pred):
        """Per-sample loss values (keras.losses.<name>)."""
        obj = cls(**kw)
        y_pred = np.asarray(y_pred, dtype=np.float32)
        return obj.values(obj.prepare_targets(y_true, y_pred.shape), y_pred)
    loss_fn._cls = cls
    return loss_fn


categorical_crossentropy = _fn(CategoricalCrossentropy)
categorical_crossentropy.__name__ = "categorical_crossentropy"
sparse_categorical_crossentropy = _fn(SparseCategoricalCrossentropy)
sparse_categorical_crossentropy.__name__ = "sparse_categorical_crossentropy"
binary_crossentropy = _fn(BinaryCrossentropy)
binary_crossentropy.__name__ = "binary_crossentropy"
mean_squared_error = mse = _fn(MeanSquaredError)
mean_squared_error.__name__ = "mean_squared_error"
mean_absolute_error = mae = _fn(MeanAbsoluteError)
mean_absolute_error.__name__ = "mean_absolute_error"



# Keras 3 losses fusedlstm does not implement (NotImplementedError); other unknown
# names are typos (ValueError).
_KERAS_ONLY = {"binary_focal_crossentropy", "categorical_focal_crossentropy", "categorical_hinge",
               "cosine_similarity", "ctc", "dice", "hinge", "huber", "kl_divergence", "kld",
               "kullback_leibler_divergence", "log_cosh", "logcosh", "mean_absolute_percentage_error", "mape",
               "mean_squared_logarithmic_error", "msle", "poisson", "squared_hinge", "tversky", "circle",
               "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "CategoricalHinge",
               "CosineSimilarity", "CTC", "Dice", "Hinge", "Huber", "KLDivergence", "LogCosh",
               "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Poisson", "SquaredHinge",
               "Tversky", "Circle"}


def get(identifier):
    """A Loss from a name, a {"class_name", "config"} dict (serialize's form), one of this
    module's loss functions, or a Loss instance.

    The object keeps the name the user gave (Keras reports per-output losses by it).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _registry.lookup("losses", identifier)
        if cls is None:
            supported = [k for k in _registry.names("losses") if k.islower()]
            if identifier in _KERAS_ONLY:
                raise NotImplementedError(
                    f"Loss {identifier!r} is not supported by fusedlstm; supported: {supported}.")
            raise ValueError(
                f"Received an invalid value for argument `loss`, expected one of {supported} or a "
                f"fusedlstm.losses.Loss, got {identifier!r}.")
        return cls(name=identifier)
    cls = getattr(identifier, "_cls", None)
    if cls is not None:
        return cls(name=identifier.__name__)
    if callable(identifier):
        name = getattr(identifier, "__name__", "")
        cls = _registry.lookup("losses", name)
        if cls is not None and getattr(identifier, "__module__", "").startswith(("keras", "tensorflow")):
            return cls(name=name)
        raise NotImplementedError(
            f"Custom loss function {identifier!r} is not supported (fusedlstm needs its gradient); "
            "use one of the built-in losses.")
    raise TypeError(
        f"Could not interpret loss identifier: {identifier!r} (argument `loss`, expected a loss name "
        "or a fusedlstm.losses.Loss).")


def serialize(loss):
    """What compile configs store for a loss: a name as it is, a loss function by its
    name, a Loss as {"class_name", "config"}."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, Loss):
        return _registry.serialize_keras_object(loss)
    name = getattr(loss, "__name__", None)
    if name and (getattr(loss, "_cls", None) is not None or _registry.lookup("losses", name) is not None):
        return name
    raise NotImplementedError(f"Cannot save the loss {loss!r}.")


def deserialize(config):
    """A Loss from serialize()'s dict form (its class looked up in fusedlstm.registry)."""
    cls = _registry.lookup("losses", config.get("class_name"))
    if not isinstance(cls, type) or not issubclass(cls, Loss):
        raise NotImplementedError(f"Loss class {config.get('class_name')!r} is not supported (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}))
