"""1-D pooling: MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D.

A pooling window of k steps moved by s is k strided slices of the (padded) input,
so forward and backward are k vectorised passes, never a loop over windows:

    max:      y[t] = max_j xp[t·s + j]          dx[t·s + j*] += dy[t]   (j* = first argmax)
    average:  y[t] = Σ_j xp[t·s + j] / n_t      dx[t·s + j] += dy[t] / n_t

with xp the input padded for 'same' (by -inf for max, zeros for average) and n_t the
number of real (unpadded) steps in window t: padding never counts in an average, as
in TensorFlow, JAX and Keras's own definition. (Keras 3.15's torch backend instead
repeats the edge steps when the 'same' padding is uneven, a known difference fixed in
later Keras: keras-team/keras#23233. Even padding agrees with it exactly.)

Masks (as Keras 3): MaxPooling1D, AveragePooling1D and GlobalMaxPooling1D do not
support masking (the mask is dropped; global max pooling takes masked steps too);
GlobalAveragePooling1D averages the unmasked steps only and outputs no mask. A row
whose steps are all masked averages to 0 here (Keras divides 0 by 0: NaN).
"""

import numpy as np

from ..registry import register
from .base import Layer
from .spatial import (check_ndim, from_channels_last, output_length, same_padding, standardize_data_format,
                      standardize_padding, standardize_tuple, to_channels_last)

__all__ = ["MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D"]


class _Pooling1D(Layer):
    """Shared by MaxPooling1D and AveragePooling1D: arguments, shapes, the window slices."""

    _pad_value = 0.0

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = standardize_tuple(pool_size, 1, "pool_size")
        self.strides = self.pool_size if strides is None else standardize_tuple(strides, 1, "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)

    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        check_ndim(self, s, ndim=3)
        n = output_length(s[self._steps_axis()], self.pool_size[0], self.strides[0], self.padding)
        if n is not None and n <= 0:
            raise ValueError(
                f"Layer '{self.name}': an input of {s[self._steps_axis()]} steps is shorter than "
                f"pool_size={self.pool_size[0]} with padding='valid' (input shape {tuple(s)}).")

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        ax = self._steps_axis()
        out[ax] = output_length(input_shape[ax], self.pool_size[0], self.strides[0], self.padding)
        return tuple(out)

    def _windows(self, x):
        """(padded input, number of windows, left padding) for a channels_last x (B, L, C)."""
        k, s = self.pool_size[0], self.strides[0]
        L = x.shape[1]
        n = output_length(L, k, s, self.padding)
        if n <= 0:
            raise ValueError(
                f"Layer '{self.name}': an input of {L} steps is shorter than pool_size={k} with "
                f"padding='valid' (input shape {x.shape}).")
        if self.padding == "valid":
            return x, n, 0
        left, right = same_padding(L, k, s)
        if left == right == 0:
            return x, n, 0
        xp = np.full((x.shape[0], L + left + right, x.shape[2]), self._pad_value, dtype=x.dtype)
        xp[:, left:left + L] = x
        return xp, n, left

    def _slice(self, j, n):
        s = self.strides[0]
        return slice(j, j + s * (n - 1) + 1, s)

    def _fwd(self, inputs, masks, training, ctx):
        x = to_channels_last(inputs[0], self.data_format)
        xp, n, left = self._windows(x)
        y, aux = self._pool(xp, n, left, x.shape[1])
        cache = (xp.shape, x.shape, n, left, aux) if ctx.want_grads else None
        return [from_channels_last(y, self.data_format)], [None], cache

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        pshape, xshape, n, left, aux = cache
        dy = to_channels_last(douts[0], self.data_format)
        dxp = np.zeros(pshape, dtype=dy.dtype)
        self._unpool(dxp, dy, n, aux)
        dx = dxp[:, left:left + xshape[1]]
        return [from_channels_last(np.ascontiguousarray(dx), self.data_format)]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                    "data_format": self.data_format})
        return cfg


@register("layers", aliases=("MaxPool1D",))
class MaxPooling1D(_Pooling1D):
    """Max over windows of `pool_size` steps moved by `strides` (keras.layers.MaxPooling1D).

    Args:
        pool_size: window length (default 2).
        strides: step between windows (None: pool_size).
        padding: 'valid' or 'same' (case-insensitive).
        data_format: 'channels_last' (default) or 'channels_first'.

    >>> MaxPooling1D()(np.arange(8, dtype="float32").reshape(1, 4, 2)).tolist()
    [[[2.0, 3.0], [6.0, 7.0]]]
    """

    _pad_value = -np.inf

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def _pool(self, xp, n, left, L):
        y = xp[:, self._slice(0, n)].copy()
        arg = np.zeros(y.shape, dtype=np.int32)
        for j in range(1, self.pool_size[0]):
            cand = xp[:, self._slice(j, n)]
            better = cand > y  # strict: the first maximum wins, as torch's max_pool1d picks it
            np.copyto(y, cand, where=better)
            arg[better] = j
        return y, arg

    def _unpool(self, dxp, dy, n, arg):
        for j in range(self.pool_size[0]):
            dxp[:, self._slice(j, n)] += np.where(arg == j, dy, 0)


