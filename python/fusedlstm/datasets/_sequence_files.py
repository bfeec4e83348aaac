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
import pickle
import zipfile

import numpy as np

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


def _read_npy(fp):
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError:
        fp.seek(0)
        version = np.lib.format.read_magic(fp)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(fp)
        elif version[0] in (2, 3):  # 3.0 differs from 2.0 only in the header's text encoding
            np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"Unsupported `.npy` file version: {version}.") from None
        return _ArraysOnlyUnpickler(fp).load()


def load_npz(path):
    """The arrays of an .npz file by name, object arrays unpickled safely."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as raw:
                        arrays[member[:-4]] = _read_npy(io.BytesIO(raw.read()))
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a readable dataset file ({type(exc).__name__}: {exc}).") from exc
    return arrays


def require(arrays, path, names):
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing} (it holds {sorted(arrays)}); is it the right file?")
    return [arrays[n] for n in names]


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
