"""What fit/evaluate/predict iterate over when `x` is a PyDataset (keras.utils.PyDataset / Sequence).

The order of calls is Keras 3.15.1's (PyDatasetAdapter under EpochIterator, torch backend):

* fit and evaluate start with one `on_epoch_end()` (Keras's EpochIterator.reset(): a dataset
  that reshuffles there does so before the first epoch too); predict does not.
* every epoch (and every evaluate/predict pass) is `on_epoch_begin()`, the batches,
  `on_epoch_end()`; fit's callbacks see on_epoch_begin before the dataset does and
  on_epoch_end after the validation pass.
* `len(ds)` (or `num_batches`) batches per epoch. With `steps_per_epoch` below that, the
  position carries over to the next epoch, and an epoch that reaches the end of the
  dataset stops there (shorter) and the next starts a new pass; with `steps_per_epoch`
  above it, every epoch is one pass (Keras warns that the input ran out; so do we).
  An endless dataset (num_batches None) needs `steps_per_epoch` / `steps` and its index
  keeps counting across epochs.
* `shuffle=True` (fit's default) shuffles the order of the batch indices at each new pass
  (Keras: random.shuffle; here the library's seeded Generator, so the order follows
  fusedlstm.utils.set_random_seed); it never looks inside a batch. Ignored, with Keras's
  warning, for an endless dataset.
* `workers > 1`, or `use_multiprocessing=True` with `workers > 0` (the dataset's own
  attributes, as Keras reads them), fetch up to `max_queue_size` batches ahead in that
  many threads. Batches are consumed in index order whatever thread finishes first, so
  training is the same as with workers=1 when __getitem__ is a function of its index.
  Processes are never used: the kernels release the GIL, so threads already overlap
  batch preparation with training (use_multiprocessing=True means threads here).

Objects that are not PyDataset subclasses but have __len__/__getitem__ (Keras 2 Sequences
from other code) are indexed the same way, without the initial on_epoch_end() or the
worker threads.
"""

import collections
import concurrent.futures
import itertools
import warnings

import numpy as np

from .. import utils
from ..py_dataset import PyDataset

__all__ = ["PyDatasetData", "unpack_batch"]


def unpack_batch(batch, where):
    """(x, y, sample_weight) from one batch, as Keras's PyDatasetAdapter standardizes it: an
    array is (x,), a list is read as a tuple, a dict is the inputs by name."""
    if isinstance(batch, (dict, np.ndarray)):
        return batch, None, None
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple) or len(batch) not in (1, 2, 3):
        got = f"a tuple of {len(batch)} elements" if isinstance(batch, tuple) else f"a {type(batch).__name__}"
        raise ValueError(
            f"{where}: __getitem__() must return `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)` "
            f"(a tuple, list, dict or array), got {got}.")
    return batch + (None,) * (3 - len(batch))


class PyDatasetData:
    """Batches of a PyDataset for the training loops; see the module docstring.

    Iterating yields (x, y, sample_weight) with x/y/sample_weight as the dataset gave
    them (the model checks them); `where()` names the batch last given, for errors.
    """

    def __init__(self, ds, steps, shuffle, what):
        self.ds = ds
        self.what = what
        self.keras3 = isinstance(ds, PyDataset)
        self.num_batches = _num_batches(ds)
        if self.num_batches is None and steps is None:
            arg = "steps_per_epoch" if what == "fit" else "validation_steps" if what == "validation_data" else "steps"
            raise ValueError(
                f"{what}: the PyDataset {type(ds).__name__} is endless (num_batches is None); pass `{arg}` "
                "to say how many batches make an epoch.")
        if self.num_batches == 0:
            raise ValueError(f"{what}: the PyDataset {type(ds).__name__} has length 0 (no batch to take).")
        if self.num_batches is None and shuffle:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", stacklevel=4)
        self.shuffle = bool(shuffle) and self.num_batches is not None
        self.explicit_steps = steps
        self.steps = int(steps) if steps is not None else self.num_batches   # what the progress bar shows
        self._pass = None        # the indices of the pass in progress, and how many are taken
        self._taken = 0
        self._index = None

    # --- the Keras call order ------------------------------------------------------------

    def reset(self):
        """Start of fit/evaluate: Keras's EpochIterator.reset() (a new pass; on_epoch_end())."""
        self._pass, self._taken = None, 0
        if self.keras3:
            self.ds.on_epoch_end()

    def epoch(self, start=0):
        """The epoch's batches from batch `start` on. A new pass's shuffle is drawn here, not
        at its first batch, so a resumed fit can restore the random state in between."""
        n, steps = self.num_batches, self.explicit_steps
        if self._pass is None or steps is None or (n is not None and self._taken >= n):
            self._pass, self._taken = self._new_pass(), 0
        begin = getattr(self.ds, "on_epoch_begin", None)
        if callable(begin):
            begin()
        left = None if n is None else n - self._taken
        if steps is not None and left is not None and steps > left:
            warnings.warn(
                f"Your input ran out of data; interrupting training. The PyDataset {type(self.ds).__name__} has "
                f"{n} batches and {left} were left for this epoch of {steps} steps.", stacklevel=5)
        count = self.steps if left is None else min(self.steps, left)
        indices = list(itertools.islice(self._pass, self._taken, self._taken + count))
        self._taken += count
        return self._batches(indices[start:])

    def end_epoch(self):
        end = getattr(self.ds, "on_epoch_end", None)
        if callable(end):
            end()

    def where(self):
        return f"{self.what}: batch {self._index} of the PyDataset {type(self.ds).__name__}"

    # --- fetching ---------------------------------------------------------------------------

    def _new_pass(self):
        if self.num_batches is None:
            return _Indices()
        order = np.arange(self.num_batches)
        if self.shuffle:
            order = utils._global_rng().permutation(order)
        return [int(i) for i in order]

    def _batches(self, indices):
        fetched = self._prefetched(indices) if self._threads() else ((i, self.ds[i]) for i in indices)
        for i, batch in fetched:
            self._index = i
            yield unpack_batch(batch, self.where())

    def _threads(self):
        if not self.keras3:
            return 0
        workers, multi = self.ds.workers, self.ds.use_multiprocessing
        return workers if workers > 1 or (workers > 0 and multi) else 0

    def _prefetched(self, indices):
        """(index, ds[index]) in the order of `indices`, fetched up to max_queue_size ahead."""
        depth = max(1, self.ds.max_queue_size)
        ahead = collections.deque()
        todo = iter(indices)
        pool = concurrent.futures.ThreadPoolExecutor(self._threads(), thread_name_prefix="fusedlstm-pydataset")
        try:
            for i in itertools.islice(todo, depth):
                ahead.append((i, pool.submit(self.ds.__getitem__, i)))
            while ahead:
                i, future = ahead.popleft()
                batch = future.result()  # a worker's exception is raised here, on the training thread
                for j in itertools.islice(todo, 1):
                    ahead.append((j, pool.submit(self.ds.__getitem__, j)))
                yield i, batch
        finally:
            for _, future in ahead:
                future.cancel()
            pool.shutdown(wait=True)


class _Indices:
    """0, 1, 2, ... for an endless dataset; islice(self, taken, ...) resumes where the last
    epoch stopped (its index keeps counting across epochs, as Keras's)."""

    def __iter__(self):
        return itertools.count()


def _num_batches(ds):
    if isinstance(ds, PyDataset):
        n = ds.num_batches
    else:
        n = len(ds)
    if n is None:
        return None
    n = int(n)
    if n < 0:
        raise ValueError(f"The PyDataset {type(ds).__name__} reports {n} batches; expected a non-negative number.")
    return n
