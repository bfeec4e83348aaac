"""fusedlstm.datasets.imdb / reuters: Keras 3.15.1's files, origins, hashes and re-indexing.

Small synthetic files in the exact format of Keras's (an .npz of object arrays of
id lists, a JSON word index) are placed in a temporary KERAS_HOME/datasets. Both
loaders fetch through get_file, which would try to download the real file because
the synthetic one's hash differs: each test replaces get_file (ours and Keras's)
by a stand-in that checks the arguments, Keras's origin and hash, and returns the
cached path. Real Keras then loads the same file with the same arguments, and the
results must be identical. Never a network.
"""

import json
import os

import numpy as np
import pytest

from conftest import require
from fusedlstm import download
from fusedlstm.datasets import imdb, reuters

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def ragged(lists):
    out = np.empty(len(lists), dtype=object)
    out[:] = [list(map(int, x)) for x in lists]
    return out


def sequences(rng, n, vocab=30, longest=15):
    # Ids from 1 (the files hold word ranks; 0 never appears), Zipf-like so num_words/skip_top matter.
    return [rng.zipf(1.6, size=rng.integers(1, longest)).clip(1, vocab) for _ in range(n)]


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "keras_home"
    (h / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(h))
    return h


@pytest.fixture
def files(home, rng):
    d = home / "datasets"
    np.savez(d / "imdb.npz", x_train=ragged(sequences(rng, 23)), y_train=rng.integers(0, 2, 23),
             x_test=ragged(sequences(rng, 19)), y_test=rng.integers(0, 2, 19))
    np.savez(d / "reuters.npz", x=ragged(sequences(rng, 37)), y=rng.integers(0, 46, 37))
    for name in ("imdb_word_index.json", "reuters_word_index.json"):
        (d / name).write_text(json.dumps({f"w{i}": i for i in range(1, 31)}))
    return d


KERAS_FILES = {
    "imdb.npz": ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz",
                 "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    "imdb_word_index.json": ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json",
                             "bfafd718b763782e994055a2d397834f"),
    "reuters.npz": ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/reuters.npz",
                    "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"),
    "reuters_word_index.json": ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                                "reuters_word_index.json", "4d44cc38712099c9e383dc6e5f11a921"),
}


def fake_get_file(calls):
    """A get_file that checks Keras's origin and hash and returns the cached file's path."""
    def get_file(fname=None, origin=None, file_hash=None, **kwargs):
        assert not kwargs, kwargs
        name = os.path.basename(origin)
        assert (origin, file_hash) == KERAS_FILES[name], f"origin/hash of {name}: {origin} {file_hash}"
        calls.append(fname)
        return os.path.join(download.keras_home(), "datasets", fname)
    return get_file


@pytest.fixture
def ours(monkeypatch, files):
    calls = []
    monkeypatch.setattr(imdb, "get_file", fake_get_file(calls))
    monkeypatch.setattr(reuters, "get_file", fake_get_file(calls))
    return calls


@pytest.fixture
def keras(monkeypatch, files):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("torch", "compare")
    k = require("keras", "compare")
    from keras.src.datasets import imdb as k_imdb, reuters as k_reuters
    calls = []
    monkeypatch.setattr(k_imdb, "get_file", fake_get_file(calls))
    monkeypatch.setattr(k_reuters, "get_file", fake_get_file(calls))
    return k


def as_lists(split):
    (xa, ya), (xb, yb) = split
    return [list(map(list, xa)), ya.tolist(), list(map(list, xb)), yb.tolist()]


IMDB_ARGS = [
    {}, dict(num_words=12), dict(skip_top=3), dict(num_words=15, skip_top=2, oov_char=7), dict(maxlen=8),
    dict(seed=7), dict(start_char=None), dict(oov_char=None, num_words=10), dict(index_from=0),
    dict(start_char=None, index_from=0), dict(start_char=5, index_from=10, num_words=20, maxlen=12, seed=1),
]


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", IMDB_ARGS, ids=[str(a) for a in IMDB_ARGS])
def test_imdb_matches_keras(keras, ours, kwargs):
    got = imdb.load_data(**kwargs)
    want = keras.datasets.imdb.load_data(**kwargs)
    assert as_lists(got) == as_lists(want)
    assert got[0][0].dtype == object and got[0][0].ndim == 1
    assert got[0][1].dtype == want[0][1].dtype


