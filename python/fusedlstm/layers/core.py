"""Small layers: Input/InputLayer, Dropout, SpatialDropout1D, Activation, Masking,
RepeatVector, Flatten, Reshape. Each is one vectorised NumPy pass each way."""

import math
import numbers

import numpy as np

from .. import activations as _acts
from .. import utils
from ..registry import register
from .base import KerasTensor, Layer, Node, unique_name
from .lstm import dropout_mask


@register("layers")
class InputLayer(Layer):
    """The source of a functional graph (keras.layers.InputLayer).

    Args:
        shape: shape without the batch axis (None entries are free, e.g. (None, 10)
            accepts any number of time steps).
        batch_size: fixed batch size (needed by stateful RNNs).
        dtype: 'float32' (default) or an integer dtype for token ids.
        batch_shape: full shape including the batch axis (instead of shape/batch_size).
        input_shape: Keras 2 spelling of `shape`.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to InputLayer: {kwargs}")
        if sparse:
            raise NotImplementedError("InputLayer: `sparse=True` is not supported.")
        if input_tensor is not None or optional:
            raise NotImplementedError("InputLayer: `input_tensor` and `optional` are not supported.")
        if shape is None:
            shape = input_shape
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
            batch_shape = tuple(batch_shape)
        else:
            if shape is None:
                raise ValueError("You must pass a `shape` argument.")
            if isinstance(shape, numbers.Integral):
                shape = (shape,)
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
                raise TypeError(
                    "Received an invalid value for argument `shape`, expected a tuple of non-negative "
                    f"integers or None, got {shape!r}.")
            batch_shape = (batch_size,) + tuple(shape)
        for d in batch_shape:
            if d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0):
                raise ValueError(f"Received an invalid value for argument `shape`, expected non-negative integers or None, got {batch_shape}.")
        super().__init__(name=name or unique_name("input_layer"))
        try:
            dt = "float32" if dtype is None else "string" if dtype in ("string", "str", str) else str(
                np.dtype(getattr(dtype, "name", dtype)))
        except TypeError:
            raise TypeError(
                "Received an invalid value for argument `dtype`, expected a dtype name such as 'float32' "
                f"or 'int32', got {dtype!r}.") from None
        if dtype in ("string", "str") or dt in ("<U0", "object"):
            dt = "string"  # text for a TextVectorization layer (Keras's tf.string)
        elif not (dt in ("float32", "float64") or np.issubdtype(np.dtype(dt), np.integer)):
            raise NotImplementedError(f"InputLayer: dtype {dt!r} is not supported (float32/float64 or an integer type).")
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.input_dtype = dt
        self.built = True
        node = Node(self, [], None)
        self.output = KerasTensor(self.batch_shape, dt, history=(self, node, 0), name=self.name)
        node.outputs = [self.output]
        self._inbound_nodes.append(node)
        self._batch_input_shape = self.batch_shape

    @property
    def output(self):
        return self._output

    @output.setter
    def output(self, t):
        self._output = t

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.input_dtype, "name": self.name}

    def _fwd(self, inputs, masks, training, ctx):
        return [inputs[0]], [None], None


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic input tensor (keras.Input)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, input_tensor=tensor, optional=optional, name=name).output


@register("layers")
class Dropout(Layer):
    """Inverted dropout in training (keras.layers.Dropout); identity in inference.

    noise_shape broadcasts the mask, e.g. (None, 1, D) drops whole feature channels.
    """

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a float value between 0 "
                f"and 1. Received: rate={rate}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = utils.seeded_generator(seed)

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Layer '{self.name}': noise_shape {self.noise_shape} does not match the input rank {len(shape)}.")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        if not training or self.rate == 0:
            return [x], [masks[0]], None
        if self.rate == 1:
            return [np.zeros_like(x)], [masks[0]], np.zeros((1,) * x.ndim, x.dtype)
        keep = dropout_mask(ctx.generator(self._rng), self._mask_shape(x.shape), self.rate, x.dtype)
        return [x * keep], [masks[0]], keep

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        return [dy if cache is None else dy * cache]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                    "seed": self.seed})
        return cfg


@register("layers")
class SpatialDropout1D(Dropout):
    """Drops whole feature channels of a (batch, time, features) input."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)

    def _mask_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"Layer '{self.name}' expects 3-D input, got shape {shape}.")
        return (shape[0], 1, shape[2])

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("noise_shape")
        return cfg


@register("layers")
class Activation(Layer):
    """Applies an activation function (keras.layers.Activation)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _acts.get(activation)
        self._grad = _acts.gradient(self.activation)

    def _fwd(self, inputs, masks, training, ctx):
        z = inputs[0]
        y = self.activation(z)
        return [y], [masks[0]], ((z, y) if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        z, y = cache
        return [self._grad(douts[0], z, y)]

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = _acts.serialize(self.activation)
        return cfg


@register("layers")
class Masking(Layer):
    """Masks time steps whose features all equal mask_value (keras.layers.Masking)."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        keep = np.any(x != self.mask_value, axis=-1)
        y = x * keep[..., None].astype(x.dtype)
        return [y], [keep], (keep if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        return [douts[0] * cache[..., None].astype(douts[0].dtype)]

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg


@register("layers")
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features) (keras.layers.RepeatVector).

    Before an LSTM the repeat is never materialised: the model projects the
    (batch, features) rows once and the kernel reads them as a per-batch table.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
            raise ValueError(f"Received an invalid value for argument `n`, expected a positive integer, got {n!r}.")
        self.n = int(n)

    def _check_input_shapes(self, shapes):
        if len(shapes[0]) != 2:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected ndim=2, found ndim={len(shapes[0])}. Full shape received: {tuple(shapes[0])}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        return [np.repeat(x[:, None, :], self.n, axis=1)], [None], None

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        return [douts[0].sum(axis=1)]

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


@register("layers")
class Flatten(Layer):
    """(batch, ...) -> (batch, prod(...)) (keras.layers.Flatten)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Flatten: data_format={data_format!r} is not supported.")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else int(math.prod(rest)))

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        return [x.reshape(x.shape[0], -1)], [None], (x.shape if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        return [douts[0].reshape(cache)]


@register("layers")
class Reshape(Layer):
    """(batch, ...) -> (batch,) + target_shape; one entry may be -1 (keras.layers.Reshape)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(target_shape, (tuple, list)) and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and (d > 0 or d == -1) for d in target_shape)
        if not ok:
            raise ValueError(
                "Received an invalid value for argument `target_shape`, expected a tuple of integers "
                f"(each positive, or -1 once), got {target_shape!r}.")
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(f"Reshape: at most one -1 in target_shape, got {self.target_shape}.")

    def compute_output_shape(self, input_shape):
        if -1 not in self.target_shape:
            return (input_shape[0],) + self.target_shape
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return (input_shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        return (input_shape[0],) + tuple(math.prod(rest) // known if d == -1 else d for d in self.target_shape)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        try:
            y = x.reshape((x.shape[0],) + self.target_shape)
        except ValueError:
            raise ValueError(f"Layer '{self.name}': cannot reshape an input of shape {x.shape} to (batch,) + {self.target_shape}.") from None
        return [y], [None], (x.shape if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        if douts[0] is None or not need[0]:
            return [None]
        return [douts[0].reshape(cache)]

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg
