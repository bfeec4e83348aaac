"""fusedlstm.utils: Keras's to_categorical / pad_sequences semantics and the seeded stream."""

import os
import random

import numpy as np
import pytest

from conftest import require
from fusedlstm import utils
from fusedlstm.utils import pad_sequences, set_random_seed, to_categorical


# ---------------------------------------------------------------- to_categorical


def test_to_categorical_golden():
    out = to_categorical([0, 2, 1], 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_to_categorical_infers_classes_and_drops_trailing_unit_axis(rng, seed):
    y = rng.integers(0, 7, size=(5, 4, 1))
    out = to_categorical(y)
    k = int(y.max()) + 1
    assert out.shape == (5, 4, k), f"seed={seed}"
    np.testing.assert_array_equal(out.argmax(-1), y[..., 0], err_msg=f"seed={seed}")
    np.testing.assert_array_equal(out.sum(-1), 1, err_msg=f"seed={seed}")


def test_to_categorical_dtype_and_whole_floats():
    out = to_categorical(np.array([1.0, 0.0]), num_classes=2, dtype="int64")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


@pytest.mark.parametrize(
    "y, num_classes, exc, words",
    [
        ([0, 3], 3, ValueError, ["`y`", "[0, 3)", "got 3"]),
        ([-1, 0], 2, ValueError, ["`y`", "got -1"]),
        ([0, 1], 0, ValueError, ["`num_classes`", "got 0"]),
        ([0, 1], 2.5, TypeError, ["`num_classes`", "2.5"]),
        ([0.5, 1], 2, ValueError, ["`y`", "non-integral"]),
        (["a"], 2, TypeError, ["`y`", "dtype"]),
        ([], None, ValueError, ["num_classes"]),
    ],
)
def test_to_categorical_rejects(y, num_classes, exc, words):
    with pytest.raises(exc) as info:
        to_categorical(y, num_classes)
    for w in words:
        assert w in str(info.value)


# ---------------------------------------------------------------- pad_sequences


def test_pad_sequences_golden():
    seqs = [[1, 2, 3], [4], [5, 6]]
    np.testing.assert_array_equal(pad_sequences(seqs), [[1, 2, 3], [0, 0, 4], [0, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[2, 3], [0, 4], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"), [[1, 2], [0, 4], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=4, value=-1), [[-1, 1, 2, 3], [-1, -1, -1, 4], [-1, -1, 5, 6]])
    assert pad_sequences(seqs).dtype == np.int32
    assert pad_sequences(seqs, dtype="float32").dtype == np.float32


def test_pad_sequences_vector_items_and_empty(rng, seed):
    seqs = [rng.random((n, 3)).astype(np.float32) for n in (2, 0, 4)]
    out = pad_sequences(seqs, dtype="float32", padding="post")
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out[0, :2], seqs[0], err_msg=f"seed={seed}")
    np.testing.assert_array_equal(out[0, 2:], 0)
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_array_equal(out[2], seqs[2], err_msg=f"seed={seed}")
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(sequences=[[1], [2]], padding="middle"), ValueError, "`padding`"),
        (dict(sequences=[[1], [2]], truncating="x"), ValueError, "`truncating`"),
        (dict(sequences=[[1], 2]), ValueError, "position 1"),
        (dict(sequences=[[1], [2]], maxlen=-1), ValueError, "`maxlen`"),
        (dict(sequences=5), TypeError, "`sequences`"),
        (dict(sequences=[[[1, 2]], [[1, 2, 3]]]), ValueError, "sequence 1"),
        (dict(sequences=[[1]], value="x"), ValueError, "dtype=object"),
    ],
)
def test_pad_sequences_rejects(kwargs, exc, word):
    with pytest.raises(exc, match=None) as info:
        pad_sequences(**kwargs)
    assert word in str(info.value)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", extra="compare")


@pytest.mark.keras
def test_matches_keras(rng, seed):
    keras = _keras()
    y = rng.integers(0, 5, size=(6, 1))
    np.testing.assert_array_equal(to_categorical(y, 5), keras.utils.to_categorical(y, 5), err_msg=f"seed={seed}")
    seqs = [list(rng.integers(1, 9, size=n)) for n in rng.integers(0, 7, size=8)]
    for kw in (dict(), dict(maxlen=3), dict(maxlen=4, padding="post", truncating="post", value=-2)):
        np.testing.assert_array_equal(
            pad_sequences(seqs, **kw), keras.utils.pad_sequences(seqs, **kw), err_msg=f"seed={seed} {kw}"
        )


# ---------------------------------------------------------------- seeding


def test_set_random_seed_reproduces_every_stream():
    set_random_seed(123)
    a = (utils._global_rng().random(3), np.random.rand(2), random.random())
    set_random_seed(123)
    b = (utils._global_rng().random(3), np.random.rand(2), random.random())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    set_random_seed(124)
    assert not np.array_equal(utils._global_rng().random(3), a[0])


def test_global_rng_is_one_shared_generator():
    set_random_seed(5)
    g = utils._global_rng()
    assert isinstance(g, np.random.Generator)
    assert utils._global_rng() is g


def test_large_seed_accepted():
    set_random_seed(2**40 + 3)
    x = utils._global_rng().random()
    set_random_seed(2**40 + 3)
    assert utils._global_rng().random() == x


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)])
def test_set_random_seed_rejects(seed, exc):
    with pytest.raises(exc, match="`seed`"):
        set_random_seed(seed)
