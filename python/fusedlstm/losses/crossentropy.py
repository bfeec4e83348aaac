"""Cross-entropies: categorical, sparse categorical, binary, and their focal forms.

Keras 3's PyTorch backend computes them as follows (keras/src/backend/torch/nn.py,
keras/src/losses/losses.py), and so do we, in the output's dtype:

    categorical:  q = p / Σp,  qc = clip(q, ε, 1-ε),  v = -Σ t log qc
                  (from_logits: v = -Σ t log_softmax(z))
    binary:       pc = clip(p, ε, 1-ε),  v = mean(-(t log pc + (1-t) log(1-pc)))
                  (from_logits: v = mean(max(z,0) - z t + log(1 + e^-|z|)))
    binary focal: p_t = t p + (1-t)(1-p),  v = mean(w (1-p_t)^γ bce)
                  w = α t + (1-α)(1-t) with apply_class_balancing, else 1
    categorical focal: v = Σ α (1-qc)^γ (-t log qc)   (from_logits: p = softmax(z))

with ε = 1e-7; a clipped entry passes no gradient (torch.clip). label_smoothing
moves the targets towards uniform first: t(1-s) + s/C (categorical), t(1-s) + s/2
(binary). When a softmax Dense feeds (sparse_)categorical_crossentropy, training
skips this module's NumPy path and calls `_core.dense_softmax_xent`, which
computes the same numbers.
"""

import numbers

import numpy as np

from .. import registry as _registry
from ..activations import _sigmoid
from .base import EPSILON, Loss, check_fraction, check_last_axis, check_non_negative, spread

__all__ = ["CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy"]


def _log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _normalized(p):
    """(q, qc, S): p renormalised over the last axis, its clip to [ε, 1-ε], and Σp."""
    S = p.sum(axis=-1, keepdims=True)
    q = p / S
    return q, np.clip(q, EPSILON, 1.0 - EPSILON), S


def _inside(x):
    """Where clip(x, ε, 1-ε) passes its gradient (torch.clamp: the bounds included)."""
    return (x >= EPSILON) & (x <= 1.0 - EPSILON)


def _through_normalization(dq, q, S):
    """dL/dp from dL/dq for q = p / Σp."""
    return (dq - (dq * q).sum(axis=-1, keepdims=True)) / S


def _through_softmax(dp, p):
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def _categorical_targets(name, y_true, y_pred_shape):
    y = np.asarray(y_true)
    if y.shape[1:] != tuple(y_pred_shape[1:]) or (y_pred_shape[0] is not None and y.shape[0] != y_pred_shape[0]):
        hint = ""
        if y.ndim == len(y_pred_shape) - 1 or (y.ndim == len(y_pred_shape) and y.shape[-1] == 1):
            hint = (f" It looks like integer class ids: use loss='sparse_{name}' "
                    "or one-hot encode them (fusedlstm.utils.to_categorical).")
        raise ValueError(
            f"{name}: `y_true` and `y_pred` must have the same shape; got "
            f"y_true {y.shape} and model output {tuple(y_pred_shape)}.{hint}")
    return y.astype(np.float32) if y.dtype != np.float32 else y


def _smooth_categorical(y, s):
    return y * (1.0 - s) + s / y.shape[-1] if s else y


def _smooth_binary(y, s):
    return y * (1.0 - s) + 0.5 * s if s else y


def _binary_targets(name, y_true, y_pred_shape):
    y = np.asarray(y_true)
    if y.ndim == len(y_pred_shape) - 1 and y_pred_shape[-1] == 1:
        y = y.reshape(y.shape + (1,))
    if y.shape[1:] != tuple(y_pred_shape[1:]) or (y_pred_shape[0] is not None and y.shape[0] != y_pred_shape[0]):
        raise ValueError(f"{name}: `y_true` must have the model output's shape {tuple(y_pred_shape)}, got {np.shape(y_true)}.")
    return y.astype(np.float32)


def _bce(t, p):
    """torch.nn.functional.binary_cross_entropy on clip(p): its value and dbce/dp."""
    pc = np.clip(p, EPSILON, 1.0 - EPSILON)
    v = -(t * np.maximum(np.log(pc), -100) + (1 - t) * np.maximum(np.log1p(-pc), -100))
    dp = np.where(_inside(p), (pc - t) / np.maximum((1 - pc) * pc, 1e-12), 0.0)
    return v, dp


# --- categorical ---------------------------------------------------------------------------------

