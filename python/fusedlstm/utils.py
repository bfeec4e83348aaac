"""Keras-compatible helpers: one-hot targets, padding, and the library's random stream.

`to_categorical` and `pad_sequences` follow `keras.utils` (Keras 3) so a notebook's
data preparation ports unchanged; so do `get_file`, `PyDataset`/`Sequence`,
`timeseries_dataset_from_array` and `split_dataset`, re-exported from their modules. `set_random_seed` seeds one module-level numpy
Generator that weight initializers, dropout masks and `fit`'s shuffling all draw
from (through `_global_rng()`), so one call makes a whole run reproducible; it also
seeds numpy's legacy global state and Python's `random`, as Keras does, because
notebooks generate their data with those.
"""

import numbers
import random
import secrets
from typing import Optional

import numpy as np

# keras.utils names that live in their own modules (issue 25); they import nothing from here.
from .dataset_split import split_dataset
from .download import get_file
from .py_dataset import PyDataset, Sequence
from .timeseries import timeseries_dataset_from_array

__all__ = ["to_categorical", "pad_sequences", "set_random_seed", "get_file", "PyDataset", "Sequence",
           "timeseries_dataset_from_array", "split_dataset"]

# Created lazily from OS entropy: an unseeded run differs from the next one, as in Keras.
_rng: Optional[np.random.Generator] = None


def set_random_seed(seed: int) -> None:
    """Seed every random stream the library and a typical notebook use.

    Args:
        seed: a non-negative integer.

    >>> set_random_seed(7); a = _global_rng().random()
    >>> set_random_seed(7); a == _global_rng().random()
    True
    """
    global _rng
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "Received an invalid value for argument `seed`, expected an integer, "
            f"got {seed!r} of type {type(seed).__name__}."
        )
    seed = int(seed)
    if seed < 0:
        raise ValueError(
            "Received an invalid value for argument `seed`, expected a non-negative "
            f"integer, got {seed}."
        )
    random.seed(seed)
    # numpy's legacy seed only takes 32 bits; the Generator takes the full integer.
    np.random.seed(seed % 2**32)
    _rng = np.random.default_rng(seed)


