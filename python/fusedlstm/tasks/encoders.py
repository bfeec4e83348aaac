"""Encodings the classic tasks use: one-hot vectors, characters, addition strings.

Characters: the text is lowercased; letters a-z become ids 1..26 and everything
else (spaces, punctuation, newlines, digits, non-ASCII letters) becomes 0, shown
as a space when decoding. 27 symbols keep the char models small, as in the
notebooks these tasks come from.

Addition: '3+10' right-aligned with spaces to its fixed width ('  3+10'), digits,
'+' and ' ' from a 12-symbol alphabet.
"""

import numbers

import numpy as np

__all__ = [
    "one_hot_encode",
    "one_hot_decode",
    "N_CHARS",
    "encode_text",
    "decode_text",
    "ADDITION_ALPHABET",
    "encode_addition",
    "decode_addition",
]


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a positive integer, got {value!r}.")
    return int(value)


def one_hot_encode(sequence, n_features, dtype="float32"):
    """One-hot encode integer values in [0, n_features).

    Args:
        sequence: ints of shape (T,) for one sequence or (B, T) for a batch.
        n_features: width of the one-hot axis.

    Returns:
        float32 (T, n_features) or (B, T, n_features).

    >>> one_hot_encode([1, 0], 3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    n_features = _positive_int("n_features", n_features)
    ids = np.asarray(sequence)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"Received an invalid value for argument `sequence`, expected integers, got dtype {ids.dtype}.")
    ids = ids.astype(np.int64)
    if ids.ndim not in (1, 2):
        raise ValueError(
            "Received an invalid value for argument `sequence`, expected shape (T,) or "
            f"(B, T), got {ids.shape}."
        )
    if ids.size and (ids.min() < 0 or ids.max() >= n_features):
        bad = ids[(ids < 0) | (ids >= n_features)].flat[0]
        raise ValueError(
            f"Received an invalid value in `sequence`, expected values in [0, {n_features}), got {bad}."
        )
    out = np.zeros(ids.shape + (n_features,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def one_hot_decode(encoded):
    """The index of the largest entry along the last axis (so it also decodes
    predicted probabilities): (T, n) -> (T,), (B, T, n) -> (B, T)."""
    arr = np.asarray(encoded)
    if arr.ndim < 1 or arr.shape[-1] == 0:
        raise ValueError(
            "Received an invalid value for argument `encoded`, expected an array with a "
            f"non-empty last (feature) axis, got shape {arr.shape}."
        )
    return arr.argmax(axis=-1)


# ---------------------------------------------------------------- characters

N_CHARS = 27
_CHAR_TABLE = np.zeros(128, dtype=np.int32)
_CHAR_TABLE[ord("a"): ord("z") + 1] = np.arange(1, 27)
_CHAR_TABLE[ord("A"): ord("Z") + 1] = np.arange(1, 27)
_ID_TO_CHAR = np.array([" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)])


def encode_text(text):
    """Map a-z (either case) to 1..26, anything else to 0: one int32 id per char.

    >>> encode_text("Ab, z").tolist()
    [1, 2, 0, 0, 26]
    """
    if not isinstance(text, str):
        raise TypeError(f"Received an invalid value for argument `text`, expected str, got {type(text).__name__}.")
    # The table folds case itself: str.lower() can change the length ('İ').
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ascii_codes = np.where(codes < 128, codes, 0)
    return _CHAR_TABLE[ascii_codes]


def decode_text(ids):
    """Ids 0..26 back to text; 0 is shown as a space."""
    arr = np.asarray(ids)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Received an invalid value for argument `ids`, expected integers, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= N_CHARS):
        bad = arr[(arr < 0) | (arr >= N_CHARS)][0]
        raise ValueError(f"Received an invalid value in `ids`, expected values in [0, {N_CHARS}), got {bad}.")
    return "".join(_ID_TO_CHAR[arr])


# ---------------------------------------------------------------- addition strings

ADDITION_ALPHABET = "0123456789+ "
_ADD_INDEX = {c: i for i, c in enumerate(ADDITION_ALPHABET)}


def encode_addition(strings):
    """Equal-length strings over ADDITION_ALPHABET -> int ids (N, L)."""
    if isinstance(strings, str):
        raise TypeError("Received a single str for argument `strings`, expected a list of strings.")
    strings = list(strings)
    if not strings:
        return np.zeros((0, 0), dtype=np.int64)
    width = len(strings[0])
    out = np.empty((len(strings), width), dtype=np.int64)
    for row, s in enumerate(strings):
        if len(s) != width:
            raise ValueError(
                f"Received strings of different lengths: {s!r} has {len(s)} characters, "
                f"expected {width} (the first string's)."
            )
        for col, ch in enumerate(s):
            try:
                out[row, col] = _ADD_INDEX[ch]
            except KeyError:
                raise ValueError(
                    f"Received {ch!r} in {s!r}: expected only characters of {ADDITION_ALPHABET!r}."
                ) from None
    return out


def decode_addition(ids):
    """Int ids (N, L) or one-hot/probabilities (N, L, 12) -> list of strings."""
    arr = np.asarray(ids)
    if arr.ndim == 3:
        arr = one_hot_decode(arr)
    if arr.ndim != 2:
        raise ValueError(
            "Received an invalid value for argument `ids`, expected shape (N, L) or "
            f"(N, L, {len(ADDITION_ALPHABET)}), got {np.asarray(ids).shape}."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= len(ADDITION_ALPHABET)):
        raise ValueError(f"Received ids outside [0, {len(ADDITION_ALPHABET)}) in argument `ids`.")
    return ["".join(ADDITION_ALPHABET[i] for i in row) for row in arr]
