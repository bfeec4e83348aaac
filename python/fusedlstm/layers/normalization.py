"""LayerNormalization and BatchNormalization (Keras 3 semantics), forward and backward in NumPy.

Both normalise x̂ = (x - μ)·(σ² + ε)^-½ and output γ·x̂ + β; they differ in what μ, σ²
are taken over. With N values in each reduction (biased variance, as Keras),

    dx̂ = dy·γ,   dx = (σ² + ε)^-½ · (dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)),
    dγ = Σ dy·x̂,  dβ = Σ dy

(the means over the reduction, the sums over the other axes).

LayerNormalization reduces over `axis` (the features of each sample and step).
BatchNormalization reduces over every axis but `axis`: in training (fit, or a call
with training=True, while the layer is trainable) over the batch, updating

    moving = moving·momentum + batch_statistic·(1 - momentum)

in the forward pass, as Keras does; otherwise (evaluate, predict, a frozen layer) it
uses the moving statistics, and x̂ is an affine function of x. A mask (Keras's
(batch, steps) mask, one axis fewer than the input) restricts the batch statistics to
the unmasked steps, with Keras's S = Σ mask + 1e-7 in place of N:

    μ = Σ m·x / S,   σ² = Σ m·(x - μ)² / S
    dx = dx̂·r + m·(dμ + 2·dσ²·(x - μ)) / S,   dσ² = -½ r³ Σ dx̂·(x - μ),
    dμ = -r Σ dx̂ - 2·dσ²·Σ m·(x - μ) / S        (r = (σ² + ε)^-½)

Keras's torch backend takes σ² as E[x²] - E[x]²; here it is the two-pass Σ(x - μ)²/N,
equal in exact arithmetic and more accurate in float32.
"""

import numbers
import warnings

import numpy as np

from .. import initializers as _inits
from ..registry import register
from .base import Layer, _check_none

__all__ = ["LayerNormalization", "BatchNormalization"]

# Keras's backend.epsilon(): the guard added to the masked count.
_MASK_EPSILON = 1e-7


