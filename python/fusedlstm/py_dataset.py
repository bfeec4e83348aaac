"""`PyDataset` (keras.utils.PyDataset, alias `Sequence`): a dataset written in Python, one batch per index.

Subclass it, call `super().__init__(**kwargs)`, and implement `__len__` (the number
of batches) and `__getitem__(index)` (batch `index`, e.g. `(x, y)` NumPy arrays);
optionally `on_epoch_begin` / `on_epoch_end` (called by fit around each epoch) and
`num_batches` (instead of `__len__`; None means endless).

`workers`, `use_multiprocessing` and `max_queue_size` are kept as Keras keeps them;
fit/evaluate/predict read them (models/py_dataset_data.py: with workers > 1, batches
are fetched ahead in threads and used in index order). Iterating a PyDataset
yourself is sequential.

>>> import numpy as np
>>> class Squares(PyDataset):
...     def __init__(self, n, batch_size, **kwargs):
...         super().__init__(**kwargs)
...         self.x = np.arange(n, dtype="float32"); self.batch_size = batch_size
...     def __len__(self):
...         return -(-len(self.x) // self.batch_size)
...     def __getitem__(self, i):
...         x = self.x[i * self.batch_size:(i + 1) * self.batch_size]
...         return x, x ** 2
>>> ds = Squares(5, 2, workers=2)
>>> len(ds), ds.workers, [y.tolist() for _, y in ds]
(3, 2, [[0.0, 1.0], [4.0, 9.0], [16.0]])
"""

import itertools
import numbers
import warnings

__all__ = ["PyDataset", "Sequence"]


def _check(name, value, minimum, kind=numbers.Integral):
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected an integer >= {minimum}, "
                         f"got {value!r}.")
    return int(value)


class PyDataset:
    """Base class of a dataset in Python code; see the module docstring.

    Args:
        workers: loader workers fit may use (1: the main thread).
        use_multiprocessing: whether fit may use processes rather than threads (the
            dataset must then be picklable).
        max_queue_size: batches fit may prepare ahead.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = _check("workers", workers, 0)
        if not isinstance(use_multiprocessing, bool):
            raise ValueError("Received an invalid value for argument `use_multiprocessing`, expected a bool, "
                             f"got {use_multiprocessing!r}.")
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = _check("max_queue_size", max_queue_size, 1)

    def _warn_if_super_not_called(self):
        warn = False
        for attr, default in (("_workers", 1), ("_use_multiprocessing", False), ("_max_queue_size", 10)):
            if not hasattr(self, attr):
                setattr(self, attr, default)
                warn = True
        if warn:
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
                          "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass "
                          "these arguments to `fit()`, as they will be ignored.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """Batch number `index`."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index) returning one batch.")

    @property
    def num_batches(self):
        """Number of batches, or None for an endless dataset (default: len(self))."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__() or the `num_batches` property.")

    def __iter__(self):
        try:
            n = self.num_batches
        except NotImplementedError:
            n = None
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called by fit at the start of every epoch."""

    def on_epoch_end(self):
        """Called by fit at the end of every epoch (e.g. to reshuffle)."""


# Keras 3 exports the same class under its Keras 2 name.
Sequence = PyDataset
