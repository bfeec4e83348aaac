"""Reading files that came from elsewhere: bounds a file cannot talk its way past.

Every loader (our `.fusedlstm` / `.weights.npz` / checkpoints, Keras's `.keras`,
the PyTorch and dataset readers) treats its file as hostile until checked. What
a file declares is checked before anything is allocated for it:

* the path must name a regular file: a FIFO or a device named `model.fusedlstm`
  would block or never end;
* a zip archive's members must have distinct, relative names that stay inside it
  (no `/abs`, `C:`, `..`), no encryption, and inflate
  to at most MAX_EXPANSION times their stored size once above EXPANSION_FLOOR
  bytes (a zip bomb stops here, before a byte is inflated), and together to at
  most what the caller allows. Python's zipfile stops a member at its declared
  size, so the declared sizes bound the memory a read can take;
* a model built from a file's config may allocate weights only up to what the
  file can hold (`weight_budget`): a config declaring LSTM(10**9) in a 10 KB
  file is refused before its first weight is allocated;
* an `.npy` entry's header must describe exactly the bytes that follow it (a
  shape of 10**12 in a 1 KB entry is refused before NumPy allocates for it) and
  a plain dtype: object arrays (pickles) are never read here.

Any failure is a ValueError naming the file and what is wrong. Weights that are
NaN or infinite load with a NonFiniteWeightsWarning naming them (Keras loads
them silently; a diverged run's checkpoint is still a valid file). Nothing here
writes. fusedlstm.download checks archives before extracting them the same way.
"""

import ast
import contextlib
import contextvars
import io
import os
import stat
import struct
import warnings
import zipfile
import zlib
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

__all__ = ["check_regular_file", "zip_members", "read_member", "read_npy", "read_npz", "MAX_EXPANSION",
           "EXPANSION_FLOOR", "weight_budget", "charge_weight", "NonFiniteWeightsWarning", "warn_nonfinite"]

MAX_EXPANSION = 100          # inflated / stored bytes a member may reach ...
EXPANSION_FLOOR = 64 << 20   # ... once it inflates to more than this (small members may compress well)
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 1 << 16


