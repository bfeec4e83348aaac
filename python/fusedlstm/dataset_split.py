"""`split_dataset` (keras.utils.split_dataset) for NumPy data: two parts, by count or fraction.

`dataset` is an array, or a tuple/list (possibly nested, or a dict) of arrays with
one sample per row along axis 0. Without shuffle the left part is the first
left_size samples and the right part the last right_size ones (Keras's semantics,
as its tf.data path implements them); with shuffle the samples are permuted first
with Python's random.Random(seed), the permutation Keras's `random.seed(seed);
random.shuffle(...)` gives, without reseeding the global generator. The sizes
follow Keras's `_rescale_dataset_split_sizes`, messages included.

Keras returns tf.data or torch datasets; this returns the same structure as
`dataset` (lists become tuples, as in Keras) holding NumPy arrays.

>>> import numpy as np
>>> left, right = split_dataset(np.arange(10), left_size=0.8)
>>> left.tolist(), right.tolist()
([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
"""

import random

import numpy as np

__all__ = ["split_dataset"]


def _leaves(dataset, path="dataset"):
    if isinstance(dataset, dict):
        for k in dataset:
            yield from _leaves(dataset[k], f"{path}[{k!r}]")
    elif isinstance(dataset, (list, tuple)):
        for i, x in enumerate(dataset):
            yield from _leaves(x, f"{path}[{i}]")
    else:
        yield path, dataset


def _take(dataset, index):
    if isinstance(dataset, dict):
        return {k: _take(v, index) for k, v in dataset.items()}
    if isinstance(dataset, (list, tuple)):
        return tuple(_take(x, index) for x in dataset)
    return np.asarray(dataset)[index]


def _size_type(value):
    # Keras accepts exactly int and float; NumPy scalars are accepted here too (not bools).
    if isinstance(value, (bool, np.bool_)):
        return type(value)
    if isinstance(value, (int, np.integer)):
        return int
    if isinstance(value, (float, np.floating)):
        return float
    return type(value)


def rescale_split_sizes(left_size, right_size, total_length):
    """keras dataset_utils._rescale_dataset_split_sizes: the two sizes as integers."""
    lt, rt = _size_type(left_size), _size_type(right_size)
    if (left_size is not None and lt not in (int, float)) and (right_size is not None and rt not in (int, float)):
        raise TypeError("Invalid `left_size` and `right_size` Types. Expected: integer or float or None, "
                        f"Received: type(left_size)={type(left_size)} and type(right_size)={type(right_size)}")
    if left_size is not None and lt not in (int, float):
        raise TypeError(f"Invalid `left_size` Type. Expected: int or float or None, Received: "
                        f"type(left_size)={type(left_size)}.  ")
    if right_size is not None and rt not in (int, float):
        raise TypeError(f"Invalid `right_size` Type. Expected: int or float or None,Received: "
                        f"type(right_size)={type(right_size)}.")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the split sizes must be "
                         "non-zero.")
    if (lt is int and (left_size <= 0 or left_size >= total_length)
            or lt is float and (left_size <= 0 or left_size >= 1)):
        raise ValueError(f"`left_size` should be either a positive integer smaller than {total_length}, or a float "
                         f"within the range `[0, 1]`. Received: left_size={left_size}")
    if (rt is int and (right_size <= 0 or right_size >= total_length)
            or rt is float and (right_size <= 0 or right_size >= 1)):
        raise ValueError(f"`right_size` should be either a positive integer and smaller than {total_length} or a "
                         f"float within the range `[0, 1]`. Received: right_size={right_size}")
    if rt is lt is float and right_size + left_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or equal "
                         "to 1.")
    if lt is float:
        left_size = round(left_size * total_length)
    elif lt is int:
        left_size = float(left_size)
    if rt is float:
        right_size = round(right_size * total_length)
    elif rt is int:
        right_size = float(right_size)
    if left_size is None:
        left_size = total_length - right_size
    elif right_size is None:
        right_size = total_length - left_size
    if left_size + right_size > total_length:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the {total_length}. "
                         f"Received: left_size + right_size = {left_size + right_size}and total_length = "
                         f"{total_length}")
    for split, side in ((left_size, "left"), (right_size, "right")):
        if split == 0:
            raise ValueError(f"With `dataset` of length={total_length}, `left_size`={left_size} and "
                             f"`right_size`={right_size}.Resulting {side} side dataset split will be empty. Adjust "
                             "any of the aforementioned parameters")
    return int(left_size), int(right_size)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split NumPy data into (left, right) parts (keras.utils.split_dataset).

    Args:
        dataset: an array, or a (nested) tuple/list/dict of arrays of one length.
        left_size: samples in the left part: an int, or a float fraction in (0, 1).
            None: all that the right part leaves.
        right_size: the same for the right part; at least one of the two is needed.
        shuffle: permute the samples before splitting.
        seed: seed of that permutation (a random one when None).

    Returns:
        (left, right), each with the structure of `dataset`.
    """
    leaves = list(_leaves(dataset))
    if not leaves or (isinstance(dataset, (list, tuple, dict)) and not dataset):
        raise TypeError("The `dataset` argument must be a NumPy array or a list/tuple of arrays. "
                        f"Received: dataset={dataset!r} of type {type(dataset)}")
    lengths = {}
    for path, leaf in leaves:
        if isinstance(leaf, (str, bytes)) or np.ndim(leaf) == 0:
            raise TypeError("The `dataset` argument must be a NumPy array or a list/tuple of arrays; "
                            f"{path} is {type(leaf).__name__}, not an array.")
        lengths[path] = len(leaf)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"The arrays of `dataset` must have one length (samples along axis 0); got {lengths}.")
    if right_size is None and left_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. Received: "
                         "left_size=None and right_size=None")
    total = next(iter(lengths.values()))
    left_size, right_size = rescale_split_sizes(left_size, right_size, total)
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        random.Random(seed).shuffle(order)
    order = np.asarray(order, dtype=np.int64)
    return _take(dataset, order[:left_size]), _take(dataset, order[total - right_size:])
