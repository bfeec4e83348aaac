"""Data for the classic LSTM tasks: random sequences, sliding windows, text
windows, digit sums and addition problems.

Every generator takes `rng` (a numpy Generator); without one it draws from the
library's stream (`fusedlstm.utils.set_random_seed` makes a run repeatable).
"""

import importlib.resources
import numbers

import numpy as np

from .. import utils
from .encoders import ADDITION_ALPHABET, N_CHARS, encode_addition, encode_text, one_hot_encode

__all__ = [
    "generate_sequence",
    "generate_example",
    "generate_batch",
    "sliding_windows",
    "echo_windows",
    "load_sonnets",
    "load_text",
    "char_windows",
    "split_batches",
    "digitsum_dataset",
    "split_indices",
    "random_sum_pairs",
    "addition_widths",
    "addition_strings",
    "addition_dataset",
    "MOTIF",
    "motif_order_dataset",
]


def _int(name, value, low=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {what}, got {value!r}.")
    return int(value)


def _rng(rng):
    if rng is None:
        return utils._global_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "Received an invalid value for argument `rng`, expected a numpy.random.Generator "
            f"or None, got {type(rng).__name__}."
        )
    return rng


# ---------------------------------------------------------------- echo tasks


def generate_sequence(length, n_features, rng=None):
    """`length` random ints in [0, n_features) (int64, shape (length,))."""
    length = _int("length", length)
    n_features = _int("n_features", n_features)
    return _rng(rng).integers(0, n_features, size=length)


def generate_batch(batch_size, length, n_features, out_index, rng=None):
    """Echo problems: X (B, length, n_features) one-hot random sequences, y (B,
    n_features) the one-hot value each sequence has at `out_index`."""
    batch_size = _int("batch_size", batch_size)
    length = _int("length", length)
    n_features = _int("n_features", n_features)
    out_index = _int("out_index", out_index, low=0)
    if out_index >= length:
        raise ValueError(
            f"Received an invalid value for argument `out_index`, expected an index in [0, {length}) "
            f"(the sequence length), got {out_index}."
        )
    seqs = _rng(rng).integers(0, n_features, size=(batch_size, length))
    X = one_hot_encode(seqs, n_features)
    return X, X[:, out_index, :].copy()


def generate_example(length, n_features, out_index, rng=None):
    """One echo problem: X (1, length, n_features), y (1, n_features)."""
    return generate_batch(1, length, n_features, out_index, rng=rng)


def sliding_windows(sequence, n_in, n_out):
    """Every window of n_in consecutive values (stride 1) and its first n_out values.

    A sequence of length L gives L - n_in + 1 windows: X (W, n_in), y (W, n_out).

    >>> X, y = sliding_windows([1, 2, 3, 4], 3, 2)
    >>> X.tolist(), y.tolist()
    ([[1, 2, 3], [2, 3, 4]], [[1, 2], [2, 3]])
    """
    seq = np.asarray(sequence)
    if seq.ndim != 1:
        raise ValueError(f"Received an invalid value for argument `sequence`, expected shape (L,), got {seq.shape}.")
    n_in = _int("n_in", n_in)
    n_out = _int("n_out", n_out)
    if n_out > n_in:
        raise ValueError(
            f"Received n_out={n_out} > n_in={n_in}: the target is the first n_out values of "
            "each input window, so n_out must be <= n_in."
        )
    if n_in > len(seq):
        raise ValueError(
            f"Received n_in={n_in} longer than the sequence ({len(seq)} values): expected n_in <= {len(seq)}."
        )
    X = np.lib.stride_tricks.sliding_window_view(seq, n_in).copy()
    return X, X[:, :n_out].copy()


def echo_windows(length, n_features, n_in, n_out, rng=None):
    """A fresh random sequence cut into its windows, one-hot: X (W, n_in, n_features),
    y (W, n_out, n_features), W = length - n_in + 1."""
    X, y = sliding_windows(generate_sequence(length, n_features, rng), n_in, n_out)
    return one_hot_encode(X, n_features), one_hot_encode(y, n_features)