REUTERS_ARGS = IMDB_ARGS + [dict(test_split=0.5), dict(test_split=0.0), dict(test_split=1.0, maxlen=9)]


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", REUTERS_ARGS, ids=[str(a) for a in REUTERS_ARGS])
def test_reuters_matches_keras(keras, ours, kwargs):
    assert as_lists(reuters.load_data(**kwargs)) == as_lists(keras.datasets.reuters.load_data(**kwargs))


@pytest.mark.keras
def test_word_indexes_and_label_names_match_keras(keras, ours):
    assert imdb.get_word_index() == keras.datasets.imdb.get_word_index()
    assert reuters.get_word_index() == keras.datasets.reuters.get_word_index()
    assert reuters.get_label_names() == keras.datasets.reuters.get_label_names()
    assert len(reuters.get_label_names()) == 46


def test_files_come_from_the_keras_cache(ours, home):
    imdb.load_data()
    imdb.get_word_index()
    reuters.load_data()
    reuters.get_word_index()
    assert ours == ["imdb.npz", "imdb_word_index.json", "reuters.npz", "reuters_word_index.json"]


def test_get_file_is_asked_for_keras_s_cache_path(monkeypatch, home, files):
    """Through the real get_file: a cached file whose hash is right is used without a download.
    (The synthetic file's hash is not Keras's, so get_file would fetch; KERAS_FILES's hash is
    swapped for the synthetic file's.)"""
    real = download.get_file
    seen = []

    def checked(fname=None, origin=None, file_hash=None):
        seen.append(origin)
        return real(fname, origin="http://127.0.0.1:9/never-fetched", file_hash=download.hash_file(
            os.path.join(download.keras_home(), "datasets", fname)))
    monkeypatch.setattr(imdb, "get_file", checked)
    (x, y), _ = imdb.load_data()
    assert len(x) == 23 and seen == [KERAS_FILES["imdb.npz"][0]]


def test_maxlen_that_keeps_nothing(ours):
    with pytest.raises(ValueError, match="no sequence was kept"):
        imdb.load_data(maxlen=1)
    (x, y), (xt, yt) = reuters.load_data(maxlen=1)
    assert len(x) == len(xt) == 0 and len(y) == len(yt) == 0


def test_result_is_ragged_even_when_all_lengths_agree(ours, home):
    np.savez(home / "datasets" / "imdb.npz", x_train=ragged([[1, 2], [3, 4]]), y_train=np.array([0, 1]),
             x_test=ragged([[5, 6]]), y_test=np.array([1]))
    (x, _), (xt, _) = imdb.load_data()
    assert x.shape == (2,) and xt.shape == (1,) and isinstance(x[0], list)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch fusedlstm-pwned",))


def test_pickled_code_in_a_dataset_file_is_refused(ours, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = np.empty(2, dtype=object)
    bad[0], bad[1] = [1, 2], _Evil()
    np.savez(home / "datasets" / "imdb.npz", x_train=bad, y_train=np.array([0, 1]), x_test=ragged([[1]]),
             y_test=np.array([0]))
    with pytest.raises(ValueError, match="Refusing to deserialize `posix.system`|Refusing to deserialize"):
        imdb.load_data()
    assert not (tmp_path / "fusedlstm-pwned").exists()


def test_wrong_or_corrupt_files_are_named(ours, home):
    np.savez(home / "datasets" / "reuters.npz", x=ragged([[1]]))
    with pytest.raises(ValueError, match=r"lacks the arrays \['y'\]"):
        reuters.load_data()
    (home / "datasets" / "imdb.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable dataset file"):
        imdb.load_data()


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(num_words=2.5), TypeError, "num_words"),
    (dict(skip_top=-1), ValueError, "skip_top"),
    (dict(maxlen="10"), TypeError, "maxlen"),
    (dict(seed=None), TypeError, "seed"),
    (dict(index_from=True), TypeError, "index_from"),
])
def test_bad_arguments_are_named(ours, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        imdb.load_data(**kwargs)
    with pytest.raises(exc, match=pattern):
        reuters.load_data(**kwargs)


@pytest.mark.parametrize("split", [-0.1, 1.5, "0.2", True])
def test_bad_test_split(ours, split):
    with pytest.raises(ValueError, match="test_split"):
        reuters.load_data(test_split=split)

