"""Keras activation functions by name, each with the backward pass the layers need.

Dense and Activation apply these in NumPy over whole arrays (elementwise, so one
vectorised pass each way); the LSTM's gate activations run inside the C++ kernel
and only accept the names in `LSTM_KERNEL_NAMES`.

Each activation is a module-level function (usable as `activation=tanh`, as in
Keras) registered by name in fusedlstm.registry, with its gradient
`grad(dy, z, y) -> dz` (given the input z and the output y of the forward pass) in
this module's gradient table.
"""

import numpy as np

from . import registry as _registry

__all__ = ["get", "serialize", "linear", "relu", "relu6", "sigmoid", "tanh", "softmax",
           "log_softmax", "hard_sigmoid", "softplus", "softsign", "elu", "selu",
           "exponential", "silu", "swish", "leaky_relu"]

# Names the LSTM kernel evaluates itself (Keras 3 hard_sigmoid = relu6(x + 3) / 6).
LSTM_KERNEL_NAMES = ("tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2", "relu", "linear")

_GRADS = {}

# Keras 3 activation names fusedlstm does not implement: asking for one is a missing
# feature (NotImplementedError); any other unknown name is a typo (ValueError).
_KERAS_ONLY = ("celu", "gelu", "glu", "hard_shrink", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid",
               "mish", "soft_shrink", "sparse_plus", "sparsemax", "squareplus", "tanh_shrink", "threshold")


def _register(name, grad, *aliases):
    def deco(fn):
        fn.__name__ = name
        _GRADS[name] = grad
        return _registry.register("activations", name=name, aliases=aliases)(fn)
    return deco


def _names():
    return _registry.names("activations")


@_register("linear", lambda dy, z, y: dy)
def linear(x):
    return x


@_register("relu", lambda dy, z, y: dy * (z > 0))
def relu(x):
    return np.maximum(x, 0)


@_register("relu6", lambda dy, z, y: dy * ((z > 0) & (z < 6)))
def relu6(x):
    return np.clip(x, 0, 6)


def _sigmoid(x):
    # Two-sided form: no overflow warning for large |x| (tests run with warnings as errors).
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@_register("sigmoid", lambda dy, z, y: dy * y * (1 - y))
def sigmoid(x):
    return _sigmoid(np.asarray(x))


@_register("tanh", lambda dy, z, y: dy * (1 - y * y))
def tanh(x):
    return np.tanh(x)


def _softmax_grad(dy, z, y):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


@_register("softmax", _softmax_grad)
def softmax(x):
    # The same reductions as np.max/np.sum, without their Python wrappers (a streaming
    # step's softmax is a few dozen values), and in place on the fresh array e.
    e = np.exp(x - _row_max(x))
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def _row_max(x):
    """max over the last axis, keepdims. Many short rows (a sequence's softmax over a few
    dozen classes) reduce faster down the columns of a transposed copy (5120 x 27: 0.10 ms
    instead of 0.24); a maximum is the same whatever the order, so are the bits."""
    if x.ndim == 2 and x.shape[1] <= 32 and x.shape[0] >= 64:
        return np.maximum.reduce(np.ascontiguousarray(x.T), axis=0)[:, None]
    return np.maximum.reduce(x, axis=-1, keepdims=True)


@_register("log_softmax",
           lambda dy, z, y: dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True))
def log_softmax(x):
    s = x - np.max(x, axis=-1, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=-1, keepdims=True))


@_register("hard_sigmoid", lambda dy, z, y: dy * ((z > -3) & (z < 3)) / 6)
def hard_sigmoid(x):
    return np.clip(x + 3, 0, 6) / 6


# Keras 2's hard_sigmoid, for models saved by Keras 2 (Keras 3 redefined the name).
@_register("hard_sigmoid_k2", lambda dy, z, y: dy * 0.2 * ((z > -2.5) & (z < 2.5)))
def hard_sigmoid_k2(x):
    return np.clip(0.2 * x + 0.5, 0, 1)


@_register("softplus", lambda dy, z, y: dy * _sigmoid(z))
def softplus(x):
    return np.logaddexp(0, x).astype(np.asarray(x).dtype, copy=False)


@_register("softsign", lambda dy, z, y: dy / (1 + np.abs(z)) ** 2)
def softsign(x):
    return x / (1 + np.abs(x))


@_register("elu", lambda dy, z, y: dy * np.where(z > 0, 1, y + 1))
def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(np.asarray(x).dtype, copy=False)


_SELU_A, _SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@_register("selu", lambda dy, z, y: dy * _SELU_S * np.where(z > 0, 1, _SELU_A * np.exp(np.minimum(z, 0))))
def selu(x):
    return (_SELU_S * np.where(x > 0, x, _SELU_A * np.expm1(np.minimum(x, 0)))).astype(
        np.asarray(x).dtype, copy=False)


@_register("exponential", lambda dy, z, y: dy * y)
def exponential(x):
    return np.exp(x)


def _silu_grad(dy, z, y):
    s = _sigmoid(z)
    return dy * (s + z * s * (1 - s))


@_register("silu", _silu_grad, "swish")
def silu(x):
    return x * _sigmoid(np.asarray(x))


swish = silu


@_register("leaky_relu", lambda dy, z, y: dy * np.where(z > 0, 1, 0.2).astype(z.dtype))
def leaky_relu(x):
    # Keras 3's default negative_slope is 0.2.
    return np.where(x > 0, x, 0.2 * x).astype(np.asarray(x).dtype, copy=False)


def get(identifier, arg="activation"):
    """The activation for a name, None ('linear'), Keras's {"class_name": "function",
    "config": name} form or one of this module's functions.

    Raises NotImplementedError for a name Keras knows that we do not implement, or
    for an arbitrary callable (its gradient is unknown to the C++/NumPy engine), and
    ValueError for a name Keras does not know either; `arg` is the argument named
    in the message.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, dict) and isinstance(identifier.get("config"), str) \
            and identifier.get("class_name") == "function":
        identifier = identifier["config"]  # Keras's serialized form of a built-in function
    if isinstance(identifier, str):
        fn = _registry.lookup("activations", identifier)
        if fn is not None and getattr(fn, "__name__", None) not in _GRADS:
            raise NotImplementedError(
                f"Activation {identifier!r} (argument `{arg}`) is a custom function; fusedlstm needs the "
                f"gradient of its activations and supports: {_names()}.")
        if fn is None:
            if identifier in _KERAS_ONLY:
                raise NotImplementedError(
                    f"Activation {identifier!r} (argument `{arg}`) is not supported by fusedlstm; "
                    f"supported: {_names()}."
                )
            raise ValueError(
                f"Received an invalid value for argument `{arg}`, expected one of {_names()} "
                f"(or None), got {identifier!r}."
            )
        return fn
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        fn = _registry.lookup("activations", name)
        if fn is identifier:
            return identifier
        # Keras' own functions (keras.activations.tanh ...) carry the same names.
        if fn is not None and getattr(identifier, "__module__", "").startswith(("keras", "tensorflow")):
            return fn
        raise NotImplementedError(
            f"Custom activation function {identifier!r} is not supported (fusedlstm needs "
            "its gradient); pass one of the names " + ", ".join(_names()) + "."
        )
    raise TypeError(
        f"Received an invalid value for argument `{arg}`, expected a string, None or "
        f"an activation function, got {identifier!r}."
    )


def serialize(fn) -> str:
    return fn.__name__


def gradient(fn):
    """grad(dy, z, y) -> dz for an activation returned by get()."""
    return _GRADS[fn.__name__]
