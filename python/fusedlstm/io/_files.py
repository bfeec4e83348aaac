"""File plumbing shared by the Keras and PyTorch interchange code.

Two jobs: import h5py with an error that says which extra to install, and write
files atomically (a temporary file in the target's folder, fsync, rename), so a
crash or a full disk never leaves a half-written model where a good one was.
"""

import contextlib
import os
import secrets
from typing import Iterator

__all__ = ["require_h5py", "atomic_path", "file_kind", "KERAS_SUFFIXES"]

# Suffix -> what the file holds. Longest suffixes first: ".weights.h5" also ends in ".h5".
KERAS_SUFFIXES = (
    (".weights.h5", "keras3_weights"),
    (".keras", "keras3_archive"),
    (".hdf5", "legacy_h5"),
    (".h5", "legacy_h5"),
)


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
        import h5py
    except ImportError as exc:
        raise ImportError(
            "Reading or writing Keras .keras/.weights.h5/.h5 files needs h5py, which is not installed: "
            "pip install 'fusedlstm[h5]'"
        ) from exc
    return h5py


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path next to `path`; on a clean exit it replaces `path`.

    The temporary file sits in the same folder so the final os.replace is a
    rename within one file system (atomic on POSIX), and it is fsynced first so
    the rename never publishes a file whose data is still only in the page cache.
    On an exception the temporary file is removed and `path` is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot write {path!r}: the folder {folder!r} does not exist.")
    # Not mkstemp: its 0600 mode would survive the rename; 0666 minus the umask is what open() gives.
    while True:
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself lives in the folder's metadata: sync it too where the OS allows.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
