"""fusedlstm: Keras-compatible LSTMs on fused C++ kernels."""

from ._version import __version__
from . import _core


def build_info() -> dict:
    """The ISA in use, the levels this CPU has, threads, compiler and version."""
    return _core.build_info()


def set_num_threads(n: int) -> None:
    """Threads the kernels may use; results do not depend on it."""
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()
