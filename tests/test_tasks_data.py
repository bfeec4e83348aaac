"""Data generators and encoders of the classic tasks (fusedlstm.tasks)."""

import numpy as np
import pytest

from fusedlstm import tasks as t
from fusedlstm import utils


# ---------------------------------------------------------------- sequences and one-hot


def test_generate_sequence_range_and_reproducibility(rng, seed):
    seq = t.generate_sequence(500, 7, rng=rng)
    assert seq.shape == (500,) and np.issubdtype(seq.dtype, np.integer)
    assert seq.min() >= 0 and seq.max() < 7
    assert len(np.unique(seq)) == 7, f"seed={seed}: 500 draws should hit all 7 values"
    np.testing.assert_array_equal(
        t.generate_sequence(20, 5, np.random.default_rng(seed)), t.generate_sequence(20, 5, np.random.default_rng(seed))
    )
    # Without rng: the library stream, so set_random_seed reproduces it.
    utils.set_random_seed(seed)
    a = t.generate_sequence(10, 100)
    utils.set_random_seed(seed)
    np.testing.assert_array_equal(a, t.generate_sequence(10, 100))


def test_one_hot_roundtrip_sequence_and_batch(rng, seed):
    seq = rng.integers(0, 10, size=8)
    enc = t.one_hot_encode(seq, 10)
    assert enc.shape == (8, 10) and enc.dtype == np.float32
    np.testing.assert_array_equal(enc.sum(axis=1), 1)
    np.testing.assert_array_equal(t.one_hot_decode(enc), seq, err_msg=f"seed={seed}")
    batch = rng.integers(0, 4, size=(3, 6))
    enc = t.one_hot_encode(batch, 4)
    assert enc.shape == (3, 6, 4)
    np.testing.assert_array_equal(t.one_hot_decode(enc), batch, err_msg=f"seed={seed}")
    # Decoding probabilities picks the most likely value.
    np.testing.assert_array_equal(t.one_hot_decode([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]), [1, 0])
    assert t.one_hot_encode([2], 3).tolist() == [[0, 0, 1]]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: t.one_hot_encode([0, 5], 5), ValueError, ["[0, 5)", "got 5"]),
        (lambda: t.one_hot_encode([-1], 5), ValueError, ["got -1"]),
        (lambda: t.one_hot_encode([0.5], 5), TypeError, ["`sequence`", "float64"]),
        (lambda: t.one_hot_encode(np.zeros((2, 2, 2), int), 5), ValueError, ["(T,) or (B, T)", "(2, 2, 2)"]),
        (lambda: t.one_hot_encode([1], 0), ValueError, ["`n_features`", "got 0"]),
        (lambda: t.one_hot_decode(5), ValueError, ["`encoded`"]),
        (lambda: t.generate_sequence(0, 5), ValueError, ["`length`", "got 0"]),
        (lambda: t.generate_sequence(3, 2.0), ValueError, ["`n_features`", "2.0"]),
        (lambda: t.generate_sequence(3, 2, rng=1), TypeError, ["`rng`", "int"]),
        (lambda: t.generate_example(5, 10, 5), ValueError, ["`out_index`", "[0, 5)", "got 5"]),
    ],
)
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value)


def test_generate_example_echoes_the_indexed_value(rng, seed):
    X, y = t.generate_example(5, 10, 2, rng=rng)
    assert X.shape == (1, 5, 10) and y.shape == (1, 10)
    assert X.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(y[0], X[0, 2], err_msg=f"seed={seed}")
    X, y = t.generate_batch(64, 50, 100, 2, rng=rng)
    assert X.shape == (64, 50, 100)
    np.testing.assert_array_equal(t.one_hot_decode(y), t.one_hot_decode(X)[:, 2], err_msg=f"seed={seed}")


# ---------------------------------------------------------------- sliding windows


def test_sliding_windows_counts_and_targets(rng, seed):
    seq = rng.integers(0, 100, size=25)
    for n_in, n_out, expected in ((6, 6, 20), (5, 2, 21), (5, 4, 21), (25, 1, 1), (1, 1, 25)):
        X, y = t.sliding_windows(seq, n_in, n_out)
        assert X.shape == (expected, n_in) and y.shape == (expected, n_out)
        for i in range(expected):
            np.testing.assert_array_equal(X[i], seq[i: i + n_in], err_msg=f"seed={seed}")
            np.testing.assert_array_equal(y[i], seq[i: i + n_out], err_msg=f"seed={seed}")


def test_sliding_windows_errors():
    with pytest.raises(ValueError, match="n_out=3 > n_in=2"):
        t.sliding_windows(range(10), 2, 3)
    with pytest.raises(ValueError, match="n_in=11 longer than the sequence \\(10 values\\)"):
        t.sliding_windows(np.arange(10), 11, 1)
    with pytest.raises(ValueError, match="expected shape \\(L,\\)"):
        t.sliding_windows(np.zeros((2, 3)), 1, 1)


def test_echo_windows_one_hot(rng, seed):
    X, y = t.echo_windows(25, 100, 5, 2, rng=rng)
    assert X.shape == (21, 5, 100) and y.shape == (21, 2, 100)
    np.testing.assert_array_equal(t.one_hot_decode(y), t.one_hot_decode(X)[:, :2], err_msg=f"seed={seed}")
    # Consecutive windows overlap by n_in - 1 values.
    ids = t.one_hot_decode(X)
    np.testing.assert_array_equal(ids[1:, :-1], ids[:-1, 1:], err_msg=f"seed={seed}")


# ---------------------------------------------------------------- characters


