"""What the imdb and reuters loaders share: a pickle-safe .npz reader and the
re-indexing of word-id sequences (keras/src/datasets/{npz_utils,imdb,reuters}.py).

The datasets store ragged sequences as object arrays, which NumPy can only keep as
a pickle stream. `np.load(allow_pickle=True)` would run whatever a tampered file's
pickle asks for; `load_npz` unpickles with a loader that knows only the three
globals NumPy needs to rebuild an array and refuses anything else (as Keras 3.15.1
does).
"""

import io
import numbers
import os
import pickle
import struct
import zipfile

import numpy as np

from .. import untrusted

_ALLOWED_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
})


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to deserialize `{module}.{name}` while loading a Keras dataset. The file may be "
            "corrupted or malicious.")


_UNPICKLE_DAMAGE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                    OverflowError, RecursionError, MemoryError, UnicodeDecodeError, struct.error)


def _read_npy(buf, where):
    """One .npy entry: plain arrays through fusedlstm.untrusted (header checked against the
    bytes), object arrays through the restricted unpickler."""
    fp = io.BytesIO(bytes(buf))
    try:
        version = np.lib.format.read_magic(fp)
        if version[0] == 1:
            _, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version[0] in (2, 3):  # 3.0 differs from 2.0 only in the header's text encoding
            _, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, KeyError, RecursionError, MemoryError) as exc:
        raise ValueError(f"{where}: its .npy header is damaged ({type(exc).__name__}: {str(exc)[:200]}).") from None
    if not dtype.hasobject:
        return untrusted.read_npy(buf, where)
    try:
        out = _ArraysOnlyUnpickler(fp).load()
    except _UNPICKLE_DAMAGE as exc:
        raise ValueError(f"{where}: its pickled array is damaged or refused ({type(exc).__name__}: "
                         f"{str(exc)[:200]}).") from None
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{where}: its pickle holds a {type(out).__name__}, expected an array.")
    return out


def load_npz(path):
    """The arrays of an .npz file by name, object arrays unpickled safely; the archive checked
    by fusedlstm.untrusted first (no zip bomb, no duplicate or lying entries)."""
    source = untrusted.check_regular_file(path, "a dataset file")
    size = os.path.getsize(source)
    arrays = {}
    try:
        with untrusted.open_zip(source, source, "a readable dataset file (an .npz archive)") as archive:
            for info in untrusted.zip_members(archive, source,
                                              untrusted.EXPANSION_FLOOR + untrusted.MAX_EXPANSION * size):
                if info.filename.endswith(".npy"):
                    buf = untrusted.read_member(archive, info, source)
                    arrays[info.filename[:-4]] = _read_npy(buf, f"{source}: entry {info.filename!r}")
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{source} is not a readable dataset file ({type(exc).__name__}: {exc}).") from None
    return arrays


def _ids(x, where):
    """x as a list of ints (a sequence of word ids), or ValueError."""
    try:
        arr = np.asarray(x.tolist() if isinstance(x, np.ndarray) else list(x))
    except (TypeError, ValueError):
        raise ValueError(f"{where} is a {type(x).__name__}, expected a list of word ids.") from None
    if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= 2 ** 31)):
        raise ValueError(f"{where} holds {str(arr.tolist())[:80]}, expected word ids (integers from 0 to 2**31-1).")
    return arr.astype(np.int64).tolist()


def require(arrays, path, names):
    """The named arrays; every x* a 1-D sequence of word-id lists and every y* as many integer
    labels (a damaged or forged file is refused here, not deep in the re-indexing)."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing} (it holds {sorted(arrays)}); is it the right file?")
    out = []
    for n in names:
        a = arrays[n]
        if n.startswith("x"):
            if a.ndim not in (1, 2) or (a.ndim == 2 and a.dtype.kind not in "iu"):
                raise ValueError(f"{path}: {n} has shape {a.shape} and dtype {a.dtype}, expected sequences of word ids.")
            a = ragged([_ids(x, f"{path}: {n}[{i}]") for i, x in enumerate(a)])
        else:
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise ValueError(f"{path}: {n} has shape {a.shape} and dtype {a.dtype}, expected 1-D integer labels.")
            a = a.astype(np.int64)
        out.append(a)
    for xn, yn in zip(names[0::2], names[1::2]):
        xa, ya = out[names.index(xn)], out[names.index(yn)]
        if len(xa) != len(ya):
            raise ValueError(f"{path}: {xn} holds {len(xa)} sequences but {yn} {len(ya)} labels.")
    return out


def remove_long_seq(maxlen, seq, label):
    """Keep the sequences strictly shorter than maxlen (keras python_utils.remove_long_seq)."""
    new_seq, new_label = [], []
    for x, y in zip(seq, label):
        if len(x) < maxlen:
            new_seq.append(x)
            new_label.append(y)
    return new_seq, new_label


def shift(xs, start_char, index_from):
    """Prepend start_char and add index_from to every id, as the loaders do."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [[w for w in x] for x in xs]


def limit_vocabulary(xs, num_words, skip_top, oov_char):
    """Ids outside [skip_top, num_words) become oov_char, or are dropped when it is None."""
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def ragged(lists):
    """A 1-D object array of lists (np.array would make a 2-D one when all lengths agree)."""
    out = np.empty(len(lists), dtype=object)
    out[:] = lists
    return out


def check_int(name, value, allow_none=True, minimum=None):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected an integer"
                        f"{' or None' if allow_none else ''}, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected an integer >= {minimum}, "
                         f"got {value!r}.")
    return int(value)