def check_regular_file(path, what: str) -> str:
    """`path` as a str after checking it names a regular file (symbolic links followed).

    Raises FileNotFoundError, IsADirectoryError, or ValueError for anything else
    (a FIFO, a device, a socket), naming `what` the caller wanted to read.
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        p = os.fsdecode(p)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"No file found at {p!r}.") from None
    except OSError as exc:  # a symbolic-link loop, a name too long, no permission
        raise ValueError(f"Cannot read {what} from {p!r}: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{p!r} is a directory, not {what}.")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise ValueError(f"{p!r} is {kind}, not {what}; refusing to read it (it could block or never end).")
    return p


# What zipfile.ZipFile raises while it reads a damaged central directory: besides
# BadZipFile, an entry's "version needed" above 6.3 (NotImplementedError), a name
# flagged UTF-8 that is not (UnicodeDecodeError, a ValueError), a field cut short
# (struct.error, EOFError).
ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error, EOFError, OSError)


def open_zip(path: str, source: str, what: str) -> zipfile.ZipFile:
    """zipfile.ZipFile(path) for reading, or ValueError saying the file is not a readable `what`."""
    try:
        return zipfile.ZipFile(path)
    except ZIP_DIRECTORY_ERRORS as exc:
        raise ValueError(f"{source} is not {what}, or it is truncated or damaged ({os.path.getsize(path)} bytes; "
                         f"{type(exc).__name__}: {exc}).") from None


def zip_members(zf: zipfile.ZipFile, source: str, max_total: Optional[int] = None,
                max_expansion: Optional[int] = MAX_EXPANSION) -> List[zipfile.ZipInfo]:
    """The archive's members after the checks above (names distinct, no bomb, total bounded).

    max_total: the most bytes all members may inflate to together (None: only the
    per-member bound). max_expansion: the per-member ratio above EXPANSION_FLOOR
    (None: none; extraction to disk, bounded by max_total, uses that).
    """
    infos = zf.infolist()
    seen = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise ValueError(f"{source}: the archive holds two members named {name!r}; refusing an archive whose "
                             "content depends on which one a reader takes.")
        seen.add(name)
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\0" in name:
            raise ValueError(f"{source}: member name {name!r} is absolute or climbs out of the archive; refusing "
                             "an archive made to write elsewhere.")
        if info.flag_bits & 0x1:
            raise ValueError(f"{source}: member {name!r} is encrypted.")
        if max_expansion is not None and info.file_size > EXPANSION_FLOOR and \
                info.file_size > max_expansion * max(info.compress_size, 1):
            raise ValueError(f"{source}: member {name!r} declares {info.file_size} bytes but stores "
                             f"{info.compress_size} (more than {max_expansion}x); refusing a likely zip bomb.")
        total += info.file_size
        if max_total is not None and total > max_total:
            raise ValueError(f"{source}: the archive's members inflate to more than {max_total} bytes; refusing it.")
    return infos


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limit: Optional[int] = None) -> bytearray:
    """A member's bytes (at most its declared size; `limit` bounds that size too)."""
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{source}: member {info.filename!r} is {info.file_size} bytes, more than the {limit} "
                         "it may hold.")
    out = bytearray(info.file_size)
    try:
        with zf.open(info) as f:
            n = f.readinto(out)
            extra = f.read(1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
            ValueError) as exc:  # damaged data, CRC mismatch, an unknown compression method
        raise ValueError(f"{source}: member {info.filename!r} cannot be read ({type(exc).__name__}: {exc}).") from None
    if n != info.file_size or extra:
        raise ValueError(f"{source}: member {info.filename!r} holds {n} bytes, its header says {info.file_size}.")
    return out


