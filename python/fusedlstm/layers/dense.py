"""keras.layers.Dense on 2-D or N-D input: one GEMM over all leading rows.

A (B, T, D) input is viewed as (B·T, D) rows, so Dense after an LSTM with
return_sequences (and TimeDistributed(Dense)) is a single `_core.matmul`, forward
and backward; the weight gradient GEMM writes straight into the model's flat
gradient buffer. When a softmax Dense feeds a cross-entropy loss, training bypasses
`_fwd`/`_bwd` here and calls the fused `_core.dense_softmax_xent` instead
(models/training.py).

Under a mixed_bfloat16 policy the three products take precision='bfloat16' (bfloat16
operands, float32 sums); the bias, the activation and the output stay float32.
"""

import numbers

import numpy as np

from .. import _core
from .. import activations as _acts
from .. import initializers as _inits
from ..registry import register
from .base import Layer, _check_none


@register("layers")
class Dense(Layer):
    """Densely-connected layer: activation(inputs · kernel + bias).

    Args:
        units: positive int, output size.
        activation: name or None (linear).
        use_bias, kernel_initializer ('glorot_uniform'), bias_initializer ('zeros').
        kernel_regularizer, bias_regularizer, activity_regularizer: penalties added to the
            training loss (fusedlstm.regularizers).
        kernel_constraint, bias_constraint: applied after each update (fusedlstm.constraints).

    >>> Dense(3)(np.ones((2, 4), "float32")).shape
    (2, 3)
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError(
                "Received an invalid value for argument `units`, expected a positive integer, "
                f"got {units!r}.")
        _check_none("Dense", lora_rank=lora_rank, lora_alpha=lora_alpha)
        self._weight_options(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                             kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.units = int(units)
        self.activation = _acts.get(activation)
        self._act_grad = _acts.gradient(self.activation)
        self._linear = self.activation is _acts.linear
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _inits.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _inits.get(bias_initializer, "bias_initializer")
        self.kernel = self.bias = None

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        if len(s) < 2:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"min_ndim=2, found ndim={len(s)}. Full shape received: {tuple(s)}")
        if self.built and s[-1] is not None and s[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"axis -1 of input shape to have value {self.kernel.shape[0]}, but received input "
                f"with shape {tuple(s)}")

    def build(self, input_shape):
        d = input_shape[-1]
        if d is None:
            raise ValueError(f"Layer '{self.name}': the last dimension of the inputs must be defined, got {tuple(input_shape)}.")
        self.kernel = self.add_weight("kernel", (d, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        z = _core.matmul(x2, self.kernel.value, precision=self._precision)
        if self.use_bias:
            z += self.bias.value
        y = z if self._linear else self.activation(z)
        cache = (x2, z, y, lead) if ctx.want_grads else None
        return [y.reshape(lead + (self.units,))], [masks[0]], cache

    def _bwd(self, cache, douts, need, ctx):
        x2, z, y, lead = cache
        dy = douts[0]
        if dy is None:
            return [None]
        dz = dy.reshape(-1, self.units)
        if not self._linear:
            dz = self._act_grad(dz, z, y)
        dz = np.ascontiguousarray(dz, dtype=z.dtype)
        self._weight_grads(x2, dz, ctx)
        if not need[0]:
            return [None]
        dx = _core.matmul(dz, self.kernel.value, trans_b=True, precision=self._precision)
        return [dx.reshape(lead + (x2.shape[1],))]

    def _weight_grads(self, x2, dz, ctx):
        out, acc = ctx.grad_out(self.kernel)
        if out is not None:
            _core.matmul(x2, dz, trans_a=True, out=out, accumulate=acc, precision=self._precision)
        if self.use_bias:
            ctx.add_grad(self.bias, dz.sum(axis=0))

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": _acts.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _inits.serialize(self.kernel_initializer),
            "bias_initializer": _inits.serialize(self.bias_initializer),
        })
        return cfg
