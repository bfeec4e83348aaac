"""keras.layers.Embedding: a row lookup, and the id validation every ids path shares.

Feeding an LSTM, an Embedding is normally not run on its own: the model fuses the
pair so that the LSTM kernel reads rows of table = E·W (V, 4H) by id (see
models/fusion.py). Standalone, forward is a gather and backward a scatter-add.
"""

import numbers

import numpy as np

from .. import initializers as _inits
from ..registry import register
from .base import Layer, _check_none


def as_ids(x, vocab, layer_name):
    """Token ids as an int array, checked to be integral and in [0, vocab).

    Ints pass through; integral floats are converted (Keras casts). Non-integral
    floats and out-of-range ids raise ValueError naming the first offending position.
    """
    a = np.asarray(x)
    kind = a.dtype.kind  # (not np.issubdtype: this runs on every call, and a streaming step is microseconds)
    if kind not in "iuf":
        raise TypeError(f"Layer '{layer_name}' expects integer token ids, got an array of dtype {a.dtype}.")
    if kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a)) if a.size else np.zeros(a.shape, bool)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"Layer '{layer_name}' expects integer token ids, got the non-integral value "
                f"{float(a[pos])!r} at position {pos}.")
        a = a.astype(np.int32 if vocab < 2**31 else np.int64)
    elif a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)
    if a.size:
        # The ufuncs' reduce directly: a.min()/a.max() add two Python layers each.
        lo, hi = np.minimum.reduce(a, axis=None), np.maximum.reduce(a, axis=None)
        if lo < 0 or hi >= vocab:
            pos = tuple(int(i) for i in np.argwhere((a < 0) | (a >= vocab))[0])
            raise ValueError(
                f"Layer '{layer_name}' received token id {int(a[pos])} at position {pos}; ids must "
                f"lie in [0, input_dim={vocab}).")
    return np.ascontiguousarray(a)


@register("layers")
class Embedding(Layer):
    """Turns token ids into dense vectors (keras.layers.Embedding).

    Args:
        input_dim: vocabulary size V (ids in [0, V)).
        output_dim: vector size D.
        embeddings_initializer: default 'uniform' (U(-0.05, 0.05)).
        mask_zero: id 0 is padding: the output mask is ids != 0.
        input_length: accepted (Keras 2); fixes the time length of the model input.
        weights: [matrix (V, D)] initial embeddings (Keras 2 / pretrained vectors).
        embeddings_regularizer, activity_regularizer, embeddings_constraint: as Keras
            (fusedlstm.regularizers, fusedlstm.constraints).

    >>> Embedding(10, 3)(np.array([[1, 2]])).shape
    (1, 2, 3)
    """

    _takes_ids = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 input_length=None, lora_rank=None, lora_alpha=None, sparse=False, **kwargs):
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(
                    f"Received an invalid value for argument `{arg}`, expected a positive integer, got {v!r}.")
        _check_none("Embedding", lora_rank=lora_rank, lora_alpha=lora_alpha)
        self._weight_options(embeddings_regularizer=embeddings_regularizer,
                             embeddings_constraint=embeddings_constraint)
        if sparse:
            raise NotImplementedError("Embedding: `sparse=True` is not supported.")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = _inits.get(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.input_length = input_length
        self.embeddings = None

    def build(self, input_shape=None):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _output_dtypes(self, dtypes):
        return [self.dtype]

    def ids(self, x):
        return as_ids(x, self.input_dim, self.name)

    def mask_of(self, ids):
        return (ids != 0) if self.mask_zero else None

    def _fwd(self, inputs, masks, training, ctx):
        return self._fwd_ids(self.ids(inputs[0]), ctx)

    def _fwd_ids(self, ids, ctx):
        """_fwd on ids already checked by `ids`."""
        y = np.take(self.embeddings.value, ids, axis=0)
        return [y], [self.mask_of(ids)], (ids if ctx.want_grads else None)

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None:
            return [None]
        out, acc = ctx.grad_out(self.embeddings)
        if out is not None:
            if not acc:
                out[...] = 0
            np.add.at(out, cache.reshape(-1), dy.reshape(-1, self.output_dim))
        return [None]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _inits.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
        })
        return cfg
