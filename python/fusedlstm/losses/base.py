"""The Loss base class and Keras 3's reduction rule.

A loss here computes per-element values (the last axis reduced, as Keras's loss
functions do) and, given dL/dvalues, the gradient with respect to y_pred. The
reduction follows keras.src.losses.loss.reduce_weighted_values:

    loss = Σ values · w / D,   w = sample_weight (broadcast) · mask
    D = size(values)                     'sum_over_batch_size' (default), 'mean'
        (with a mask: the unmasked count, so a masked sequence loss is the mean
         over unmasked steps)
    D = Σ sample_weight · mask           'mean_with_sample_weight' (size without either)
    D = 1                                'sum'
    None / 'none': the weighted values themselves, unreduced

so every reduction is Σ values · weights for per-element weights that do not
depend on y_pred (`reduction_weights`), which is how the step differentiates it.
A loss may mask some of its own values (SparseCategoricalCrossentropy's
ignore_class); that mask is and-ed with the model output's, as Keras does.
"""

import numbers

import numpy as np

__all__ = ["Loss", "REDUCTIONS", "reduction_weights", "reduction_divisor", "mask_for_values",
           "combine_masks", "regression_targets", "EPSILON"]

# keras.backend.epsilon(): the clip and guard constant of every Keras loss.
EPSILON = 1e-7

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none")


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


def combine_masks(a, b):
    """The and of two optional boolean masks of the same values (Keras: in_mask & out_mask)."""
    if a is None:
        return b
    if b is None:
        return a
    while a.ndim < b.ndim:
        a = a[..., None]
    while b.ndim < a.ndim:
        b = b[..., None]
    return a & b


def _mask_array(mask, values_shape):
    m = mask.astype(np.float64)
    while m.ndim < len(values_shape):
        m = m[..., None]
    return m


def _sample_weight_array(sample_weight, values_shape):
    """Keras's rank fix-up of a sample weight against the values (a trailing 1 dropped, or
    missing trailing axes added); not broadcast yet."""
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == len(values_shape) + 1 and sw.shape[-1] == 1:
        sw = sw.reshape(sw.shape[:-1])
    while sw.ndim < len(values_shape):
        sw = sw[..., None]
    try:
        np.broadcast_shapes(sw.shape, tuple(values_shape))
    except ValueError:
        raise ValueError(
            f"sample_weight of shape {np.shape(sample_weight)} does not fit per-sample losses "
            f"of shape {tuple(values_shape)}.") from None
    return sw


def reduction_divisor(values_shape, sample_weight, mask, reduction="sum_over_batch_size"):
    """D of the module docstring: what the weighted sum of the values is divided by."""
    size = int(np.prod(values_shape)) if len(values_shape) else 1
    if reduction in ("sum", None, "none"):
        return 1.0
    if reduction == "mean_with_sample_weight" and (sample_weight is not None or mask is not None):
        # Keras sums the merged weight in its own shape, before it is broadcast.
        merged = 1.0
        if mask is not None:
            merged = _mask_array(mask, values_shape)
        if sample_weight is not None:
            merged = merged * _sample_weight_array(sample_weight, values_shape)
        return float(np.sum(merged))
    if mask is not None:
        # Keras weights valid entries by total/valid and divides by the size: Σ·m / valid.
        return float(np.broadcast_to(_mask_array(mask, values_shape), values_shape).sum())
    return float(size)


def reduction_weights(values_shape, sample_weight, mask, reduction="sum_over_batch_size"):
    """Per-element weights w such that the reduced loss is Σ values·w (Keras's rule).

    sample_weight: None, (B,) or an array broadcastable to values_shape after Keras's
    rank fix-up; mask: None or bool array of values_shape (or its leading axes).
    For reduction None/'none' w weights the values without reducing them.
    """
    w = None
    if mask is not None:
        w = np.broadcast_to(_mask_array(mask, values_shape), values_shape)
    if sample_weight is not None:
        sw = np.broadcast_to(_sample_weight_array(sample_weight, values_shape), values_shape)
        w = sw if w is None else w * sw
    if w is None:
        w = np.ones(values_shape)
    d = reduction_divisor(values_shape, sample_weight, mask, reduction)
    if d != 1.0:
        w = w / d if d > 0 else np.zeros(values_shape)  # Keras's divide_no_nan
    return w


def _check_reduction(reduction):
    if isinstance(reduction, str) or reduction is None:
        if reduction in REDUCTIONS:
            return reduction
    raise ValueError(
        "Invalid value for argument `reduction`. Expected one of "
        f"{{'sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', None, 'none'}}. "
        f"Received: reduction={reduction!r}")


class Loss:
    """Base of every loss: subclasses implement `values(t, y_pred)` (per-element values,
    the last axis reduced) and `grad(t, y_pred, dv)` (dL/dy_pred given dL/dvalues), on
    targets `t` returned by `prepare_targets`.

    Args:
        name: the loss's name (default: Keras's default name for the class).
        reduction: see the module docstring.
        dtype: accepted for Keras compatibility; losses compute in the output's dtype.
    """

    # ('categorical' | 'sparse', from_logits) when a softmax Dense + this loss may be fused.
    fused_kind = None
    _default_name = "loss"

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Received an invalid value for argument `name`, expected a string, got {name!r}.")
        self.name = name or self._default_name
        self.reduction = _check_reduction(reduction)

    def prepare_targets(self, y_true, y_pred_shape):
        """Check and convert y_true for this loss; raises ValueError when it does not fit."""
        return regression_targets(self.name, y_true, y_pred_shape)

    def values_mask(self, t):
        """A boolean mask of the values this loss leaves out (None: none), from prepared targets."""
        return None

    def values(self, t, y_pred):
        raise NotImplementedError

    def grad(self, t, y_pred, dv):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss as a float (keras.losses.Loss.__call__); the weighted values
        as an array for reduction None/'none'."""
        y_pred = np.asarray(y_pred, dtype=np.float32)
        t = self.prepare_targets(y_true, y_pred.shape)
        v = self.values(t, y_pred)
        mask = self.values_mask(t)
        w = reduction_weights(v.shape, sample_weight, mask, self.reduction)
        if self.reduction in (None, "none"):
            return (v * w).astype(np.float32)
        return float(np.sum(v * w))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


# --- argument checks shared by the losses ------------------------------------------------------

def check_fraction(value, arg):
    """A float in [0, 1] (label_smoothing, alpha)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    return float(value)


def check_non_negative(value, arg):
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"Received an invalid value for argument `{arg}`, expected a non-negative float, got {value!r}.")
    if value < 0:
        raise ValueError(f"Received an invalid value for argument `{arg}`, expected a non-negative float, got {value!r}.")
    return float(value)


def check_last_axis(axis, cls):
    if isinstance(axis, bool) or axis != -1:
        raise NotImplementedError(f"{cls}: only axis=-1 is supported, got axis={axis!r}.")
    return -1


def regression_targets(name, y_true, y_pred_shape):
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


def spread(dv, y_pred):
    """dL/dvalues of a mean over the last axis, as dL/d(each element)."""
    return dv[..., None] / y_pred.shape[-1]