# ---------------------------------------------------------------- characters


def load_sonnets():
    """Shakespeare's sonnets (95,650 characters), shipped with the package."""
    # One joinpath argument at a time: Python 3.9's Traversable takes only one.
    return importlib.resources.files("fusedlstm").joinpath("data").joinpath("sonnets.txt").read_text(encoding="utf-8")


def load_text(path):
    """A UTF-8 text file's contents; OSError/UnicodeDecodeError propagate with the path."""
    with open(path, encoding="utf-8") as f:
        return f.read()


def char_windows(text_or_ids, window=40, many_to_many=False):
    """All windows of `window` chars, stride 1, and their targets.

    Args:
        text_or_ids: a str (encoded with encode_text) or ids in [0, 27).
        window: window length.
        many_to_many: False -> y (N,) the char after each window; True -> y
            (N, window) the window shifted by one char.

    Returns:
        X int32 (N, window), y int32; N = len(text) - window.
    """
    ids = encode_text(text_or_ids) if isinstance(text_or_ids, str) else np.asarray(text_or_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(
            "Received an invalid value for argument `text_or_ids`, expected a str or 1-D int ids, "
            f"got shape {ids.shape} dtype {ids.dtype}."
        )
    window = _int("window", window)
    if len(ids) <= window:
        raise ValueError(
            f"Received a text of {len(ids)} characters for window={window}: expected more than "
            f"{window} characters."
        )
    if ids.size and (ids.min() < 0 or ids.max() >= N_CHARS):
        raise ValueError(f"Received ids outside [0, {N_CHARS}) in argument `text_or_ids`.")
    ids = ids.astype(np.int32)
    views = np.lib.stride_tricks.sliding_window_view(ids, window + 1)
    X = views[:, :window].copy()
    y = views[:, 1:].copy() if many_to_many else views[:, window].copy()
    return X, y


def split_batches(X, y, batch_size, drop_remainder=False):
    """Consecutive (X, y) batches of `batch_size` rows; the last may be shorter
    unless drop_remainder."""
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"Received X with {len(X)} rows and y with {len(y)} rows: expected the same number.")
    batch_size = _int("batch_size", batch_size)
    stop = len(X) - len(X) % batch_size if drop_remainder else len(X)
    return [(X[i: i + batch_size], y[i: i + batch_size]) for i in range(0, stop, batch_size)]


# ---------------------------------------------------------------- digit sums


