"""fusedlstm: Keras-compatible LSTMs on fused C++ kernels.

`import fusedlstm as keras` works for the parts of Keras that LSTM notebooks use:
`keras.models.Sequential`, `keras.layers.LSTM`, `keras.optimizers.Adam`, `keras.utils.to_categorical`...
"""

from ._version import __version__
from . import _core
from . import (activations, backend, callbacks, config, constraints, datasets, dtype_policies, initializers, layers,
               losses, metrics, mixed_precision, models, optimizers, preprocessing, regularizers, saving, utils)
# Imported for its effect too: it registers the Keras formats with fusedlstm.saving.
from . import io
from .dtype_policies import DTypePolicy, FloatDTypePolicy
from .layers import Input
from .models import Model, Sequential, load_model


def build_info() -> dict:
    """The ISA in use, the levels this CPU has, threads, compiler and version."""
    return _core.build_info()


def set_num_threads(n: int) -> None:
    """Threads the kernels may use; results do not depend on it."""
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()


def release_memory() -> int:
    """Free the large buffers the kernels keep between calls to reuse in the next
    training step (build_info()['buffer_cache_bytes']); returns the bytes freed."""
    return _core.clear_buffer_cache()


__all__ = ["__version__", "build_info", "set_num_threads", "get_num_threads", "release_memory", "DTypePolicy",
           "FloatDTypePolicy", "Input", "Model", "Sequential", "load_model", "activations", "backend", "callbacks",
           "config", "constraints", "datasets", "dtype_policies", "initializers", "layers", "losses", "metrics",
           "mixed_precision", "models", "optimizers", "preprocessing", "regularizers", "saving", "utils"]