def _npy_header(buf, where: str):
    """(shape, fortran_order, dtype, offset of the data) of an .npy image, checked."""
    if bytes(buf[:6]) != _NPY_MAGIC or len(buf) < 10:
        raise ValueError(f"{where} is not an .npy array.")
    major = buf[6]
    if major == 1:
        hlen, start = int.from_bytes(buf[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(buf[8:12], "little"), 12
    else:
        raise ValueError(f"{where}: unsupported .npy version {major}.")
    if hlen > _MAX_NPY_HEADER or start + hlen > len(buf):
        raise ValueError(f"{where}: its .npy header is damaged (declares {hlen} bytes).")
    try:
        text = bytes(buf[start:start + hlen]).decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
        shape, fortran, descr = header["shape"], header["fortran_order"], header["descr"]
        dtype = np.dtype(np.lib.format.descr_to_dtype(descr))
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError,
            UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: its .npy header is damaged ({type(exc).__name__}).") from None
    if not isinstance(header, dict) or not isinstance(fortran, bool) or not isinstance(shape, tuple) or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"{where}: its .npy header is damaged (shape {shape!r}).")
    if dtype.hasobject:
        raise ValueError(f"{where} holds Python objects (a pickle), not numbers; refusing to unpickle it.")
    return shape, fortran, dtype, start + hlen


def read_npy(buf, where: str) -> np.ndarray:
    """The array of an .npy image whose header describes exactly the bytes after it."""
    shape, fortran, dtype, offset = _npy_header(buf, where)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != len(buf) - offset:
        raise ValueError(f"{where}: its header declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
                         f"but {len(buf) - offset} bytes follow; the file is truncated or damaged.")
    try:
        flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    except ValueError as exc:  # a zero-size dtype, ...
        raise ValueError(f"{where}: unreadable array of {dtype} ({exc}).") from None
    return flat.reshape(shape, order="F" if fortran else "C")


def read_npz(path, source: str, max_total: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Every `.npy` entry of an .npz archive by name (without `.npy`), checked as above.

    max_total: the most bytes the entries may take together; default: what
    EXPANSION_FLOOR and MAX_EXPANSION allow for a file of this size.
    """
    size = os.path.getsize(path)
    if max_total is None:
        max_total = EXPANSION_FLOOR + MAX_EXPANSION * size
    out = {}
    with open_zip(path, source, "an .npz archive") as zf:
        for info in zip_members(zf, source, max_total):
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{source}: unexpected member {info.filename!r} (an .npz holds .npy entries only).")
            out[info.filename[:-4]] = read_npy(read_member(zf, info, source), f"{source}: entry {info.filename!r}")
    return out


def npy_bytes(a: np.ndarray) -> bytes:
    """The .npy image of `a` (for tests and the fuzzers that build files entry by entry)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Building a model from a file's config
# ---------------------------------------------------------------------------------------------

_BUDGET: contextvars.ContextVar = contextvars.ContextVar("fusedlstm_weight_budget", default=None)
BUDGET_SLACK = 1 << 20  # a config may declare this many bytes beyond what its file holds


@contextlib.contextmanager
def weight_budget(stored_bytes: int, source: str):
    """While building a model from `source`'s config, refuse weights beyond what the file holds.

    stored_bytes: the bytes of array data the file holds (its weights at most): the
    weights a config declares may reach twice that (float16 files load as float32)
    plus BUDGET_SLACK. Nested budgets: the innermost applies.
    """
    token = _BUDGET.set([2 * int(stored_bytes) + BUDGET_SLACK, 0, source])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def charge_weight(shape, itemsize: int, what: str) -> None:
    """Count a weight about to be allocated against the budget in force (none: nothing to check).

    Raises ValueError before allocation when the weights would pass it, or when a
    dimension is negative.
    """
    budget = _BUDGET.get()
    if budget is None:
        return
    count = 1
    for d in shape:
        if d < 0:
            raise ValueError(f"{budget[2]}: the config declares weight {what} of shape {tuple(shape)}; refusing it.")
        count *= d
    budget[1] += count * itemsize
    if budget[1] > budget[0]:
        raise ValueError(f"{budget[2]}: the config declares weights of more than {budget[1]} bytes (at {what}, shape "
                         f"{tuple(shape)}) but the file holds {(budget[0] - BUDGET_SLACK) // 2} bytes of data; "
                         "refusing to allocate them.")


def scalar(value, what: str, source: str, kind: str = "f"):
    """A file's stored scalar (a step count "i", a rate "f") as a Python number, or ValueError saying what it holds."""
    a = np.asarray(value)
    ok_kinds = "iu" if kind == "i" else "iuf"
    if a.size != 1 or a.dtype.kind not in ok_kinds:
        raise ValueError(f"{source}: {what} should be one {'integer' if kind == 'i' else 'number'}, but the file holds "
                         f"{a.dtype} of shape {a.shape}.")
    x = a.reshape(()).item()
    if kind == "i":
        if x < 0:
            raise ValueError(f"{source}: {what} should be >= 0, but the file holds {x}.")
        return int(x)
    return float(x)


class NonFiniteWeightsWarning(UserWarning):
    """A file's weights hold NaN or infinite values (they load; the model's outputs will be NaN)."""


def warn_nonfinite(named: Iterable[Tuple[str, np.ndarray]], source: str) -> None:
    """Warn (NonFiniteWeightsWarning) naming the weights about to be loaded that are not finite."""
    bad = [(name, int(a.size - np.count_nonzero(np.isfinite(a)))) for name, a in named
           if np.asarray(a).dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        listed = ", ".join(f"{name} ({n} values)" for name, n in bad[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{source}: weights hold NaN or infinite values: {listed}. They are loaded as they are; "
                      "the model's outputs will not be finite.", NonFiniteWeightsWarning, stacklevel=3)