def digitsum_dataset(digit_length=3):
    """Every number with `digit_length` digits, its digits one-hot, and the sum of
    its digits mod 10.

    Returns:
        numbers (N,), X float32 (N, digit_length, 10), y int64 (N,); N = 9·10^(L-1)
        (900 for three digits).
    """
    digit_length = _int("digit_length", digit_length)
    if digit_length > 6:
        raise ValueError(
            f"Received digit_length={digit_length}: expected at most 6 (the dataset holds every "
            "such number)."
        )
    nums = np.arange(10 ** (digit_length - 1) if digit_length > 1 else 0, 10**digit_length)
    powers = 10 ** np.arange(digit_length - 1, -1, -1)
    digits = (nums[:, None] // powers) % 10
    return nums, one_hot_encode(digits, 10), digits.sum(axis=1) % 10


def split_indices(n, test_fraction=0.2, seed=0):
    """A fixed train/test split of range(n) by `seed`: (train_idx, test_idx), the
    test part round(n * test_fraction) long (720/180 for 900)."""
    n = _int("n", n)
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"Received an invalid value for argument `test_fraction`, expected a number in (0, 1), got {test_fraction!r}."
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# ---------------------------------------------------------------- addition


def random_sum_pairs(n_examples, n_numbers=2, largest=10, rng=None):
    """Random problems: terms (N, n_numbers) ints in [1, largest], sums (N,)."""
    n_examples = _int("n_examples", n_examples)
    n_numbers = _int("n_numbers", n_numbers)
    largest = _int("largest", largest)
    terms = _rng(rng).integers(1, largest + 1, size=(n_examples, n_numbers))
    return terms, terms.sum(axis=1)


def addition_widths(n_numbers=2, largest=10):
    """(input width, output width): '10+10' -> 5 and '20' -> 2 for two terms up to 10."""
    digits = len(str(largest))
    return n_numbers * digits + n_numbers - 1, len(str(n_numbers * largest))


def addition_strings(terms, sums, n_numbers=2, largest=10):
    """Problems as right-aligned strings: ([' 3+10', ...], ['13', ...])."""
    in_width, out_width = addition_widths(n_numbers, largest)
    questions = ["+".join(str(int(t)) for t in row).rjust(in_width) for row in np.asarray(terms)]
    answers = [str(int(s)).rjust(out_width) for s in np.asarray(sums)]
    return questions, answers


def addition_dataset(n_examples, n_numbers=2, largest=10, rng=None):
    """One-hot addition problems: X float32 (N, in_width, 12), y float32 (N, out_width, 12),
    and the (questions, answers) strings."""
    terms, sums = random_sum_pairs(n_examples, n_numbers, largest, rng)
    questions, answers = addition_strings(terms, sums, n_numbers, largest)
    X = one_hot_encode(encode_addition(questions), len(ADDITION_ALPHABET))
    y = one_hot_encode(encode_addition(answers), len(ADDITION_ALPHABET))
    return X, y, questions, answers


# ---------------------------------------------------------------- motif order

# The planted pattern (symbols 0-9); its mirror image is the second motif, so both motifs hold
# the same symbols and only their order inside a window tells them apart.
MOTIF = (3, 7, 1, 5)


def motif_order_dataset(n_examples, length=60, symbols=10, rng=None):
    """Random symbol sequences with the motif A = MOTIF and its mirror image B = reversed(A) each
    planted once at random, non-overlapping places; the label says which comes first.

    Every sequence holds A and B exactly once (noise that happens to spell either is redrawn),
    and the two orders are equally likely: the symbol counts, and which motifs occur, carry no
    information about the label; only where they occur does.

    Returns:
        X float32 (N, length, symbols) one-hot, y int64 (N,) (1: A before B), and the start
        positions (N, 2) of A and B.
    """
    n_examples = _int("n_examples", n_examples)
    length = _int("length", length)
    symbols = _int("symbols", symbols)
    k = len(MOTIF)
    if symbols <= max(MOTIF):
        raise ValueError(f"Received symbols={symbols}: the motif uses symbols up to {max(MOTIF)}, expected more than that.")
    if length < 2 * k:
        raise ValueError(f"Received length={length}: two motifs of {k} steps need at least {2 * k} steps.")
    rng = _rng(rng)
    a, b = np.array(MOTIF), np.array(MOTIF[::-1])
    seqs = np.empty((n_examples, length), np.int64)
    starts = np.empty((n_examples, 2), np.int64)
    y = (rng.random(n_examples) < 0.5).astype(np.int64)
    for i in range(n_examples):
        while True:
            s = rng.integers(0, symbols, size=length)
            first, second = sorted(rng.choice(length - 2 * k + 2, size=2, replace=False))
            second += k - 1  # non-overlapping: the second window starts after the first ends
            pa, pb = (first, second) if y[i] else (second, first)
            s[pa:pa + k], s[pb:pb + k] = a, b
            windows = np.lib.stride_tricks.sliding_window_view(s, k)
            if (windows == a).all(axis=1).sum() == 1 and (windows == b).all(axis=1).sum() == 1:
                break
        seqs[i], starts[i] = s, (pa, pb)
    return one_hot_encode(seqs, symbols), y, starts