def _number(value, name, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or (
            minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        rng = "" if minimum is None else f" in [{minimum}, {'inf' if maximum is None else maximum}]"
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a finite number{rng}, got {value!r}.")
    return float(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected a bool, got {value!r}.")
    return bool(value)


@register("layers")
class LayerNormalization(Layer):
    """Normalises each sample over `axis` (keras.layers.LayerNormalization).

    Args:
        axis: int or list of ints (default -1, the features).
        epsilon: added to the variance (default 1e-3).
        center, scale: learn β (default zeros) / γ (default ones) of the normalised shape.
        beta_initializer, gamma_initializer: as Keras.
        rms_scaling: Keras's deprecated option: y = γ·x·(σ² + ε)^-½ (no centring, no β),
            accepted with Keras's warning.
    """

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        _check_none("LayerNormalization", beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                    beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        if isinstance(axis, (list, tuple)):
            axes = list(axis)
        else:
            axes = [axis]
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
            raise TypeError(f"Received an invalid value for argument `axis`, expected an int or a list of ints, got {axis!r}.")
        self.axis = [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = _number(epsilon, "epsilon", minimum=0.0)
        self.center = _flag(center, "center")
        self.scale = _flag(scale, "scale")
        self.rms_scaling = _flag(rms_scaling, "rms_scaling")
        if self.rms_scaling:
            warnings.warn(
                "You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the input "
                "by the variance, not the root mean square (Keras's warning; fusedlstm keeps Keras's formula).",
                stacklevel=2)
        self.beta_initializer = _inits.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _inits.get(gamma_initializer, "gamma_initializer")
        self.gamma = self.beta = None

    def _axes(self, ndim):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(
                    f"Layer '{self.name}': axis {a} is out of bounds for an input of rank {ndim} (the batch "
                    "axis 0 cannot be normalised over).")
        return tuple(sorted({a % ndim for a in axes}))

    def _param_shape(self, input_shape):
        return tuple(input_shape[a] for a in self._axes(len(input_shape)))

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        shape = self._param_shape(s)
        if self.built and self._built_rank is not None:
            if len(s) != self._built_rank or any(d is not None and d != w for d, w in zip(shape, self._built_shape)):
                raise ValueError(
                    f"Input 0 of layer '{self.name}' is incompatible with the layer: it was built for axes of "
                    f"sizes {self._built_shape} in rank-{self._built_rank} inputs, got input shape {tuple(s)}.")
        elif any(d is None for d in shape):
            raise ValueError(
                f"Layer '{self.name}': the normalised axes must have fixed sizes, got input shape {tuple(s)}.")

    def build(self, input_shape):
        shape = self._param_shape(input_shape)
        self._built_rank, self._built_shape = len(input_shape), shape
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight("beta", shape, self.beta_initializer)
        self.built = True

    _built_rank = None
    _built_shape = None

    def _bshape(self, x, axes):
        return tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        axes = self._axes(x.ndim)
        mean = x.mean(axis=axes, keepdims=True)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(var + x.dtype.type(self.epsilon))
        bs = self._bshape(x, axes)
        g = None if self.gamma is None else self.gamma.value.reshape(bs)
        if self.rms_scaling:
            z = x * inv
            cache = (x, d, inv, axes, g) if ctx.want_grads else None
        else:
            z = d * inv
            cache = (z, None, inv, axes, g) if ctx.want_grads else None
        y = z if g is None else z * g
        if self.beta is not None:
            y = y + self.beta.value.reshape(bs)
        return [y], [masks[0]], cache

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None:
            return [None]
        z, d, inv, axes, g = cache  # z = x̂ (or x for rms_scaling, with d = x - μ)
        outer = tuple(i for i in range(dy.ndim) if i not in axes)
        if self.gamma is not None:
            ctx.add_grad(self.gamma, (dy * z * (inv if self.rms_scaling else 1)).sum(axis=outer).reshape(self.gamma.shape))
        if self.beta is not None:
            ctx.add_grad(self.beta, dy.sum(axis=outer).reshape(self.beta.shape))
        if not need[0]:
            return [None]
        dz = dy if g is None else dy * g
        if self.rms_scaling:
            # y = γ·x·r, r = (σ² + ε)^-½, dσ²/dx = 2(x - μ)/N
            return [inv * dz - inv ** 3 * d * np.mean(dz * z, axis=axes, keepdims=True)]
        return [inv * (dz - dz.mean(axis=axes, keepdims=True) - z * np.mean(dz * z, axis=axes, keepdims=True))]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                    "rms_scaling": self.rms_scaling,
                    "beta_initializer": _inits.serialize(self.beta_initializer),
                    "gamma_initializer": _inits.serialize(self.gamma_initializer)})
        return cfg


@register("layers")
class BatchNormalization(Layer):
    """Normalises each feature over the batch (keras.layers.BatchNormalization).

    Args:
        axis: the feature axis (default -1); Keras 2's one-element list is accepted.
        momentum: of the moving statistics (default 0.99).
        epsilon: added to the variance (default 1e-3).
        center, scale: learn β / γ.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: as Keras (zeros, ones, zeros, ones).

    Weights (get_weights order, as Keras): gamma, beta (trainable), moving_mean,
    moving_variance (not trainable).

    Call arguments:
        training: batch statistics (and moving-statistics update) when True and the
            layer is trainable; fit() passes True, evaluate()/predict() False.
        mask: (batch, steps) bool: batch statistics over the unmasked steps only.
    """

    supports_masking = True
    # Training mixes the samples of a batch: a data-parallel step cannot split it exactly.
    _batch_statistics = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        _check_none("BatchNormalization", beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                    beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                    renorm_clipping=renorm_clipping)
        if renorm:
            raise NotImplementedError("BatchNormalization: `renorm=True` (batch renormalization) is not supported by "
                                      "fusedlstm.")
        if synchronized:
            raise NotImplementedError("BatchNormalization: `synchronized=True` is not supported (Keras supports it "
                                      "on the TensorFlow backend only).")
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]  # Keras 2 configs hold [axis]
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Received an invalid value for argument `axis`, expected an int, got {axis!r}.")
        self.axis = int(axis)
        self.momentum = _number(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.epsilon = _number(epsilon, "epsilon", minimum=0.0)
        self.center = _flag(center, "center")
        self.scale = _flag(scale, "scale")
        self.renorm_momentum = renorm_momentum
        self.beta_initializer = _inits.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _inits.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = _inits.get(moving_mean_initializer, "moving_mean_initializer")
        self.moving_variance_initializer = _inits.get(moving_variance_initializer, "moving_variance_initializer")
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._built_rank = None

    def _feature_axis(self, ndim):
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"Layer '{self.name}': axis {self.axis} is out of bounds for an input of rank {ndim} "
                             "(the batch axis 0 cannot be the feature axis).")
        return self.axis % ndim

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        a = self._feature_axis(len(s))
        if self.built:
            if len(s) != self._built_rank or (s[a] is not None and s[a] != self.moving_mean.shape[0]):
                raise ValueError(
                    f"Input 0 of layer '{self.name}' is incompatible with the layer: expected ndim="
                    f"{self._built_rank} and axis {self.axis} of size {self.moving_mean.shape[0]}, got input shape "
                    f"{tuple(s)}.")
        elif s[a] is None:
            raise ValueError(f"Layer '{self.name}': axis {self.axis} of the input must have a fixed size, got input "
                             f"shape {tuple(s)}.")

    def build(self, input_shape):
        n = input_shape[self._feature_axis(len(input_shape))]
        self._built_rank = len(input_shape)
        if self.scale:
            self.gamma = self.add_weight("gamma", (n,), self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", (n,), self.beta_initializer)
        self.moving_mean = self.add_weight("moving_mean", (n,), self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (n,), self.moving_variance_initializer,
                                               trainable=False)
        self.built = True

    def _moments(self, x, mask, red, bshape):
        """Batch mean, variance, the centred x, and (m, S) with a mask (else None)."""
        if mask is None:
            mean = x.mean(axis=red, keepdims=True)
            d = x - mean
            return mean, np.mean(d * d, axis=red, keepdims=True), d, None
        if mask.ndim != x.ndim - 1:
            raise ValueError(
                f"Layer '{self.name}': the mask should have one dimension less than the inputs, got mask shape "
                f"{mask.shape} for input shape {x.shape}.")
        m = np.broadcast_to(mask[..., None], x.shape).astype(x.dtype)
        S = m.sum(axis=red, keepdims=True) + x.dtype.type(_MASK_EPSILON)
        mean = (m * x).sum(axis=red, keepdims=True) / S
        d = x - mean
        md = m * d
        var = (md * d).sum(axis=red, keepdims=True) / S
        return mean, var, d, (m, S, md)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        a = self._feature_axis(x.ndim)
        red = tuple(i for i in range(x.ndim) if i != a)
        bshape = tuple(x.shape[a] if i == a else 1 for i in range(x.ndim))
        batch = bool(training) and self.trainable
        if batch:
            mean, var, d, weights = self._moments(x, masks[0], red, bshape)
            self._update_moving(mean.reshape(-1), var.reshape(-1))
        else:
            mean = self.moving_mean.value.reshape(bshape).astype(x.dtype, copy=False)
            var = self.moving_variance.value.reshape(bshape).astype(x.dtype, copy=False)
            d, weights = x - mean, None
        inv = 1.0 / np.sqrt(var + x.dtype.type(self.epsilon))
        xhat = d * inv
        g = None if self.gamma is None else self.gamma.value.reshape(bshape)
        y = xhat if g is None else xhat * g
        if self.beta is not None:
            y = y + self.beta.value.reshape(bshape)
        cache = (xhat, d, inv, g, red, batch, weights) if ctx.want_grads else None
        return [y], [masks[0]], cache

    def _update_moving(self, mean, var):
        mom = self.momentum
        for v, stat in ((self.moving_mean, mean), (self.moving_variance, var)):
            t = v.value.dtype.type
            v._write(v.value * t(mom) + stat.astype(v.value.dtype) * t(1.0 - mom))

    def _bwd(self, cache, douts, need, ctx):
        dy = douts[0]
        if dy is None:
            return [None]
        xhat, d, inv, g, red, batch, weights = cache
        if self.gamma is not None:
            ctx.add_grad(self.gamma, (dy * xhat).sum(axis=red))
        if self.beta is not None:
            ctx.add_grad(self.beta, dy.sum(axis=red))
        if not need[0]:
            return [None]
        dxhat = dy if g is None else dy * g
        if not batch:
            return [dxhat * inv]
        if weights is None:
            return [inv * (dxhat - dxhat.mean(axis=red, keepdims=True)
                           - xhat * np.mean(dxhat * xhat, axis=red, keepdims=True))]
        m, S, md = weights
        dvar = -0.5 * inv ** 3 * (dxhat * d).sum(axis=red, keepdims=True)
        dmean = -inv * dxhat.sum(axis=red, keepdims=True) - 2.0 * dvar * md.sum(axis=red, keepdims=True) / S
        return [dxhat * inv + (2.0 * dvar * md + dmean * m) / S]

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale,
            "beta_initializer": _inits.serialize(self.beta_initializer),
            "gamma_initializer": _inits.serialize(self.gamma_initializer),
            "moving_mean_initializer": _inits.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _inits.serialize(self.moving_variance_initializer),
        })
        return cfg
