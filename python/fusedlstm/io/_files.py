"""File plumbing shared by the Keras and PyTorch interchange code.

Two jobs: import h5py with an error that says which extra to install, and tell a
file's kind from its suffix (the Keras rows of fusedlstm.saving.SUFFIXES, the one
table of suffixes). Writes go through fusedlstm.atomic.atomic_path, so a crash or a
full disk never leaves a half-written model where a good one was.
"""

import os

from ..atomic import atomic_path  # one atomic writer for every format
from ..saving import KERAS_KINDS, SUFFIXES

__all__ = ["require_h5py", "atomic_path", "file_kind", "KERAS_SUFFIXES"]

# Suffix -> what the file holds, for Keras's formats. Longest suffixes first.
KERAS_SUFFIXES = tuple((suffix, kind) for suffix, kind in SUFFIXES if kind in KERAS_KINDS)


def file_kind(path) -> str:
    """'keras3_weights', 'keras3_archive' or 'legacy_h5' from the file name.

    Raises ValueError for any other suffix, naming the accepted ones.
    """
    name = os.fspath(path)
    if not isinstance(name, str):
        name = os.fsdecode(name)
    for suffix, kind in KERAS_SUFFIXES:
        if name.lower().endswith(suffix):
            return kind
    accepted = ", ".join(s for s, _ in KERAS_SUFFIXES)
    raise ValueError(f"Received an invalid value for argument `filepath`, expected a name ending in one of "
                     f"{accepted}, got {name!r}.")


def require_h5py():
    """The h5py module, or an ImportError naming the extra that provides it."""
    try:
        import h5py  # optional dependency (the h5 extra): only Keras files need it
    except ImportError as exc:
        raise ImportError(
            "Reading or writing Keras .keras/.weights.h5/.h5 files needs h5py, which is not installed: "
            "pip install 'fusedlstm[h5]'"
        ) from exc
    return h5py