def seeded_generator(seed, arg="seed") -> Optional[np.random.Generator]:
    """A layer's own Generator for `seed=` (None: the layer draws from the global one)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"Received an invalid value for argument `{arg}`, expected a non-negative integer or None, "
            f"got {seed!r} of type {type(seed).__name__}."
        )
    if seed < 0:
        raise ValueError(
            f"Received an invalid value for argument `{arg}`, expected a non-negative integer or None, got {seed}."
        )
    return np.random.default_rng(int(seed))


def _global_rng() -> np.random.Generator:
    """The Generator that initializers, dropout and shuffling draw from."""
    global _rng
    if _rng is None:
        _rng = np.random.default_rng(secrets.randbits(64))
    return _rng


def to_categorical(y, num_classes: Optional[int] = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer class ids (`keras.utils.to_categorical`).

    Args:
        y: array-like of integer class ids in [0, num_classes). A trailing axis of
            size 1 is dropped first, as Keras does ((N, 1) -> (N, num_classes)).
        num_classes: width of the one-hot axis; max(y) + 1 when None.
        dtype: dtype of the result.

    Returns:
        An array of shape y.shape + (num_classes,).

    >>> to_categorical([0, 2], 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    arr = np.asarray(y)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            "Received an invalid value for argument `y`, expected integer class ids, "
            f"got an array of dtype {arr.dtype}."
        )
    if np.issubdtype(arr.dtype, np.floating):
        # Keras casts floats to int64; we only accept floats that are whole numbers
        # so that e.g. probabilities passed by mistake do not become class 0.
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                "Received an invalid value for argument `y`, expected integer class "
                f"ids, got non-integral floats ({arr[pos]} at position {pos})."
            )
    ids = arr.astype(np.int64)
    shape = ids.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    ids = ids.reshape(-1)
    if num_classes is not None:
        if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(
                "Received an invalid value for argument `num_classes`, expected a "
                f"positive integer, got {num_classes!r}."
            )
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(
                "Received an invalid value for argument `num_classes`, expected a "
                f"positive integer, got {num_classes}."
            )
    elif ids.size == 0:
        raise ValueError(
            "Received an empty `y` and num_classes=None: cannot infer the number of "
            "classes; pass `num_classes`."
        )
    else:
        num_classes = int(ids.max()) + 1
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        bad = ids[(ids < 0) | (ids >= num_classes)][0]
        raise ValueError(
            "Received an invalid value for argument `y`, expected class ids in "
            f"[0, {num_classes}), got {bad}."
        )
    out = np.zeros((ids.size, num_classes), dtype=dtype)
    out[np.arange(ids.size), ids] = 1
    return out.reshape(tuple(shape) + (num_classes,))


def pad_sequences(
    sequences,
    maxlen: Optional[int] = None,
    dtype="int32",
    padding: str = "pre",
    truncating: str = "pre",
    value=0.0,
) -> np.ndarray:
    """Pad (and truncate) sequences to one length (`keras.utils.pad_sequences`).

    Args:
        sequences: a list of sequences; each a list or array whose items may
            themselves be arrays (all of one shape).
        maxlen: output length; the longest sequence's length when None.
        dtype: dtype of the result.
        padding: 'pre' or 'post': which side receives the padding.
        truncating: 'pre' or 'post': which side loses values beyond maxlen.
        value: the padding value.

    Returns:
        An array (len(sequences), maxlen) + item shape.

    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist()
    [[2, 3], [0, 4]]
    """
    if padding not in ("pre", "post"):
        raise ValueError(
            f"Received an invalid value for argument `padding`, expected 'pre' or 'post', got {padding!r}."
        )
    if truncating not in ("pre", "post"):
        raise ValueError(
            "Received an invalid value for argument `truncating`, expected 'pre' or "
            f"'post', got {truncating!r}."
        )
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(
            "Received an invalid value for argument `sequences`, expected a list of "
            f"sequences, got {type(sequences).__name__}."
        )
    lengths = []
    item_shape = None
    for idx, s in enumerate(sequences):
        try:
            lengths.append(len(s))
        except TypeError:
            raise ValueError(
                "Received an invalid value for argument `sequences`, expected a list of "
                f"iterables, got a non-iterable {s!r} at position {idx}."
            ) from None
        if item_shape is None and len(s):
            item_shape = np.asarray(s).shape[1:]
    item_shape = item_shape or ()
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    elif isinstance(maxlen, (bool, np.bool_)) or not isinstance(maxlen, numbers.Integral) or maxlen < 0:
        raise ValueError(
            "Received an invalid value for argument `maxlen`, expected a non-negative "
            f"integer or None, got {maxlen!r}."
        )
    maxlen = int(maxlen)
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"Received an invalid value for argument `dtype`, expected a NumPy dtype such as 'int32', got {dtype!r}."
        ) from None
    is_text = np.issubdtype(np_dtype, np.str_) or np.issubdtype(np_dtype, np.bytes_)
    if np_dtype != object and (value is None or not isinstance(value, (numbers.Number, str, bytes, np.generic))):
        raise TypeError(
            f"Received an invalid value for argument `value`, expected a number (or a string with a text dtype), "
            f"got {value!r}."
        )
    if isinstance(value, str) and dtype is not object and not is_text:
        raise ValueError(
            f"Received a string `value` {value!r} with dtype {dtype!r}: use dtype=object "
            "for variable-length strings."
        )
    out = np.full((len(lengths), maxlen) + tuple(item_shape), value, dtype=dtype)
    if maxlen == 0:
        return out
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        try:
            kept = np.asarray(kept, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Received an invalid value for argument `sequences`: sequence {idx} cannot be stored with "
                f"dtype {np_dtype} ({exc})."
            ) from None
        if kept.shape[1:] != tuple(item_shape):
            raise ValueError(
                f"Received sequences with items of different shapes: sequence {idx} has "
                f"items of shape {kept.shape[1:]}, expected {tuple(item_shape)} (the first "
                "non-empty sequence's)."
            )
        if padding == "post":
            out[idx, : len(kept)] = kept
        else:
            out[idx, -len(kept):] = kept
    return out
