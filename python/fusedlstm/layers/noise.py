"""Training-time noise: GaussianNoise, GaussianDropout, AlphaDropout (identity in inference).

They draw from the same streams as Dropout: the layer's own Generator when built
with `seed=`, otherwise the step's (fusedlstm.utils, seeded by set_random_seed), so
a seeded run is repeatable. Keras's random streams are not NumPy's: the noise itself
cannot match Keras sample for sample, only in distribution. Masks pass through.

    GaussianNoise:    y = x + n,                       n ~ N(0, stddev²)
    GaussianDropout:  y = x · n,                       n ~ N(1, rate / (1 - rate))
    AlphaDropout:     y = a·(x·k + α'·(1 - k)) + b,    k ~ Bernoulli(1 - rate),
                      α' = -1.7581 (SELU's negative saturation), a, b keeping mean and
                      variance (Klambauer et al. 2017, as keras.layers.AlphaDropout)
"""

import math
import numbers

import numpy as np

from .. import utils
from ..registry import register
from .base import Layer

__all__ = ["GaussianNoise", "GaussianDropout", "AlphaDropout"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _fraction(value, name, upper_open=False):
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        0 <= value < 1 if upper_open else 0 <= value <= 1)
    if bad:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float value between 0 and 1"
            f"{' (1 excluded: the noise would be infinite)' if upper_open else ''}. Received: {name}={value!r}")
    return float(value)


class _Noise(Layer):
    supports_masking = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._rng = utils.seeded_generator(seed)

    def _active(self):
        raise NotImplementedError

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        if not training or not self._active():
            return [x], [masks[0]], None
        y, cache = self._noisy(x, ctx.generator(self._rng))
        return [y], [masks[0]], cache

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None or not need[0]:
            return [None]
        return [dy if cache is None else dy * cache]


@register("layers")
class GaussianNoise(_Noise):
    """Adds N(0, stddev²) noise in training (keras.layers.GaussianNoise; stddev in [0, 1] as Keras)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _fraction(stddev, "stddev")

    def _active(self):
        return self.stddev > 0

    def _noisy(self, x, rng):
        n = rng.standard_normal(x.shape, dtype=np.float64) * self.stddev
        return x + n.astype(x.dtype), None  # d(x + n)/dx = 1

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"stddev": self.stddev, "seed": self.seed})
        return cfg


@register("layers")
class GaussianDropout(_Noise):
    """Multiplies by N(1, rate/(1-rate)) noise in training (keras.layers.GaussianDropout)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _fraction(rate, "rate", upper_open=True)

    def _active(self):
        return self.rate > 0

    def _noisy(self, x, rng):
        std = math.sqrt(self.rate / (1.0 - self.rate))
        n = (1.0 + std * rng.standard_normal(x.shape, dtype=np.float64)).astype(x.dtype)
        return x * n, n

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed})
        return cfg


@register("layers")
class AlphaDropout(_Noise):
    """Dropout that keeps SELU's self-normalisation (keras.layers.AlphaDropout).

    Args:
        rate: fraction dropped, in [0, 1).
        noise_shape: shape of the keep mask, None entries taking the input's size
            (e.g. (None, 1, features) drops whole features of every step alike).
        seed: this layer's own random stream.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _fraction(rate, "rate", upper_open=True)
        if noise_shape is not None and not isinstance(noise_shape, (list, tuple)):
            raise ValueError(f"Received an invalid value for argument `noise_shape`, expected a tuple or None, got {noise_shape!r}.")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def _active(self):
        return self.rate > 0

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Layer '{self.name}': noise_shape {self.noise_shape} does not match the input rank {len(shape)}.")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def _noisy(self, x, rng):
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        keep = (rng.random(self._mask_shape(x.shape)) >= self.rate).astype(x.dtype)
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * self.rate
        t = x.dtype.type
        y = t(a) * (x * keep + t(alpha_p) * (1 - keep)) + t(b)
        return y.astype(x.dtype, copy=False), np.broadcast_to(t(a) * keep, x.shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed,
                    "noise_shape": None if self.noise_shape is None else list(self.noise_shape)})
        return cfg
