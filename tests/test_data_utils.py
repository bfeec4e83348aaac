"""fusedlstm.utils.PyDataset / Sequence, timeseries_dataset_from_array and split_dataset.

PyDataset and split_dataset's size rules are compared with real Keras 3.15.1 (torch
backend). timeseries_dataset_from_array cannot run in Keras here (its "tf" and
"grain" formats need TensorFlow or grain, neither installed): it is checked against
the examples of Keras's docstring and against a loop written from its definition.
"""

import itertools
import os
import random
import warnings

import numpy as np
import pytest

from conftest import require
from fusedlstm import utils
from fusedlstm.utils import PyDataset, Sequence, split_dataset, timeseries_dataset_from_array

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("torch", "compare")
    return require("keras", "compare")


# ---- PyDataset / Sequence ----------------------------------------------------------------

def batches_class(base):
    """The same user class written against Keras's or our base class."""
    class Batches(base):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y, self.batch_size = x, y, batch_size
            self.epochs_ended = 0

        def __len__(self):
            return -(-len(self.x) // self.batch_size)

        def __getitem__(self, idx):
            lo = idx * self.batch_size
            hi = min(lo + self.batch_size, len(self.x))
            return self.x[lo:hi], self.y[lo:hi]

        def on_epoch_end(self):
            self.epochs_ended += 1
    return Batches


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", [{}, dict(workers=4, use_multiprocessing=True, max_queue_size=3)])
def test_pydataset_subclass_behaves_as_in_keras(kwargs, rng):
    keras = _keras()
    x, y = rng.standard_normal((10, 3)), rng.integers(0, 2, 10)
    ours, theirs = batches_class(PyDataset)(x, y, 4, **kwargs), batches_class(keras.utils.PyDataset)(x, y, 4, **kwargs)
    for attr in ("workers", "use_multiprocessing", "max_queue_size", "num_batches"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert len(ours) == len(theirs) == 3
    for (a, b), (c, d) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    ours.on_epoch_end()
    ours.on_epoch_begin()
    assert ours.epochs_ended == 1


def test_sequence_is_pydataset():
    assert Sequence is PyDataset
    from fusedlstm import utils as u
    assert u.Sequence is u.PyDataset


@pytest.mark.keras
def test_missing_super_init_warns_as_in_keras():
    keras = _keras()

    def lazy(base):
        class Lazy(base):
            def __init__(self):
                pass

            def __len__(self):
                return 1

            def __getitem__(self, i):
                return i
        return Lazy()
    for ds in (lazy(PyDataset), lazy(keras.utils.PyDataset)):
        with pytest.warns(UserWarning, match=r"super\(\).__init__\(\*\*kwargs\)"):
            assert ds.workers == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ds.max_queue_size == 10 and ds.use_multiprocessing is False  # warned once


def test_endless_and_unimplemented_datasets():
    class Endless(PyDataset):
        num_batches = None

        def __getitem__(self, i):
            return i
    assert list(itertools.islice(Endless(), 5)) == [0, 1, 2, 3, 4]

    class Empty(PyDataset):
        pass
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Empty()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        Empty().num_batches


@pytest.mark.parametrize("kwargs, name", [(dict(workers=-1), "workers"), (dict(workers=1.5), "workers"),
                                          (dict(max_queue_size=0), "max_queue_size"),
                                          (dict(use_multiprocessing="yes"), "use_multiprocessing")])
def test_pydataset_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PyDataset(**kwargs)


# ---- timeseries_dataset_from_array -----------------------------------------------------

def windows_by_definition(data, targets, length, stride, rate, start, end):
    start = start or 0
    end = len(data) if end is None else end
    xs, ys = [], []
    p = 0
    while start + p + (length - 1) * rate < end and (targets is None or start + p < len(targets)):
        xs.append([data[start + p + k * rate] for k in range(length)])
        if targets is not None:
            ys.append(targets[start + p])
        p += stride
    return np.array(xs), np.array(ys)


def collect(ds, with_targets=True):
    xs, ys = [], []
    for b in ds:
        x, y = b if with_targets else (b, None)
        xs.append(x)
        if with_targets:
            ys.append(y)
    return xs, ys


def test_keras_docstring_example_1():
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10, sampling_rate=2,
                                       sequence_stride=3, batch_size=100)
    (x,), _ = collect(ds, False)
    assert x[0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert x[1].tolist() == [3, 5, 7, 9, 11, 13, 15, 17, 19, 21]
    assert x[2].tolist() == [6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    assert x[-1].tolist() == [78, 80, 82, 84, 86, 88, 90, 92, 94, 96]


def test_keras_docstring_example_2(rng):
    data = rng.standard_normal(50)
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = next(iter(ds))
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]


def test_keras_docstring_example_3():
    X = np.arange(100)
    Y = X * 2
    n = 20
    xs = timeseries_dataset_from_array(X, None, sequence_length=n, sequence_stride=n)
    ys = timeseries_dataset_from_array(Y, None, sequence_length=n, sequence_stride=n)
    for inputs, targets in zip(xs, ys):
        np.testing.assert_array_equal(inputs[0], X[:n])
        np.testing.assert_array_equal(targets[1], Y[n:2 * n])
        break


@pytest.mark.parametrize("trial", range(12))
def test_windows_match_their_definition(trial, rng, seed):
    n = int(rng.integers(20, 80))
    data = rng.standard_normal((n, 3)).astype(np.float32)
    targets = None if trial % 3 == 0 else rng.standard_normal(n - int(rng.integers(0, 10)))
    length, stride, rate = int(rng.integers(1, 6)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    start = int(rng.integers(0, 5)) if trial % 2 else None
    end = int(rng.integers(n - 8, n)) if trial % 4 == 1 else None
    batch = int(rng.integers(1, 9))
    ds = timeseries_dataset_from_array(data, targets, length, stride, rate, batch_size=batch, start_index=start,
                                       end_index=end)
    want_x, want_y = windows_by_definition(data, targets, length, stride, rate, start, end)
    xs, ys = collect(ds, targets is not None)
    assert len(ds) == len(xs) == -(-len(want_x) // batch)
    assert all(len(x) == batch for x in xs[:-1]), "every batch but the last is full"
    assert all(x.dtype == data.dtype for x in xs), "windows keep the data's dtype"
    # No window fits when the span (length - 1) * rate + 1 exceeds the rows between start and end.
    got_x = np.concatenate(xs) if xs else np.zeros((0,), data.dtype)
    np.testing.assert_array_equal(got_x.reshape(want_x.shape), want_x, err_msg=f"seed={seed}")
    if targets is not None and xs:
        np.testing.assert_array_equal(np.concatenate(ys), want_y, err_msg=f"seed={seed}")


def test_shuffle_permutes_the_start_positions_as_keras(rng):
    data = np.arange(40)
    ds = timeseries_dataset_from_array(data, data * 10, sequence_length=3, sequence_stride=2, batch_size=4,
                                       shuffle=True, seed=5)
    positions = np.arange(0, 38, 2)
    np.random.RandomState(5).shuffle(positions)
    xs, ys = collect(ds)
    np.testing.assert_array_equal(np.concatenate(xs)[:, 0], positions)
    np.testing.assert_array_equal(np.concatenate(ys), positions * 10)
    again = collect(timeseries_dataset_from_array(data, data * 10, 3, 2, shuffle=True, seed=5, batch_size=4))
    np.testing.assert_array_equal(np.concatenate(again[0]), np.concatenate(xs))


def test_unbatched_windows_and_empty_result():
    ds = timeseries_dataset_from_array(np.arange(6), np.arange(6), sequence_length=4, batch_size=None)
    assert [(x.tolist(), int(y)) for x, y in ds] == [([0, 1, 2, 3], 0), ([1, 2, 3, 4], 1), ([2, 3, 4, 5], 2)]
    empty = timeseries_dataset_from_array(np.arange(6), None, sequence_length=10)
    assert len(empty) == 0 and list(empty) == []


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(start_index=-1), "`start_index` must be 0 or greater"),
    (dict(start_index=10), "`start_index` must be lower than the length of the data"),
    (dict(start_index=5, end_index=5), "`end_index` must be higher than `start_index`"),
    (dict(end_index=10), "`end_index` must be lower than the length of the data"),
    (dict(end_index=-3), "`end_index` must be higher than 0"),
    (dict(sampling_rate=0), "`sampling_rate` must be higher than 0"),
    (dict(sampling_rate=10), "`sampling_rate` must be lower than the length of the data"),
    (dict(sequence_stride=0), "`sequence_stride` must be higher than 0"),
    (dict(sequence_stride=10), "`sequence_stride` must be lower than the length of the data"),
    (dict(sequence_length=0), "`sequence_length` must be higher than 0"),
    (dict(batch_size=0), "`batch_size` must be higher than 0"),
])
def test_timeseries_errors_in_keras_words(kwargs, pattern):
    args = {"sequence_length": 3, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        timeseries_dataset_from_array(np.arange(10), None, **args)


def test_timeseries_types_are_named():
    with pytest.raises(TypeError, match="sequence_length"):
        timeseries_dataset_from_array(np.arange(10), None, sequence_length=2.0)
    with pytest.raises(ValueError, match="data"):
        timeseries_dataset_from_array(3.0, None, sequence_length=2)


def test_timeseries_is_reachable_where_keras_has_it():
    import fusedlstm
    assert fusedlstm.preprocessing.timeseries_dataset_from_array is timeseries_dataset_from_array
    assert isinstance(timeseries_dataset_from_array(np.arange(10), None, 2), PyDataset)


# ---- split_dataset ---------------------------------------------------------------------

SIZE_CASES = [(0.8, None), (None, 0.2), (3, None), (None, 4), (0.5, 0.25), (2, 3), (0.3, 2), (0.999, None),
              (None, None), (0, 0), (0.0, None), (10, None), (1.2, None), (0.7, 0.5), (7, 5), ("3", None),
              (None, [1]), (np.int64(3), None), (True, None), (0.01, None), (None, 0.96)]


@pytest.mark.keras
@pytest.mark.parametrize("left, right", SIZE_CASES, ids=[repr(c) for c in SIZE_CASES])
def test_split_sizes_and_errors_match_keras(left, right):
    _keras()  # skips (or fails under CI=true) before importing keras's private helper
    from keras.src.utils.dataset_utils import _rescale_dataset_split_sizes
    total = 10
    if left is None and right is None:
        with pytest.raises(ValueError, match="At least one of the `left_size` or `right_size`"):
            split_dataset(np.arange(total), left, right)
        return
    try:
        want = _rescale_dataset_split_sizes(left, right, total)
    except (TypeError, ValueError) as exc:
        if isinstance(left, np.integer):  # accepted here, a TypeError in Keras
            want = _rescale_dataset_split_sizes(int(left), right, total)
        else:
            with pytest.raises(type(exc)) as info:
                split_dataset(np.arange(total), left, right)
            assert str(info.value) == str(exc)
            return
    a, b = split_dataset(np.arange(total), left, right)
    assert (len(a), len(b)) == want
    np.testing.assert_array_equal(a, np.arange(want[0]))
    np.testing.assert_array_equal(b, np.arange(total - want[1], total))


@pytest.mark.keras
def test_split_of_keras_and_ours_hold_the_same_counts(rng):
    keras = _keras()
    x, y = rng.standard_normal((20, 2)).astype(np.float32), np.arange(20)
    ka, kb = keras.utils.split_dataset((x, y), left_size=0.75, shuffle=True, seed=1)
    oa, ob = split_dataset((x, y), left_size=0.75, shuffle=True, seed=1)
    assert (len(ka), len(kb)) == (len(oa[1]), len(ob[1])) == (15, 5)
    assert sorted(np.concatenate([oa[1], ob[1]]).tolist()) == list(range(20))


def test_split_structures_and_shuffle(rng):
    x, y = rng.standard_normal((10, 3)), np.arange(10)
    (xl, yl), (xr, yr) = split_dataset([x, y], left_size=6)
    np.testing.assert_array_equal(xl, x[:6])
    np.testing.assert_array_equal(yr, y[6:])
    left, right = split_dataset({"a": x, "b": (y, y * 2)}, right_size=0.3, shuffle=True, seed=42)
    order = list(range(10))
    random.seed(42)  # Keras: random.seed(seed); random.shuffle(samples)
    random.shuffle(order)
    np.testing.assert_array_equal(left["b"][1], np.array(order[:7]) * 2)
    np.testing.assert_array_equal(right["a"], x[order[7:]])
    state = random.getstate()
    split_dataset(x, left_size=5, shuffle=True, seed=3)
    assert random.getstate() == state, "the global random generator is left alone"


@pytest.mark.parametrize("dataset, exc, pattern", [
    ((np.arange(5), np.arange(6)), ValueError, "one length"),
    (3.0, TypeError, "dataset"),
    ([], TypeError, "dataset"),
    (("abc", np.arange(3)), TypeError, r"dataset\[0\]"),
])
def test_split_bad_datasets(dataset, exc, pattern):
    with pytest.raises(exc, match=pattern):
        split_dataset(dataset, left_size=0.5)


def test_utils_exports():
    for name in ("get_file", "PyDataset", "Sequence", "timeseries_dataset_from_array", "split_dataset",
                 "pad_sequences"):
        assert name in utils.__all__ and hasattr(utils, name)
