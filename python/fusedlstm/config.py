"""keras.config: the process-wide settings fusedlstm has (the global dtype policy, floatx)."""

from .dtype_policies import dtype_policy, set_dtype_policy


def floatx() -> str:
    """Weights are float32 by default, as Keras's default floatx."""
    return "float32"


__all__ = ["dtype_policy", "set_dtype_policy", "floatx"]