@_registry.register("losses", aliases=("categorical_crossentropy",))
class CategoricalCrossentropy(Loss):
    """-Σ t log p over the classes (keras.losses.CategoricalCrossentropy)."""

    _default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")
        self.fused_kind = ("categorical", self.from_logits)

    def prepare_targets(self, y_true, y_pred_shape):
        y = _categorical_targets("categorical_crossentropy", y_true, y_pred_shape)
        return _smooth_categorical(y, self.label_smoothing)

    def values(self, t, y_pred):
        if self.from_logits:
            return -(t * _log_softmax(y_pred)).sum(axis=-1)
        _, qc, _ = _normalized(y_pred)
        return -(t * np.log(qc)).sum(axis=-1)

    def grad(self, t, y_pred, dv):
        if self.from_logits:
            p = np.exp(_log_softmax(y_pred))
            return (p * t.sum(axis=-1, keepdims=True) - t) * dv[..., None]
        q, qc, S = _normalized(y_pred)
        dq = np.where(_inside(q), -t / qc, 0.0) * dv[..., None]
        return _through_normalization(dq, q, S)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return cfg


@_registry.register("losses", aliases=("sparse_categorical_crossentropy",))
class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer class ids as targets.

    ignore_class: a target id whose entries are left out (their values are 0 and
    masked, so the mean runs over the others, as Keras does); it may lie outside
    [0, classes), e.g. -1 for padding.
    """

    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)
        if ignore_class is not None and (isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral)):
            raise TypeError(f"Received an invalid value for argument `ignore_class`, expected an integer or None, got {ignore_class!r}.")
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.from_logits = bool(from_logits)
        self.fused_kind = ("sparse", self.from_logits)

    def prepare_targets(self, y_true, y_pred_shape):
        """Integer ids of y_pred_shape[:-1]; ignored entries become id 0 (their values are
        masked), and `values_mask` tells which they were."""
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
        elif y.dtype.kind not in "iub":
            raise TypeError(f"sparse_categorical_crossentropy: `y_true` must be integer class ids, got dtype {y.dtype}.")
        ids = y.astype(np.int64) if y.dtype.kind == "f" else y
        ignored = None
        if self.ignore_class is not None:
            ignored = ids == self.ignore_class
            if ignored.any():
                ids = np.where(ignored, 0, ids)
        if ids.size and (ids.min() < 0 or ids.max() >= C):
            bad = ids[(ids < 0) | (ids >= C)].flat[0]
            raise ValueError(
                f"sparse_categorical_crossentropy: class id {int(bad)} in `y_true` is outside "
                f"[0, {C}) (the model outputs {C} classes).")
        ids = ids.astype(np.int32)
        return ids if ignored is None else _Ids(ids, ignored)

    def values_mask(self, t):
        ignored = getattr(t, "ignored", None)
        return None if ignored is None else ~ignored

    def _onehot(self, ids, C, dtype):
        t = np.zeros(ids.shape + (C,), dtype)
        np.put_along_axis(t, np.asarray(ids)[..., None], 1, axis=-1)
        return t

    def values(self, ids, y_pred):
        t = self._onehot(ids, y_pred.shape[-1], y_pred.dtype)
        v = CategoricalCrossentropy.values(self, t, y_pred)
        ignored = getattr(ids, "ignored", None)
        if ignored is not None:
            v = np.where(ignored, 0.0, v).astype(v.dtype)
        return v

    def grad(self, ids, y_pred, dv):
        t = self._onehot(ids, y_pred.shape[-1], y_pred.dtype)
        ignored = getattr(ids, "ignored", None)
        if ignored is not None:
            dv = np.where(ignored, 0.0, dv)
        return CategoricalCrossentropy.grad(self, t, y_pred, dv)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        return cfg


class _Ids(np.ndarray):
    """Class ids with `ignored`: where the target was ignore_class (None when nothing is)."""

    def __new__(cls, ids, ignored):
        obj = np.asarray(ids).view(cls)
        obj.ignored = ignored
        return obj

    def __array_finalize__(self, obj):
        self.ignored = getattr(obj, "ignored", None)


# --- binary ------------------------------------------------------------------------------------

@_registry.register("losses", aliases=("binary_crossentropy", "bce", "BCE"))
class BinaryCrossentropy(Loss):
    """Mean over the last axis of -(t log p + (1-t) log(1-p)) (keras.losses.BinaryCrossentropy)."""

    _default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")

    def prepare_targets(self, y_true, y_pred_shape):
        return _smooth_binary(_binary_targets(self._default_name, y_true, y_pred_shape), self.label_smoothing)

    def values(self, t, y_pred):
        if self.from_logits:
            z = y_pred
            v = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        else:
            v, _ = _bce(t, y_pred)
        return v.mean(axis=-1)

    def grad(self, t, y_pred, dv):
        if self.from_logits:
            return (_sigmoid(y_pred) - t) * spread(dv, y_pred)
        _, dp = _bce(t, y_pred)
        return dp * spread(dv, y_pred)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return cfg


@_registry.register("losses", aliases=("binary_focal_crossentropy",))
class BinaryFocalCrossentropy(Loss):
    """Binary cross-entropy scaled by (1 - p_t)^γ (keras.losses.BinaryFocalCrossentropy).

    Args:
        apply_class_balancing: weight positives by α and negatives by 1 - α.
        alpha: the balancing weight (only with apply_class_balancing).
        gamma: the focusing exponent (0 is plain binary cross-entropy).
        from_logits, label_smoothing, axis, reduction, name: as BinaryCrossentropy.
    """

    _default_name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = check_fraction(alpha, "alpha")
        self.gamma = check_non_negative(gamma, "gamma")
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")

    def prepare_targets(self, y_true, y_pred_shape):
        return _smooth_binary(_binary_targets(self._default_name, y_true, y_pred_shape), self.label_smoothing)

    def _parts(self, t, y_pred):
        p = _sigmoid(y_pred) if self.from_logits else y_pred
        bce, dbce = _bce(t, p)
        one_minus = 1.0 - (t * p + (1 - t) * (1 - p))
        focal = one_minus ** self.gamma if self.gamma else np.ones_like(one_minus)
        w = t * self.alpha + (1 - t) * (1 - self.alpha) if self.apply_class_balancing else None
        return p, bce, dbce, one_minus, focal, w

    def values(self, t, y_pred):
        _, bce, _, _, focal, w = self._parts(t, y_pred)
        v = focal * bce
        if w is not None:
            v = w * v
        return v.mean(axis=-1)

    def grad(self, t, y_pred, dv):
        p, bce, dbce, one_minus, focal, w = self._parts(t, y_pred)
        # d(1-p_t)/dp = -(2t - 1)
        dfocal = (self.gamma * one_minus ** (self.gamma - 1) * -(2 * t - 1)) if self.gamma else 0.0
        dp = dfocal * bce + focal * dbce
        if w is not None:
            dp = w * dp
        dp = dp * spread(dv, y_pred)
        if self.from_logits:
            dp = dp * p * (1 - p)
        return dp

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis,
                   apply_class_balancing=self.apply_class_balancing, alpha=self.alpha, gamma=self.gamma)
        return cfg


@_registry.register("losses", aliases=("categorical_focal_crossentropy",))
class CategoricalFocalCrossentropy(Loss):
    """Categorical cross-entropy scaled by α (1 - p)^γ per class
    (keras.losses.CategoricalFocalCrossentropy)."""

    _default_name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction)
        self.axis = check_last_axis(axis, type(self).__name__)
        self.alpha = check_non_negative(alpha, "alpha")
        self.gamma = check_non_negative(gamma, "gamma")
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")

    def prepare_targets(self, y_true, y_pred_shape):
        y = _categorical_targets("categorical_focal_crossentropy", y_true, y_pred_shape)
        return _smooth_categorical(y, self.label_smoothing)

    def _probs(self, y_pred):
        return np.exp(_log_softmax(y_pred)) if self.from_logits else y_pred

    def values(self, t, y_pred):
        _, qc, _ = _normalized(self._probs(y_pred))
        return (self.alpha * (1.0 - qc) ** self.gamma * (-t * np.log(qc))).sum(axis=-1)

    def grad(self, t, y_pred, dv):
        p = self._probs(y_pred)
        q, qc, S = _normalized(p)
        g = self.gamma
        mod = (1.0 - qc) ** g
        dmod = g * (1.0 - qc) ** (g - 1) if g else 0.0
        # d/dqc of α (1-qc)^γ (-t log qc)
        dqc = self.alpha * (dmod * t * np.log(qc) - mod * t / qc)
        dq = np.where(_inside(q), dqc, 0.0) * dv[..., None]
        dp = _through_normalization(dq, q, S)
        return _through_softmax(dp, p) if self.from_logits else dp

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis,
                   alpha=self.alpha, gamma=self.gamma)
        return cfg
