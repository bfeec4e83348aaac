"""The IMDB movie-review sentiment dataset (keras.datasets.imdb).

25,000 training and 25,000 test reviews, labelled positive (1) or negative (0),
each a list of word ids where id i is the i-th most frequent word of the training
set. Same file, origin, hash, defaults and re-indexing as Keras 3.15.1.
"""

import json

import numpy as np

from ..download import get_file
from ._sequence_files import check_int, limit_vocabulary, load_npz, ragged, remove_long_seq, require, shift

__all__ = ["load_data", "get_word_index"]

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DATA_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3):
    """Load the IMDB dataset: `(x_train, y_train), (x_test, y_test)`.

    Args:
        path: the file's name in the cache (`~/.keras/datasets/` or `$KERAS_HOME/datasets/`).
        num_words: keep the num_words most frequent words; rarer ones become oov_char
            (ids are shifted by index_from first, so the largest id kept is num_words - 1).
        skip_top: the most frequent ids below skip_top also become oov_char.
        maxlen: drop the sequences (counting start_char) of maxlen ids or more.
        seed: seed of the shuffle of each split (NumPy RandomState, as Keras).
        start_char: id put at the start of every sequence (None: none).
        oov_char: id of the words cut by num_words/skip_top (None: they are dropped).
        index_from: offset added to every word id.

    Returns:
        x_*: 1-D object arrays of lists of ints; y_*: int arrays of 0/1.
    """
    num_words = check_int("num_words", num_words)
    skip_top = check_int("skip_top", skip_top, allow_none=False, minimum=0)
    maxlen = check_int("maxlen", maxlen)
    seed = check_int("seed", seed, allow_none=False, minimum=0)
    start_char, oov_char = check_int("start_char", start_char), check_int("oov_char", oov_char)
    index_from = check_int("index_from", index_from, allow_none=False, minimum=0)
    path = get_file(fname=path, origin=f"{ORIGIN_FOLDER}imdb.npz", file_hash=DATA_HASH)
    x_train, labels_train, x_test, labels_test = require(load_npz(path), path,
                                                         ["x_train", "y_train", "x_test", "y_test"])

    rng = np.random.RandomState(seed)
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]

    x_train, x_test = shift(x_train, start_char, index_from), shift(x_test, start_char, index_from)
    if maxlen:
        x_train, labels_train = remove_long_seq(maxlen, x_train, labels_train)
        x_test, labels_test = remove_long_seq(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                             "Increase maxlen.")
    xs = limit_vocabulary(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    idx = len(x_train)
    return (ragged(xs[:idx]), labels[:idx]), (ragged(xs[idx:]), labels[idx:])


def get_word_index(path="imdb_word_index.json"):
    """The dict word -> id of the IMDB dataset (ids before load_data's index_from shift)."""
    path = get_file(fname=path, origin=f"{ORIGIN_FOLDER}imdb_word_index.json", file_hash=WORD_INDEX_HASH)
    with open(path) as f:
        return json.load(f)
