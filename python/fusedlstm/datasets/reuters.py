"""The Reuters newswire topic dataset (keras.datasets.reuters).

11,228 newswires in 46 topics, each a list of word ids where id i is the i-th most
frequent word. Same file, origin, hash, defaults, re-indexing and train/test
split as Keras 3.15.1.
"""

import json
import numbers

import numpy as np

from ..download import get_file
from ._sequence_files import check_int, limit_vocabulary, load_npz, ragged, remove_long_seq, require, shift

__all__ = ["load_data", "get_word_index", "get_label_names"]

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DATA_HASH = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_HASH = "4d44cc38712099c9e383dc6e5f11a921"

LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee", "sugar",
    "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp",
    "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi", "iron-steel",
    "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog",
    "lead",
)


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1,
              oov_char=2, index_from=3):
    """Load the Reuters dataset: `(x_train, y_train), (x_test, y_test)`.

    Args: as imdb.load_data, and
        test_split: the fraction of the (shuffled) newswires that goes to the test set;
            the first int(n·(1 - test_split)) train.

    Returns:
        x_*: 1-D object arrays of lists of ints; y_*: int arrays of topic ids
        (names: get_label_names()).
    """
    num_words = check_int("num_words", num_words)
    skip_top = check_int("skip_top", skip_top, allow_none=False, minimum=0)
    maxlen = check_int("maxlen", maxlen)
    seed = check_int("seed", seed, allow_none=False, minimum=0)
    start_char, oov_char = check_int("start_char", start_char), check_int("oov_char", oov_char)
    index_from = check_int("index_from", index_from, allow_none=False, minimum=0)
    if isinstance(test_split, bool) or not isinstance(test_split, numbers.Real) or not 0 <= test_split <= 1:
        raise ValueError("Received an invalid value for argument `test_split`, expected a float in [0, 1], "
                         f"got {test_split!r}.")
    path = get_file(fname=path, origin=f"{ORIGIN_FOLDER}reuters.npz", file_hash=DATA_HASH)
    xs, labels = require(load_npz(path), path, ["x", "y"])

    rng = np.random.RandomState(seed)
    indices = np.arange(len(xs))
    rng.shuffle(indices)
    xs, labels = xs[indices], labels[indices]

    xs = shift(xs, start_char, index_from)
    if maxlen:
        xs, labels = remove_long_seq(maxlen, xs, labels)
    xs = limit_vocabulary(xs, num_words, skip_top, oov_char) if xs else xs
    idx = int(len(xs) * (1 - test_split))
    return ((ragged(xs[:idx]), np.array(labels[:idx])), (ragged(xs[idx:]), np.array(labels[idx:])))


def get_word_index(path="reuters_word_index.json"):
    """The dict word -> id of the Reuters dataset (ids before load_data's index_from shift)."""
    path = get_file(path, origin=f"{ORIGIN_FOLDER}reuters_word_index.json", file_hash=WORD_INDEX_HASH)
    with open(path) as f:
        return json.load(f)


def get_label_names():
    """The 46 topic names, indexed by the labels load_data returns."""
    return LABEL_NAMES