@register("layers", aliases=("AvgPool1D",))
class AveragePooling1D(_Pooling1D):
    """Mean over windows of `pool_size` steps moved by `strides` (keras.layers.AveragePooling1D).

    Args:
        pool_size: window length (required, as in Keras 3).
        strides: step between windows (None: pool_size).
        padding: 'valid' or 'same'; 'same' windows average only their real steps.
        data_format: 'channels_last' (default) or 'channels_first'.

    >>> AveragePooling1D(2)(np.arange(8, dtype="float32").reshape(1, 4, 2)).tolist()
    [[[1.0, 2.0], [5.0, 6.0]]]
    """

    def _counts(self, n, left, L, dtype):
        """(1, n, 1): real steps in each window."""
        k, s = self.pool_size[0], self.strides[0]
        start = np.arange(n) * s - left
        counts = np.minimum(start + k, L) - np.maximum(start, 0)
        return counts.astype(dtype).reshape(1, n, 1)

    def _pool(self, xp, n, left, L):
        y = xp[:, self._slice(0, n)].copy()
        for j in range(1, self.pool_size[0]):
            y += xp[:, self._slice(j, n)]
        counts = self._counts(n, left, L, xp.dtype)
        y /= counts
        return y, counts

    def _unpool(self, dxp, dy, n, counts):
        g = dy / counts
        for j in range(self.pool_size[0]):
            dxp[:, self._slice(j, n)] += g


class _GlobalPooling1D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"Received an invalid value for argument `keepdims`, expected a bool, got {keepdims!r}.")
        self.keepdims = bool(keepdims)

    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def _check_input_shapes(self, shapes):
        check_ndim(self, shapes[0], ndim=3)

    def compute_output_shape(self, input_shape):
        s = list(input_shape)
        ax = self._steps_axis()
        if self.keepdims:
            s[ax] = 1
            return tuple(s)
        del s[ax]
        return tuple(s)

    def _restore(self, d, xshape):
        """An output gradient as (B, 1, C) / (B, C, 1), broadcastable against the input."""
        return d.reshape(xshape[:self._steps_axis()] + (1,) + xshape[self._steps_axis() + 1:])

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return cfg


@register("layers", aliases=("GlobalMaxPool1D",))
class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over all steps (keras.layers.GlobalMaxPooling1D); a mask is ignored, as in Keras.

    The gradient of a maximum reached at several steps is shared equally between them
    (the gradient of Keras's max reduction on every backend).
    """

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        ax = self._steps_axis()
        y = x.max(axis=ax, keepdims=True)
        cache = (x, y) if ctx.want_grads else None
        return [y if self.keepdims else np.squeeze(y, axis=ax)], [None], cache

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        x, y = cache
        ax = self._steps_axis()
        hit = x == y
        share = self._restore(douts[0], x.shape) / hit.sum(axis=ax, keepdims=True).astype(x.dtype)
        return [np.where(hit, share, 0).astype(x.dtype, copy=False)]


@register("layers", aliases=("GlobalAvgPool1D",))
class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the (unmasked) steps (keras.layers.GlobalAveragePooling1D).

    Args:
        data_format: 'channels_last' (default) or 'channels_first'.
        keepdims: keep the steps axis with length 1.

    Call arguments:
        mask: (batch, steps) bool; masked steps are left out of the mean.
    """

    supports_masking = True

    def _fwd(self, inputs, masks, training, ctx):
        x, mask = inputs[0], masks[0]
        ax = self._steps_axis()
        if mask is None:
            y = x.mean(axis=ax, keepdims=True)
            w = None
        else:
            if mask.shape != (x.shape[0], x.shape[ax]):
                raise ValueError(
                    f"Layer '{self.name}': the mask has shape {mask.shape}, expected (batch, steps) = "
                    f"{(x.shape[0], x.shape[ax])} for an input of shape {x.shape}.")
            m = self._restore_mask(mask, x.dtype)
            count = m.sum(axis=ax, keepdims=True)
            w = m / np.maximum(count, 1)  # an all-masked row averages to 0 (see the module doc)
            y = (x * w).sum(axis=ax, keepdims=True)
        cache = (x.shape, w) if ctx.want_grads else None
        return [y if self.keepdims else np.squeeze(y, axis=ax)], [None], cache

    def _restore_mask(self, mask, dtype):
        m = mask.astype(dtype)
        return m[:, :, None] if self.data_format == "channels_last" else m[:, None, :]

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        xshape, w = cache
        d = self._restore(douts[0], xshape)
        if w is None:
            n = xshape[self._steps_axis()]
            return [np.broadcast_to(d / n, xshape).astype(d.dtype)]
        return [d * w]

    def _out_mask(self, masks):
        return None
