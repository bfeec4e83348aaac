"""`timeseries_dataset_from_array` (keras.utils): sliding windows over a series, as NumPy batches.

Window i starts at data[start_index + p_i] and takes sequence_length steps, one
every sampling_rate; its target is targets[start_index + p_i]; p_i = i·sequence_stride
for the windows that fit before end_index (and within len(targets)). The start
positions, and their shuffle (NumPy RandomState(seed), as Keras), are Keras 3.15.1's.
Keras returns a tf.data (or grain) dataset; this returns a PyDataset of NumPy
batches — `(x, y)` with x (batch, sequence_length, ...) — built lazily, batch by
batch, so the windows are never all materialised.

Differences: with shuffle=True Keras's tf.data path also shuffles within a buffer
of 8 batches (a tf.random draw that cannot be reproduced without TensorFlow); here
the batches follow the shuffled start positions, so the same windows come in
batches of the same sizes, in another order. With a start_index and targets
shorter than the data, Keras also makes windows whose target lies past the end of
`targets` (its gather then fails during iteration); here those windows are left out.

>>> import numpy as np
>>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3, sequence_stride=3, batch_size=2)
>>> [b.tolist() for b in ds]
[[[0, 1, 2], [3, 4, 5]], [[6, 7, 8]]]
"""

import numbers

import numpy as np

from .py_dataset import PyDataset

__all__ = ["timeseries_dataset_from_array"]


def _int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected an integer"
                        f"{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


class TimeseriesBatches(PyDataset):
    """The batches of timeseries_dataset_from_array (a PyDataset: len, indexing, iteration)."""

    def __init__(self, data, targets, positions, sequence_length, sampling_rate, batch_size):
        super().__init__()
        self.data, self.targets = data, targets
        self.positions = positions
        self.offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size = batch_size

    def __len__(self):
        if self.batch_size is None:
            return len(self.positions)
        return -(-len(self.positions) // self.batch_size)

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
            raise TypeError(f"batch index must be an integer, got {index!r}")
        if not -n <= index < n:
            raise IndexError(f"batch index {index} is out of range for {n} batches")
        index %= n
        if self.batch_size is None:
            pos = self.positions[index]
            x = self.data[pos + self.offsets]
            return x if self.targets is None else (x, self.targets[pos])
        pos = self.positions[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.data[pos[:, None] + self.offsets]
        return x if self.targets is None else (x, self.targets[pos])


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Batches of sliding windows over `data` (keras.utils.timeseries_dataset_from_array).

    Args:
        data: array-like (timesteps, ...) of the series.
        targets: array-like with the target of the window starting at each step, or None.
        sequence_length: steps per window.
        sequence_stride: steps between the starts of consecutive windows.
        sampling_rate: steps between two values within a window.
        batch_size: windows per batch (the last may be smaller); None: single windows.
        shuffle: shuffle the windows (their start positions).
        seed: seed of that shuffle (a random one when None).
        start_index, end_index: use data[start_index:end_index] only.

    Returns:
        A PyDataset whose items are `(x, y)` batches (x alone when targets is None).
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"Received an invalid value for argument `data`, expected an array of at least one "
                         f"dimension (timesteps, ...), got a scalar {data!r}.")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError("Received an invalid value for argument `targets`, expected an array with one target "
                             "per timestep or None, got a scalar.")
    sequence_length = _int("sequence_length", sequence_length)
    sequence_stride = _int("sequence_stride", sequence_stride)
    sampling_rate = _int("sampling_rate", sampling_rate)
    batch_size = _int("batch_size", batch_size, allow_none=True)
    start_index = _int("start_index", start_index, allow_none=True)
    end_index = _int("end_index", end_index, allow_none=True)
    n = len(data)
    # Keras's checks, in its order and words (`if start_index:` skips 0, as in Keras).
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: start_index={start_index}")
        if start_index >= n:
            raise ValueError("`start_index` must be lower than the length of the data. Received: "
                             f"start_index={start_index}, for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError("`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index} ")
        if end_index >= n:
            raise ValueError("`end_index` must be lower than the length of the data. Received: "
                             f"end_index={end_index}, for data of length {n}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be higher than 0. Received: sampling_rate={sampling_rate}")
    if sampling_rate >= n:
        raise ValueError("`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {n}")
    if sequence_stride <= 0:
        raise ValueError(f"`sequence_stride` must be higher than 0. Received: sequence_stride={sequence_stride}")
    if sequence_stride >= n:
        raise ValueError("`sequence_stride` must be lower than the length of the data. Received: "
                         f"sequence_stride={sequence_stride}, for data of length {n}")
    # Beyond Keras (whose tf.data pipeline fails later, inside TensorFlow):
    if sequence_length <= 0:
        raise ValueError(f"`sequence_length` must be higher than 0. Received: sequence_length={sequence_length}")
    if batch_size is not None and batch_size <= 0:
        raise ValueError(f"`batch_size` must be higher than 0 or None. Received: batch_size={batch_size}")

    start = 0 if start_index is None else start_index
    end = n if end_index is None else end_index
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        # Keras takes min(num_seqs, len(targets)), so with a start_index its last windows may
        # have no target and tf.gather fails mid-epoch; here they are not made.
        num_seqs = min(num_seqs, len(targets) - start)
    positions = np.arange(0, max(num_seqs, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(positions)
    window_data = data[start:end]
    window_targets = None if targets is None else targets[start:end]
    return TimeseriesBatches(window_data, window_targets, positions, sequence_length, sampling_rate, batch_size)
