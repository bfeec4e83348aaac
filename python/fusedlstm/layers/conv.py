"""keras.layers.Conv1D on the C++ convolution kernels (im2col + the library's GEMM).

    y[b, t, f] = act(bias[f] + Σ_{k, c} xp[b, t·strides + k·dilation_rate, g·C/groups + c]·kernel[k, c, f])

with g = f // (filters/groups) and xp the input zero-padded for 'same' or 'causal'
(csrc/conv1d.cpp; `_core.conv1d_forward` / `conv1d_backward`, float32 and float64).
The kernel keeps Keras's layout (kernel_size, channels/groups, filters); its weight
gradient is written straight into the model's flat gradient buffer. The activation
runs in NumPy over the output, as Dense's does. channels_first inputs are transposed
to channels_last and back. Like every Keras 3 convolution, Conv1D drops a mask.
"""

import numbers

import numpy as np

from .. import _core
from .. import activations as _acts
from .. import initializers as _inits
from ..registry import register
from .base import Layer, _check_none
from .spatial import (check_ndim, from_channels_last, output_length, standardize_data_format, standardize_padding,
                      standardize_tuple, to_channels_last)

__all__ = ["Conv1D"]


@register("layers", aliases=("Convolution1D",))
class Conv1D(Layer):
    """1-D convolution over the steps axis (keras.layers.Conv1D, Keras 3 arguments and defaults).

    Args:
        filters: positive int, output channels (divisible by groups).
        kernel_size: int or 1-tuple, window length.
        strides: int or 1-tuple (strides > 1 excludes dilation_rate > 1, as in Keras).
        padding: 'valid', 'same' or 'causal' (case-insensitive).
        data_format: 'channels_last' (default) or 'channels_first'.
        dilation_rate: int or 1-tuple.
        groups: positive int dividing the input channels and filters.
        activation: name or None (linear).
        use_bias, kernel_initializer ('glorot_uniform'), bias_initializer ('zeros').
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
            bias_constraint: as Dense's (fusedlstm.regularizers, fusedlstm.constraints).

    >>> Conv1D(4, 3)(np.ones((2, 10, 5), "float32")).shape
    (2, 8, 4)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("filters", filters), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"Received an invalid value for argument `{arg}`, expected a positive integer, got {v!r}.")
        if filters % groups:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of groups. Received: "
                f"groups={groups}, filters={filters}.")
        _check_none("Conv1D", lora_rank=lora_rank, lora_alpha=lora_alpha)
        self._weight_options(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                             kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = standardize_tuple(kernel_size, 1, "kernel_size")
        self.strides = standardize_tuple(strides, 1, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, 1, "dilation_rate")
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = standardize_padding(padding, allow_causal=True)
        self.data_format = standardize_data_format(data_format)
        self.activation = _acts.get(activation)
        self._act_grad = _acts.gradient(self.activation)
        self._linear = self.activation is _acts.linear
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _inits.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _inits.get(bias_initializer, "bias_initializer")
        self.kernel = self.bias = None

    def _axes(self):
        """(steps axis, channels axis)."""
        return (1, 2) if self.data_format == "channels_last" else (2, 1)

    def _span(self):
        return self.dilation_rate[0] * (self.kernel_size[0] - 1) + 1

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        check_ndim(self, s, ndim=3)
        t_ax, c_ax = self._axes()
        c = s[c_ax]
        if self.built and c is not None and c != self.kernel.shape[1] * self.groups:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected axis {c_ax} of input "
                f"shape to have value {self.kernel.shape[1] * self.groups}, but received input with shape {tuple(s)}")
        n = output_length(s[t_ax], self._span(), self.strides[0], self.padding)
        if n is not None and n <= 0:
            raise ValueError(
                f"Layer '{self.name}': an input of {s[t_ax]} steps is shorter than the kernel's span of "
                f"{self._span()} steps (kernel_size={self.kernel_size[0]}, dilation_rate={self.dilation_rate[0]}) "
                f"with padding='valid' (input shape {tuple(s)}).")

    def build(self, input_shape):
        c = input_shape[self._axes()[1]]
        if c is None:
            raise ValueError(f"Layer '{self.name}': the channels axis of the input must be defined, got "
                             f"{tuple(input_shape)}.")
        if c % self.groups:
            raise ValueError(
                "The number of input channels must be evenly divisible by the number of groups. Received "
                f"groups={self.groups}, but the input has {c} channels (full input shape is {tuple(input_shape)}).")
        self.kernel = self.add_weight("kernel", (self.kernel_size[0], c // self.groups, self.filters),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        t_ax, c_ax = self._axes()
        out = list(input_shape)
        out[t_ax] = output_length(input_shape[t_ax], self._span(), self.strides[0], self.padding)
        out[c_ax] = self.filters
        return tuple(out)

    def _options(self):
        return dict(strides=self.strides[0], padding=self.padding, dilation_rate=self.dilation_rate[0],
                    groups=self.groups)

    def _fwd(self, inputs, masks, training, ctx):
        x = to_channels_last(inputs[0], self.data_format)
        self._check_input_shapes([x.shape if self.data_format == "channels_last" else inputs[0].shape])
        z = _core.conv1d_forward(x, self.kernel.value, self.bias.value if self.use_bias else None,
                                 **self._options())
        y = z if self._linear else self.activation(z)
        cache = (x, z, y) if ctx.want_grads else None
        return [from_channels_last(y, self.data_format)], [None], cache

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None:
            return [None]
        x, z, y = cache
        dz = to_channels_last(dy, self.data_format)
        if not self._linear:
            dz = self._act_grad(dz, z, y)
        dz = np.ascontiguousarray(dz, dtype=z.dtype)
        dW_out, acc = ctx.grad_out(self.kernel)
        db_out, acc_b = ctx.grad_out(self.bias) if self.use_bias else (None, False)
        # The kernel's one `accumulate` flag covers both buffers; a bias whose flag differs
        # (only when the two weights were made trainable separately) is added here.
        together = db_out is not None and dW_out is not None and acc_b == acc
        dx, _, db = _core.conv1d_backward(
            dz, x, self.kernel.value, use_bias=self.use_bias, need_dx=bool(need[0]), dW_out=dW_out,
            db_out=db_out if together else None, accumulate=acc, **self._options())
        if db_out is not None and not together:
            if acc_b:
                db_out += db
            else:
                db_out[...] = db
        return [None if dx is None else from_channels_last(dx, self.data_format)]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": _acts.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _inits.serialize(self.kernel_initializer),
            "bias_initializer": _inits.serialize(self.bias_initializer),
        })
        return cfg
