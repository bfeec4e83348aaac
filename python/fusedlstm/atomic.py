"""Crash-safe file writes and content checksums for fusedlstm's own files.

A save must never destroy the previous good file, even when the process is killed
or the machine loses power half-way. `atomic_path` hands out a temporary name in
the target's folder; only after the data is complete and fsynced is it renamed
over the target (os.replace: atomic within one file system on POSIX and Windows),
and the folder is fsynced so the rename itself survives a power cut. A reader
therefore sees either the old file or the new one, never a mixture. A kill during
the write can leave a stray `.<name>.<hex>.tmp` beside the target; loaders ignore it.

`digest_arrays` is the checksum the `.fusedlstm` / `.weights.npz` formats store:
sha256 over every entry's name, dtype, shape and bytes in name order, so it
catches a flipped bit, a truncated entry and an entry swapped in from another
file, independently of the zip container's own CRCs.
"""

import contextlib
import hashlib
import os
import secrets
from typing import Iterator, Mapping

import numpy as np

__all__ = ["atomic_path", "digest_arrays"]


def _fsync_file(path):
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder):
    # Directories cannot be opened for fsync on Windows; there the rename is already durable.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path beside `path`; on a clean exit it replaces `path`.

    On an exception (KeyboardInterrupt included) the temporary file is removed and
    `path` keeps its previous content.

    >>> with atomic_path("out.bin") as tmp:          # doctest: +SKIP
    ...     open(tmp, "wb").write(b"data")
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot write {path!r}: the folder {folder!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot write {path!r}: it is a directory.")
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
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 of the entries (name, dtype, shape, C-order bytes), in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        head = f"{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8")
        h.update(len(head).to_bytes(8, "little"))
        h.update(head)
        h.update(a.nbytes.to_bytes(8, "little"))
        h.update(a)
    return h.hexdigest()
