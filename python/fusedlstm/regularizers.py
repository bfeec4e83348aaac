"""Weight and activity penalties (keras.regularizers), each with its gradient.

A regularizer maps an array to a penalty added to the training loss, as in Keras 3
(keras/src/regularizers/regularizers.py):

    L1(l1)          l1 Σ|x|                        gradient l1 sign(x)
    L2(l2)          l2 Σx²                         gradient 2 l2 x
    L1L2(l1, l2)    both terms (each only when its factor is non-zero)
    OrthogonalRegularizer(factor, mode)
                    factor · ½ Σ_{i≠j} |n_i · n_j| / (m(m-1)/2), n_i the L2-normalised
                    rows ('rows') or columns ('columns') of a 2-D weight, m their count

A layer takes them as kernel_regularizer= (and recurrent_/bias_/embeddings_/
activity_regularizer=); the trainer adds Σ penalty(weight) over the trainable
weights to the loss and penalty.gradient(weight) to their gradients, and each
activity penalty, penalty(output) / batch size, to the loss with its gradient into
the output's (models/step.py). `get()` resolves a name ('l2'), a config dict or an
instance; a custom penalty is a Regularizer subclass defining __call__ and gradient
(fusedlstm differentiates nothing by itself).
"""

import numbers

import numpy as np

from . import registry as _registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize"]

EPSILON = 1e-7


def _factor(value, name):
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float.Received: {name}={value}")
    return float(value)


def _f32(value):
    """Keras casts a factor to the weight's dtype before multiplying: float32(0.01)."""
    return float(np.float32(value))


class Regularizer:
    """Base: __call__(x) -> the penalty (a float), gradient(x) -> d penalty / dx (x's shape)."""

    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros_like(x)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


@_registry.register("regularizers", aliases=("l1l2", "l1_l2"))
class L1L2(Regularizer):
    """l1 Σ|x| + l2 Σx² (keras.regularizers.L1L2; both default to 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        out = 0.0
        if self.l1:
            out += _f32(self.l1) * float(np.abs(x).sum())
        if self.l2:
            out += _f32(self.l2) * float(np.dot(x.ravel(), x.ravel()))
        return out

    def gradient(self, x):
        g = np.zeros(np.shape(x), dtype=np.asarray(x).dtype)
        if self.l1:
            g += np.float32(self.l1) * np.sign(x)
        if self.l2:
            g += np.float32(2.0 * _f32(self.l2)) * x
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@_registry.register("regularizers", aliases=("l1",))
class L1(L1L2):
    """l1 Σ|x| (keras.regularizers.L1; default l1=0.01)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1)
        # Keras 3 keeps this factor as a float32 tensor, so its config holds float32(l1).
        self.l1 = _f32(self.l1)

    def get_config(self):
        return {"l1": self.l1}


@_registry.register("regularizers", aliases=("l2",))
class L2(L1L2):
    """l2 Σx² (keras.regularizers.L2; default l2=0.01)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


def _normalized(x, axis):
    """x · min(1/‖x‖, 1/ε) along `axis` (keras.ops.normalize), its scale, and where the
    cap is not reached (there the gradient is that of x/‖x‖)."""
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.sqrt(np.square(x).sum(axis=axis, keepdims=True))
    s = np.minimum(inv, 1.0 / EPSILON)
    return x * s, s, inv < 1.0 / EPSILON


@_registry.register("regularizers", aliases=("orthogonal_regularizer",))
class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (or columns) of a 2-D weight towards orthogonality
    (keras.regularizers.OrthogonalRegularizer): see the module docstring."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _f32(_factor(factor, "factor"))
        if mode not in ("rows", "columns"):
            raise ValueError(f'Invalid value for argument `mode`. Expected one of {{"rows", "columns"}}. Received: mode={mode}')
        self.mode = mode

    def _vectors(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={x.shape}")
        return x if self.mode == "rows" else x.T

    def __call__(self, x):
        v = self._vectors(x)
        m = v.shape[0]
        n, _, _ = _normalized(v, 1)
        prod = n @ n.T
        np.fill_diagonal(prod, 0.0)
        pairs = m * (m - 1.0) / 2.0
        return float(self.factor * 0.5 * np.abs(prod).sum() / pairs)

    def gradient(self, x):
        v = self._vectors(x)
        m = v.shape[0]
        n, s, uncapped = _normalized(v, 1)
        prod = n @ n.T
        dprod = np.sign(prod)
        np.fill_diagonal(dprod, 0.0)
        dprod *= self.factor * 0.5 / (m * (m - 1.0) / 2.0)
        dn = (dprod + dprod.T) @ n
        # n = v/‖v‖: dv = (dn - n (n·dn)) / ‖v‖; where the 1/ε cap holds, n = v/ε: dv = dn/ε.
        dv = np.where(uncapped, s * (dn - n * (n * dn).sum(axis=1, keepdims=True)), s * dn)
        g = dv if self.mode == "rows" else dv.T
        return g.astype(np.asarray(x).dtype)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras's function-style names are the classes themselves.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer


def get(identifier, arg="regularizer"):
    """A Regularizer (or None) from None, a name ('l1', 'l2', 'l1l2', 'orthogonal_regularizer',
    class names), a {"class_name", "config"} dict (our form or Keras's) or an instance.
    `arg` names the layer argument in error messages."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, arg)
    if isinstance(identifier, str):
        cls = _registry.lookup("regularizers", identifier)
        if cls is None:
            raise ValueError(f"Could not interpret regularizer identifier: {identifier} (argument `{arg}`; "
                             f"known: {_registry.names('regularizers')}).")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        raise NotImplementedError(
            f"`{arg}`: a plain function {identifier!r} cannot be differentiated by fusedlstm; write it as a "
            "fusedlstm.regularizers.Regularizer subclass with __call__(x) and gradient(x).")
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r} (argument `{arg}`).")


def serialize(regularizer):
    """{"class_name", "config"} of a regularizer (None stays None)."""
    return None if regularizer is None else _registry.serialize_keras_object(regularizer)


def deserialize(config, arg="regularizer"):
    """A Regularizer from serialize()'s form or Keras's ({"module", "class_name", "config", ...})."""
    return _registry.deserialize_subclass(config, "regularizers", Regularizer, "Regularizer", arg)
