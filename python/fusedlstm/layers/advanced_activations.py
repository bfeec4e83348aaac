"""Activation layers with arguments: LeakyReLU, PReLU, ReLU, ELU, Softmax (Keras 3 semantics).

Each is one elementwise NumPy pass forward and one backward. All of them pass a
mask through (Keras 3's supports_masking); Softmax also applies it, as Keras does:
the mask must broadcast against the input from the right (an attention-style mask
over the softmax axis), masked positions get probability 0.
"""

import numbers
import warnings

import numpy as np

from .. import initializers as _inits
from ..registry import register
from .base import Layer, _check_none

__all__ = ["LeakyReLU", "PReLU", "ReLU", "ELU", "Softmax"]


def _real(value, name, minimum=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or (
            minimum is not None and value < minimum):
        want = "a finite number" + (f" >= {minimum}" if minimum is not None else "")
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {want}"
                         f"{' or None' if allow_none else ''}, got {value!r}.")
    return float(value)


class _Elementwise(Layer):
    """y = f(x) elementwise; _fwd keeps x for the derivative."""

    supports_masking = True

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        return [self._f(x)], [masks[0]], (x if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        return [self._df(douts[0], cache)]


@register("layers")
class LeakyReLU(_Elementwise):
    """x for x > 0, negative_slope·x otherwise (keras.layers.LeakyReLU; default slope 0.3).

    `alpha` (Keras 2's name) is accepted with Keras 3's deprecation warning.
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _real(negative_slope, "negative_slope", minimum=0.0)

    def _f(self, x):
        return np.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def _df(self, dy, x):
        return np.where(x > 0, dy, dy * dy.dtype.type(self.negative_slope))

    def get_config(self):
        cfg = super().get_config()
        cfg["negative_slope"] = self.negative_slope
        return cfg


@register("layers")
class ReLU(_Elementwise):
    """Keras's relu(x, negative_slope, max_value, threshold) as a layer (keras.layers.ReLU):

        y = min(x, max_value)                        for x > threshold
        y = negative_slope · (x - threshold)         otherwise

    (for threshold > 0 the values between 0 and the threshold become the negative part, as
    in Keras: where(x > threshold, x, 0) - negative_slope·relu(threshold - x)).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _real(max_value, "max_value", minimum=0.0, allow_none=True)
        self.negative_slope = _real(negative_slope, "negative_slope", minimum=0.0)
        self.threshold = _real(threshold, "threshold", minimum=0.0)

    def _f(self, x):
        t = x.dtype.type
        y = np.where(x > self.threshold, x, t(0))
        if self.max_value is not None:
            np.minimum(y, t(self.max_value), out=y)
        if self.negative_slope:
            y -= t(self.negative_slope) * np.maximum(t(self.threshold) - x, t(0))
        return y

    def _df(self, dy, x):
        t = x.dtype.type
        g = x > self.threshold
        if self.max_value is not None:
            g &= x < self.max_value
        d = np.where(g, dy, t(0))
        if self.negative_slope:
            d += np.where(x < self.threshold, dy * t(self.negative_slope), t(0))
        return d

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                    "threshold": self.threshold})
        return cfg


