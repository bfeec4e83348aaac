"""Dtype policies (keras.dtype_policies, Keras 3.15.1 names and semantics).

A policy names a layer's compute dtype and variable dtype. fusedlstm has three:

    'float32'         the default: everything in float32.
    'mixed_bfloat16'  Keras's CPU mixed-precision policy: variables stay float32 (the
                      optimizer updates float32 masters); the layers with a bfloat16 kernel
                      (Dense, the fused Dense+softmax+cross-entropy, LSTM, GRU, SimpleRNN)
                      round their GEMM operands to bfloat16 and accumulate the products in
                      float32 (`precision='bfloat16'` of the _core calls). Everything else --
                      gate non-linearities, the cell state, softmax, losses, layers without a
                      bfloat16 kernel -- computes in float32, and outputs are float32 arrays.
    'float64'         float64 throughout (for gradient checks).

Keras also accepts 'mixed_float16' and the pure 'float16'/'bfloat16' policies; those
have no CPU kernels here and raise NotImplementedError. As in Keras, a policy is chosen
per layer (`dtype=`), and a layer given none takes the global policy current when it is
created (`set_dtype_policy`; fusedlstm.mixed_precision and fusedlstm.config re-export it).
"""

import threading

import numpy as np

__all__ = ["DTypePolicy", "FloatDTypePolicy", "get", "serialize", "deserialize", "set_dtype_policy",
           "dtype_policy", "kernel_precision"]

# Policy name -> (compute dtype, variable dtype).
_SUPPORTED = {"float32": ("float32", "float32"),
              "mixed_bfloat16": ("bfloat16", "float32"),
              "float64": ("float64", "float64")}
# Names Keras accepts that have no kernels here.
_HALF = ("mixed_float16", "float16", "bfloat16", "half")

_CPU_POLICY_HINT = ("fusedlstm's mixed precision is 'mixed_bfloat16' (bfloat16 GEMM operands, float32 "
                    "accumulation and variables), the policy for CPUs")


def _standard_name(name: str) -> str:
    """Keras's standardize_dtype for the float names ('float' -> 'float32', 'double' -> 'float64')."""
    if name in _SUPPORTED or name.startswith("mixed_"):
        return name
    if name in ("float", "float_"):
        return "float32"
    try:
        return str(np.dtype(name))
    except TypeError:
        if name == "bfloat16":
            return name
        raise ValueError(
            f"Cannot convert '{name}' to a mixed precision DTypePolicy. Valid policies include "
            "'mixed_bfloat16' and the name of a float dtype such as 'float32'.") from None


class DTypePolicy:
    """A layer's compute and variable dtypes (keras.DTypePolicy / keras.mixed_precision.Policy).

    Args:
        name: 'float32', 'mixed_bfloat16' or 'float64'; None takes the global policy's name.

    >>> p = DTypePolicy("mixed_bfloat16")
    >>> p.compute_dtype, p.variable_dtype
    ('bfloat16', 'float32')
    """

    def __init__(self, name=None):
        if name is None:
            name = dtype_policy().name
        if not isinstance(name, str):
            raise TypeError(f"'name' must be a string, such as 'mixed_bfloat16'. Received: name={name!r} "
                            f"(of type {type(name)})")
        std = _standard_name(name)
        if std in _HALF or name in _HALF:
            raise NotImplementedError(
                f"The dtype policy {name!r} is not supported: {_CPU_POLICY_HINT}. Use "
                "set_global_policy('mixed_bfloat16') or dtype='mixed_bfloat16' instead.")
        if std not in _SUPPORTED:
            if name.startswith("mixed_"):
                raise ValueError(
                    f"Cannot convert '{name}' to a mixed precision DTypePolicy. Valid policies include "
                    "'mixed_bfloat16' and the name of a float dtype such as 'float32'.")
            raise NotImplementedError(
                f"The dtype policy {name!r} is not supported; fusedlstm computes in 'float32', "
                "'mixed_bfloat16' or 'float64' (for testing).")
        # Keras keeps the name as given ('float' stays 'float'); the dtypes are standard.
        self._name = name
        self._compute_dtype, self._variable_dtype = _SUPPORTED[std]

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype the layer computes in: 'bfloat16' under mixed_bfloat16 (the GEMM
        operands; see the module docstring for what stays float32)."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights: float32 under mixed_bfloat16."""
        return self._variable_dtype

    @property
    def quantization_mode(self):
        return None

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and self._name == other._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


# Keras 3 exports the same class under this name too.
FloatDTypePolicy = DTypePolicy


def kernel_precision(policy: DTypePolicy) -> str:
    """The `precision=` of the _core GEMM calls for a layer with this policy."""
    return "bfloat16" if policy.compute_dtype == "bfloat16" else "float32"


# ---------------------------------------------------------------------------------------------
# The global policy (keras.config.set_dtype_policy / dtype_policy)
# ---------------------------------------------------------------------------------------------

_lock = threading.Lock()
_global = None  # None: float32 (Keras's floatx), made on first use


def set_dtype_policy(policy) -> None:
    """Set the policy of layers created from now on without a `dtype` (keras.config.set_dtype_policy).

    >>> set_dtype_policy("mixed_bfloat16"); set_dtype_policy("float32")
    """
    global _global
    if not isinstance(policy, DTypePolicy):
        if not isinstance(policy, str):
            raise ValueError(
                "Invalid `policy` argument. Expected the string name of a policy (such as 'mixed_bfloat16') "
                f"or a `DTypePolicy` instance. Received: policy={policy!r} (of type {type(policy)})")
        policy = DTypePolicy(policy)
    with _lock:
        _global = policy


def dtype_policy() -> DTypePolicy:
    """The global policy (keras.config.dtype_policy); 'float32' unless set."""
    global _global
    with _lock:
        if _global is None:
            _global = DTypePolicy("float32")
        return _global


def get(identifier) -> DTypePolicy:
    """A policy from None (the global one), a name, a config dict
    ({"class_name": "DTypePolicy", "config": {"name": ...}}, Keras 2's "Policy" too),
    a DTypePolicy, or a numpy dtype (keras.dtype_policies.get)."""
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return DTypePolicy(identifier)
    try:
        name = np.dtype(getattr(identifier, "name", identifier)).name
    except TypeError:
        raise ValueError("Cannot interpret `dtype` argument. Expected a string or an instance of DTypePolicy. "
                         f"Received: dtype={identifier!r}") from None
    return DTypePolicy(name)


def serialize(policy: DTypePolicy) -> dict:
    """The form Keras 3 writes a policy in (keras.dtype_policies.serialize)."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config: dict, custom_objects=None) -> DTypePolicy:
    """A policy from serialize()'s form (Keras 3's 'DTypePolicy'/'FloatDTypePolicy', Keras 2's 'Policy')."""
    cls = config.get("class_name")
    inner = config.get("config")
    if cls not in ("DTypePolicy", "FloatDTypePolicy", "Policy") or not isinstance(inner, dict):
        raise ValueError(f"Cannot interpret the dtype policy config {config!r}: expected "
                         "{'class_name': 'DTypePolicy', 'config': {'name': ...}}.")
    return DTypePolicy(inner.get("name"))
