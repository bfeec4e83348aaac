"""The few `keras.backend` functions classic notebooks call."""

from .layers.base import clear_session


def floatx() -> str:
    """Training runs in float32, as Keras's default floatx."""
    return "float32"


__all__ = ["clear_session", "floatx"]