@register("layers")
class ELU(_Elementwise):
    """x for x > 0, alpha·(exp(x) - 1) otherwise (keras.layers.ELU)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _real(alpha, "alpha")

    def _f(self, x):
        t = x.dtype.type
        return np.where(x > 0, x, t(self.alpha) * np.expm1(np.minimum(x, t(0))))

    def _df(self, dy, x):
        t = x.dtype.type
        return np.where(x > 0, dy, dy * t(self.alpha) * np.exp(np.minimum(x, t(0))))

    def get_config(self):
        cfg = super().get_config()
        cfg["alpha"] = self.alpha
        return cfg


@register("layers")
class PReLU(Layer):
    """Leaky ReLU with a learned slope per position: y = x for x > 0, alpha·x otherwise
    (keras.layers.PReLU).

    Args:
        alpha_initializer: default 'Zeros' (starts as a ReLU).
        shared_axes: axes (1 = the first non-batch axis) along which alpha is shared,
            e.g. [1] for one slope per feature of a (batch, steps, features) input.

    alpha has the input's shape without the batch axis, with 1 on the shared axes.
    """

    supports_masking = True

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        _check_none("PReLU", alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint)
        self.alpha_initializer = _inits.get(alpha_initializer, "alpha_initializer")
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 1 for a in axes):
                raise ValueError(
                    "Received an invalid value for argument `shared_axes`, expected positive axis numbers "
                    f"(1 = the first axis after the batch), got {shared_axes!r}.")
            self.shared_axes = [int(a) for a in axes]
        self.alpha = None

    def _param_shape(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or []:
            if a >= len(input_shape):
                raise ValueError(
                    f"Layer '{self.name}': shared axis {a} does not exist in an input of rank "
                    f"{len(input_shape)} (shape {tuple(input_shape)}).")
            shape[a - 1] = 1
        return shape

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        if len(s) < 2:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                             f"min_ndim=2, found ndim={len(s)}. Full shape received: {tuple(s)}")
        want = self._param_shape(s)
        if self.built:
            have = self.alpha.shape
            ok = len(have) == len(s) - 1 and all(
                h == 1 or d is None or d == h for h, d in zip(have, s[1:]))
            if not ok:
                raise ValueError(
                    f"Input 0 of layer '{self.name}' is incompatible with the layer: its alpha has shape "
                    f"{have}, which does not fit an input of shape {tuple(s)}.")
        elif any(d is None for d in want):
            raise ValueError(
                f"Layer '{self.name}': alpha needs every non-shared axis of the input to have a fixed size, "
                f"got input shape {tuple(s)} (share the free axes with `shared_axes`, e.g. [1] for time).")

    def build(self, input_shape):
        self.alpha = self.add_weight("alpha", tuple(self._param_shape(input_shape)), self.alpha_initializer)
        self.built = True

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        a = self.alpha.value
        return [np.where(x > 0, x, a * x)], [masks[0]], (x if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None:
            return [None]
        x = cache
        a = self.alpha.value
        neg = np.minimum(x, 0) * dy
        # Sum over the batch axis and the shared axes down to alpha's shape.
        axes = (0,) + tuple(a_ for a_ in range(1, x.ndim) if a.shape[a_ - 1] == 1 and x.shape[a_] != 1)
        da = neg.sum(axis=axes, keepdims=True).reshape(a.shape)
        ctx.add_grad(self.alpha, da)
        if not need[0]:
            return [None]
        return [np.where(x > 0, dy, a * dy)]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"alpha_initializer": _inits.serialize(self.alpha_initializer), "alpha_regularizer": None,
                    "alpha_constraint": None, "shared_axes": self.shared_axes})
        return cfg


def _large_negative(dtype):
    # Keras's _large_negative_number: -1e9 (float16 would use -3e4; we compute in float32/64).
    return np.asarray(-1e9, dtype=dtype)


@register("layers")
class Softmax(Layer):
    """Softmax over `axis` (an int, or a list of axes normalised together) (keras.layers.Softmax).

    Call arguments:
        mask: bool array broadcastable to the input from the right; masked positions
            are excluded and output 0 (a fully masked slice outputs all zeros).
    """

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
                raise ValueError(f"Received an invalid value for argument `axis`, expected an int or a list of ints, got {axis!r}.")
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise ValueError(f"Received an invalid value for argument `axis`, expected an int or a list of ints, got {axis!r}.")

    def _axes(self, ndim):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -ndim <= a < ndim:
                raise ValueError(f"Layer '{self.name}': axis {a} is out of range for an input of rank {ndim}.")
        return tuple(sorted({a % ndim for a in axes}))

    def _check_input_shapes(self, shapes):
        self._axes(len(shapes[0]))

    def _mask_for(self, mask, x):
        if mask is None:
            return None
        m = np.asarray(mask)
        ok = m.ndim <= x.ndim and all(md in (1, xd) for md, xd in zip(m.shape[::-1], x.shape[::-1]))
        if not ok:
            raise ValueError(
                f"Layer '{self.name}': the mask must broadcast against the input from the right (each mask axis "
                f"1 or the input's size); got mask shape {m.shape} for input shape {x.shape}. A (batch, steps) "
                "mask from Embedding(mask_zero=True)/Masking only fits when the softmax axis has `steps` "
                "entries, as in Keras.")
        return m if m.dtype == bool else m > 0.5

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        axes = self._axes(x.ndim)
        m = self._mask_for(masks[0], x)
        z = x if m is None else np.where(m, x, _large_negative(x.dtype))
        e = np.exp(z - z.max(axis=axes, keepdims=True))
        y = e / e.sum(axis=axes, keepdims=True)
        if m is not None:
            y = np.where(m, y, 0).astype(x.dtype, copy=False)
        return [y], [masks[0]], ((y, m, axes) if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        y, m, axes = cache
        if m is not None:
            dy = np.where(m, dy, 0)
        dz = y * (dy - (dy * y).sum(axis=axes, keepdims=True))
        if m is not None:
            dz = np.where(m, dz, 0)
        return [dz.astype(y.dtype, copy=False)]

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg
