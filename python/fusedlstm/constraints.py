"""Weight constraints (keras.constraints), applied to a weight after every optimizer update.

As Keras 3 (keras/src/constraints/constraints.py), in the weight's dtype, with
‖w‖ the L2 norm along `axis` (axis 0: per output column of a (in, out) kernel) and
ε = 1e-7:

    MaxNorm(max_value=2, axis=0)        w · clip(‖w‖, 0, max_value) / (ε + ‖w‖)
    NonNeg()                            max(w, 0)
    UnitNorm(axis=0)                    w / (ε + ‖w‖)
    MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0)
                                        w · (rate·clip(‖w‖, min, max) + (1-rate)·‖w‖) / (ε + ‖w‖)

A layer takes them as kernel_constraint= (and recurrent_/bias_/embeddings_
constraint=); after each optimizer step the trainer replaces each constrained
trainable weight by constraint(weight), as keras.optimizers.Optimizer.apply does.
"""

import numbers

import numpy as np

from . import registry as _registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg", "unit_norm",
           "min_max_norm", "get", "serialize", "deserialize"]

EPSILON = 1e-7


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(_axis(a) for a in axis)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"Received an invalid value for argument `axis`, expected an integer or a list of them, got {axis!r}.")
    return int(axis)


def _number(value, name):
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a number, got {value!r}.")
    return value


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base: __call__(w) returns the constrained weight (the identity here)."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@_registry.register("constraints", aliases=("max_norm",))
class MaxNorm(Constraint):
    """Rescale the weight vectors along `axis` whose norm exceeds max_value to that norm."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        eps = w.dtype.type(EPSILON)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value).astype(w.dtype)
        return w * (desired / (eps + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@_registry.register("constraints", aliases=("non_neg",))
class NonNeg(Constraint):
    """max(w, 0)."""

    def __call__(self, w):
        return np.maximum(w, 0)


@_registry.register("constraints", aliases=("unit_norm",))
class UnitNorm(Constraint):
    """Scale the weight vectors along `axis` to unit norm."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        return w / (w.dtype.type(EPSILON) + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


@_registry.register("constraints", aliases=("min_max_norm",))
class MinMaxNorm(Constraint):
    """Move the norms of the weight vectors along `axis` into [min_value, max_value], by a
    fraction `rate` of the way per update (1: all the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value")
        self.max_value = _number(max_value, "max_value")
        self.rate = _number(rate, "rate")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        dt = w.dtype.type
        norms = _norms(w, self.axis)
        desired = dt(self.rate) * np.clip(norms, self.min_value, self.max_value).astype(w.dtype) \
            + dt(1 - self.rate) * norms
        return w * (desired / (dt(EPSILON) + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


def get(identifier, arg="constraint"):
    """A Constraint (or None) from None, a name ('max_norm', 'non_neg', 'unit_norm',
    'min_max_norm', class names), a {"class_name", "config"} dict (ours or Keras's), an
    instance, or a function w -> w (called as is)."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, arg)
    if isinstance(identifier, str):
        cls = _registry.lookup("constraints", identifier)
        if cls is None:
            raise ValueError(f"Could not interpret constraint identifier: {identifier} (argument `{arg}`; "
                             f"known: {_registry.names('constraints')}).")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier  # a constraint needs no gradient: any function of the weight will do
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r} (argument `{arg}`).")


def serialize(constraint):
    """{"class_name", "config"} of a constraint (None stays None)."""
    return None if constraint is None else _registry.serialize_keras_object(constraint)


def deserialize(config, arg="constraint"):
    """A Constraint from serialize()'s form or Keras's ({"module", "class_name", "config", ...})."""
    return _registry.deserialize_subclass(config, "constraints", Constraint, "Constraint", arg)
