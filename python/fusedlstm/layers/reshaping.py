"""Steps rearranged, not computed: UpSampling1D, ZeroPadding1D, Cropping1D, Permute.

Each is one NumPy copy forward and its adjoint backward (repeat <-> sum of the
repeats, pad <-> crop, transpose <-> inverse transpose). None of them supports masks
in Keras 3: a mask arriving here is dropped, as Keras drops it.
"""

import numbers

import numpy as np

from ..registry import register
from .base import Layer
from .spatial import check_ndim, standardize_data_format, standardize_tuple

__all__ = ["UpSampling1D", "ZeroPadding1D", "Cropping1D", "Permute"]


@register("layers")
class UpSampling1D(Layer):
    """Repeats each step `size` times: (B, L, C) -> (B, L·size, C) (keras.layers.UpSampling1D)."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
            raise ValueError(f"Received an invalid value for argument `size`, expected a positive integer, got {size!r}.")
        self.size = int(size)

    def _check_input_shapes(self, shapes):
        check_ndim(self, shapes[0], ndim=3)

    def compute_output_shape(self, input_shape):
        L = input_shape[1]
        return (input_shape[0], None if L is None else L * self.size, input_shape[2])

    def _fwd(self, inputs, masks, training, ctx):
        return [np.repeat(inputs[0], self.size, axis=1)], [None], None

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        B, Ls, C = dy.shape
        return [dy.reshape(B, Ls // self.size, self.size, C).sum(axis=2)]

    def get_config(self):
        cfg = super().get_config()
        cfg["size"] = self.size
        return cfg


class _StepsEdit(Layer):
    """A (left, right) number of steps added or removed on the steps axis."""

    def _steps_axis(self):
        return 1

    def _check_input_shapes(self, shapes):
        check_ndim(self, shapes[0], ndim=3)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        ax = self._steps_axis()
        if out[ax] is not None:
            out[ax] = out[ax] + self._delta()
        return tuple(out)


@register("layers")
class ZeroPadding1D(_StepsEdit):
    """Adds zero steps at the start and end of the steps axis (keras.layers.ZeroPadding1D).

    Args:
        padding: int (both sides) or (left, right).
        data_format: 'channels_last' (default, steps on axis 1) or 'channels_first' (axis 2).
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)
        self.data_format = standardize_data_format(data_format)

    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def _delta(self):
        return self.padding[0] + self.padding[1]

    def _fwd(self, inputs, masks, training, ctx):
        pads = [(0, 0)] * 3
        pads[self._steps_axis()] = self.padding
        return [np.pad(inputs[0], pads)], [None], None

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        a, b = self.padding
        idx = [slice(None)] * 3
        idx[self._steps_axis()] = slice(a, dy.shape[self._steps_axis()] - b)
        return [np.ascontiguousarray(dy[tuple(idx)])]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"padding": self.padding, "data_format": self.data_format})
        return cfg


@register("layers")
class Cropping1D(_StepsEdit):
    """Removes steps from the start and end of the steps axis (keras.layers.Cropping1D).

    Args:
        cropping: int (both sides) or (start, end); the input must keep at least one step.
    """

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)

    def _delta(self):
        return -(self.cropping[0] + self.cropping[1])

    def _check_input_shapes(self, shapes):
        super()._check_input_shapes(shapes)
        L = shapes[0][1]
        if L is not None and L + self._delta() <= 0:
            raise ValueError(
                f"Layer '{self.name}': `cropping`={self.cropping} must remove fewer steps than the input has; "
                f"got an input of shape {tuple(shapes[0])}.")

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        self._check_input_shapes([x.shape])
        a, b = self.cropping
        return [np.ascontiguousarray(x[:, a:x.shape[1] - b])], [None], (x.shape if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        dx = np.zeros(cache, dtype=dy.dtype)
        dx[:, self.cropping[0]:self.cropping[0] + dy.shape[1]] = dy
        return [dx]

    def get_config(self):
        cfg = super().get_config()
        cfg["cropping"] = self.cropping
        return cfg


@register("layers")
class Permute(Layer):
    """Permutes the non-batch axes: dims=(2, 1) swaps steps and features (keras.layers.Permute)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(dims, (tuple, list)) and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims)
        if not ok or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Received an invalid value for argument `dims`, expected a permutation of 1..n (the "
                f"non-batch axes, e.g. (2, 1)), got {dims!r}.")
        self.dims = tuple(int(d) for d in dims)

    def _check_input_shapes(self, shapes):
        check_ndim(self, shapes[0], ndim=len(self.dims) + 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def _fwd(self, inputs, masks, training, ctx):
        return [np.ascontiguousarray(np.transpose(inputs[0], (0,) + self.dims))], [None], None

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        return [np.ascontiguousarray(np.transpose(dy, np.argsort((0,) + self.dims)))]

    def get_config(self):
        cfg = super().get_config()
        cfg["dims"] = self.dims
        return cfg