def test_text_encoding():
    ids = t.encode_text("Hello, World!\nzZ é1")
    assert ids.dtype == np.int32
    assert ids.tolist() == [8, 5, 12, 12, 15, 0, 0, 23, 15, 18, 12, 4, 0, 0, 26, 26, 0, 0, 0]
    assert t.decode_text(ids) == "hello  world  zz   "
    assert t.N_CHARS == 27
    # One id per character even where lower() would change the length.
    assert len(t.encode_text("İx")) == 2
    with pytest.raises(TypeError, match="`text`"):
        t.encode_text(b"bytes")
    with pytest.raises(ValueError, match="got 27"):
        t.decode_text([27])


def test_text_roundtrip_random(rng, seed):
    ids = rng.integers(0, 27, size=300)
    assert t.encode_text(t.decode_text(ids)).tolist() == ids.tolist(), f"seed={seed}"


def test_sonnets_windows():
    text = t.load_sonnets()
    assert len(text) == 95650 and text.startswith("THE SONNETS")
    ids = t.encode_text(text)
    X, y = t.char_windows(text)
    assert X.shape == (95610, 40) and y.shape == (95610,)
    assert X.dtype == np.int32
    np.testing.assert_array_equal(X[0], ids[:40])
    np.testing.assert_array_equal(X[-1], ids[-41:-1])
    np.testing.assert_array_equal(y, ids[40:])
    X2, Y2 = t.char_windows(ids, many_to_many=True)
    np.testing.assert_array_equal(X2, X)
    assert Y2.shape == (95610, 40)
    np.testing.assert_array_equal(Y2[:, :-1], X[:, 1:])
    np.testing.assert_array_equal(Y2[:, -1], y)


def test_char_windows_errors_and_batches(tmp_path):
    with pytest.raises(ValueError, match="text of 40 characters for window=40"):
        t.char_windows("a" * 40)
    with pytest.raises(ValueError, match="`window`"):
        t.char_windows("abc", window=0)
    X, y = t.char_windows("abcdefghij", window=3)
    batches = t.split_batches(X, y, 3)
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    assert [len(b[0]) for b in t.split_batches(X, y, 3, drop_remainder=True)] == [3, 3]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    with pytest.raises(ValueError, match="7 rows and y with 6 rows"):
        t.split_batches(X, y[:-1], 2)
    p = tmp_path / "t.txt"
    p.write_text("héllo wörld", encoding="utf-8")
    assert t.load_text(p) == "héllo wörld"
    with pytest.raises(FileNotFoundError):
        t.load_text(tmp_path / "missing.txt")


# ---------------------------------------------------------------- digit sums


def test_digitsum_dataset():
    nums, X, y = t.digitsum_dataset(3)
    assert nums.tolist() == list(range(100, 1000))
    assert X.shape == (900, 3, 10) and X.dtype == np.float32
    digits = t.one_hot_decode(X)
    np.testing.assert_array_equal(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2], nums)
    assert y.tolist() == [sum(map(int, str(n))) % 10 for n in nums]
    nums1, X1, y1 = t.digitsum_dataset(1)
    assert nums1.tolist() == list(range(10)) and y1.tolist() == list(range(10))
    with pytest.raises(ValueError, match="`digit_length`"):
        t.digitsum_dataset(0)


def test_split_indices_fixed_by_seed():
    tr, te = t.split_indices(900, seed=0)
    assert len(tr) == 720 and len(te) == 180
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(900))
    tr2, te2 = t.split_indices(900, seed=0)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, t.split_indices(900, seed=1)[1])
    with pytest.raises(ValueError, match="`test_fraction`"):
        t.split_indices(900, test_fraction=1.0)


# ---------------------------------------------------------------- addition


def test_addition_strings_golden():
    q, a = t.addition_strings([[3, 10], [10, 10], [1, 1]], [13, 20, 2])
    assert q == [" 3+10", "10+10", "  1+1"]
    assert a == ["13", "20", " 2"]
    assert t.addition_widths(2, 10) == (5, 2)
    assert t.addition_widths(3, 100) == (11, 3)
    assert t.ADDITION_ALPHABET == "0123456789+ " and len(t.ADDITION_ALPHABET) == 12


def test_addition_dataset(rng, seed):
    X, y, q, a = t.addition_dataset(500, rng=rng)
    assert X.shape == (500, 5, 12) and y.shape == (500, 2, 12)
    assert t.decode_addition(X) == q and t.decode_addition(y) == a
    for question, answer in zip(q, a):
        left, right = question.split("+")
        assert 1 <= int(left) <= 10 and 1 <= int(right) <= 10, f"seed={seed}: {question!r}"
        assert int(left) + int(right) == int(answer), f"seed={seed}"
    terms, sums = t.random_sum_pairs(2000, rng=rng)
    assert terms.min() == 1 and terms.max() == 10, f"seed={seed}"
    np.testing.assert_array_equal(sums, terms.sum(axis=1))


def test_addition_encoding_roundtrip_and_errors():
    ids = t.encode_addition([" 3+10", "10+10"])
    assert ids.tolist() == [[11, 3, 10, 1, 0], [1, 0, 10, 1, 0]]
    assert t.decode_addition(ids) == [" 3+10", "10+10"]
    with pytest.raises(ValueError, match="'-'"):
        t.encode_addition(["3-1"])
    with pytest.raises(ValueError, match="different lengths"):
        t.encode_addition(["1+1", "10+1"])
    with pytest.raises(TypeError, match="list of strings"):
        t.encode_addition("1+1")
