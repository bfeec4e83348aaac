"""Merge layers for the functional API: Concatenate, Add, Subtract, Multiply, Average.

Encoder-decoder notebooks use them to join the two halves of a bidirectional
encoder's states (Concatenate()([forward_h, backward_h])).
"""

import numbers

import numpy as np

from ..registry import register
from .base import Layer


class _Merge(Layer):
    supports_masking = True

    def _flatten_call(self, inputs, initial_state):
        if initial_state is not None:
            raise NotImplementedError(f"{type(self).__name__} does not take `initial_state`.")
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"A merge layer should be called on a list of at least 2 inputs. Got {inputs!r}")
        return list(inputs), 0

    def _build_from_shapes(self, shapes):
        self._check_shapes(shapes)
        self.built = True

    def _check_shapes(self, shapes):
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"Layer '{self.name}': inputs must have the same rank, got shapes {shapes}.")
        for axis in range(len(shapes[0])):
            dims = {s[axis] for s in shapes if s[axis] is not None}
            if axis > 0 and len(dims) > 1:
                raise ValueError(f"Layer '{self.name}': inputs must have the same shape, got {shapes}.")

    def _check_input_shapes(self, shapes):
        self._check_shapes(shapes)

    def _output_shapes(self, shapes):
        return [tuple(shapes[0])]

    def _out_masks(self, masks):
        ms = [m for m in masks if m is not None]
        if not ms:
            return None
        out = ms[0]
        for m in ms[1:]:
            out = out & m
        return out


@register("layers")
class Add(_Merge):
    def _fwd(self, inputs, masks, training, ctx):
        y = inputs[0].copy()
        for x in inputs[1:]:
            y += x
        return [y], [self._out_masks(masks)], len(inputs)

    def _bwd(self, cache, douts, need, ctx):
        d = douts[0]
        return [d if n else None for n in need]


@register("layers")
class Subtract(_Merge):
    def _flatten_call(self, inputs, initial_state):
        flat, n = super()._flatten_call(inputs, initial_state)
        if len(flat) != 2:
            raise ValueError("A `Subtract` layer should be called on exactly 2 inputs.")
        return flat, n

    def _fwd(self, inputs, masks, training, ctx):
        return [inputs[0] - inputs[1]], [self._out_masks(masks)], None

    def _bwd(self, cache, douts, need, ctx):
        d = douts[0]
        return [d if need[0] else None, (-d) if need[1] else None]


@register("layers")
class Multiply(_Merge):
    def _fwd(self, inputs, masks, training, ctx):
        y = inputs[0].copy()
        for x in inputs[1:]:
            y *= x
        return [y], [self._out_masks(masks)], (inputs if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        d = douts[0]
        out = []
        for k, n in enumerate(need):
            if not n:
                out.append(None)
                continue
            g = d
            for j, x in enumerate(cache):
                if j != k:
                    g = g * x
            out.append(g)
        return out


@register("layers")
class Average(_Merge):
    def _fwd(self, inputs, masks, training, ctx):
        y = inputs[0].copy()
        for x in inputs[1:]:
            y += x
        y /= len(inputs)
        return [y], [self._out_masks(masks)], len(inputs)

    def _bwd(self, cache, douts, need, ctx):
        d = douts[0] / cache
        return [d if n else None for n in need]


@register("layers")
class Concatenate(_Merge):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Received an invalid value for argument `axis`, expected an integer, got {axis!r}.")
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the "
                f"concatenation axis. Received: input_shape={shapes}")
        r = len(shapes[0])
        ax = self.axis % r
        for axis in range(1, r):
            if axis == ax:
                continue
            dims = {s[axis] for s in shapes if s[axis] is not None}
            if len(dims) > 1:
                raise ValueError(
                    "A `Concatenate` layer requires inputs with matching shapes except for the "
                    f"concatenation axis. Received: input_shape={shapes}")

    def _output_shapes(self, shapes):
        r = len(shapes[0])
        ax = self.axis % r
        out = list(shapes[0])
        sizes = [s[ax] for s in shapes]
        out[ax] = None if any(d is None for d in sizes) else sum(sizes)
        return [tuple(out)]

    def _fwd(self, inputs, masks, training, ctx):
        y = np.concatenate(inputs, axis=self.axis)
        ax = self.axis % inputs[0].ndim
        return [y], [self._out_masks(masks)], [x.shape[ax] for x in inputs]

    def _bwd(self, cache, douts, need, ctx):
        d = douts[0]
        splits = np.cumsum(cache)[:-1]
        parts = np.split(d, splits, axis=self.axis)
        return [np.ascontiguousarray(p) if n else None for p, n in zip(parts, need)]

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg
