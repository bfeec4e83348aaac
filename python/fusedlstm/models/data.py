"""What fit/evaluate/predict iterate over: arrays, Python generators, Sequence-like objects.

Arrays are batched as keras.src.trainers.data_adapters.array_data_adapter does:
ceil(N / batch_size) batches, the last one partial; shuffle=True draws a fresh
permutation of all samples each epoch, shuffle='batch' shuffles within each
batch-sized chunk, shuffle=False keeps the order. Permutations come from the
library's seeded Generator (fusedlstm.utils.set_random_seed).

A generator yields (x, y) or (x, y, sample_weight) batches (or x alone for
predict). PyDatasets (keras.utils.PyDataset / Sequence) are in py_dataset_data.py.
"""

import math
import numbers

import numpy as np

from .. import utils


def as_list(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def is_sequence_like(x):
    return hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(
        x, (np.ndarray, list, tuple, dict, str, bytes))


def is_generator_like(x):
    return hasattr(x, "__next__") or (hasattr(x, "__iter__") and not isinstance(
        x, (np.ndarray, list, tuple, dict, str, bytes)) and not hasattr(x, "__getitem__"))


def unpack(batch, what="a batch"):
    """(x, y, sample_weight) from a generator item (tuple of 1-3 entries) or a bare x."""
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise ValueError(
                f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
                f"found a tuple of {len(batch)} elements in {what}.")
        return batch + (None,) * (3 - len(batch))
    return batch, None, None


def check_batch_size(batch_size, what="batch_size"):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"Received an invalid value for argument `{what}`, expected a positive integer, got {batch_size!r}.")
    return int(batch_size)


def check_steps(steps, what="steps"):
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps <= 0):
        raise ValueError(f"Received an invalid value for argument `{what}`, expected a positive integer or None, got {steps!r}.")


class ArrayData:
    """Batches of aligned arrays: xs (list), ys (list or None), sws (list or None)."""

    def __init__(self, xs, ys, sws, batch_size, shuffle=False, steps=None):
        self.xs, self.ys, self.sws = xs, ys, sws
        self.n = xs[0].shape[0]
        for name, arrs in (("x", xs), ("y", ys), ("sample_weight", sws)):
            for k, a in enumerate(arrs or []):
                if a is not None and a.shape[0] != self.n:
                    raise ValueError(
                        "Data cardinality is ambiguous: make sure all arrays contain the same number "
                        f"of samples. x has {self.n} samples, {name}[{k}] has {a.shape[0]}.")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"Received an invalid value for argument `shuffle`, expected True, False or 'batch', got {shuffle!r}.")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.full_steps = math.ceil(self.n / batch_size) if self.n else 0
        self.steps = self.full_steps if steps is None else min(int(steps), self.full_steps)

    def _take(self, arrs, idx):
        if arrs is None:
            return None
        return [None if a is None else a[idx] for a in arrs]

    def epoch(self, start=0):
        """The epoch's batches from batch `start` on. The shuffle permutation is drawn here,
        not at the first batch, so a resumed fit can restore the random state in between."""
        perm = utils._global_rng().permutation(self.n) if self.shuffle is True else None
        return self._batches(perm, start)

    def _batches(self, perm, start):
        bs, n = self.batch_size, self.n
        for i in range(start, self.steps):
            a, b = i * bs, min((i + 1) * bs, n)
            if self.shuffle == "batch":
                idx = utils._global_rng().permutation(b - a) + a
            elif perm is not None:
                idx = perm[a:b]
            else:
                idx = slice(a, b)
            yield self._take(self.xs, idx), self._take(self.ys, idx), self._take(self.sws, idx)

    def end_epoch(self):
        pass

    def reset(self):
        pass


class GeneratorData:
    """Batches from a Python generator / iterator; steps None = until it is exhausted."""

    def __init__(self, gen, steps):
        self.gen = iter(gen)
        self.steps = steps
        self._index = None

    def epoch(self, start=0):
        # A generator cannot be rewound: a resumed epoch takes its remaining batches as they come.
        return self._batches(start)

    def _batches(self, start):
        i = start
        while self.steps is None or i < self.steps:
            try:
                batch = next(self.gen)
            except StopIteration:
                if self.steps is not None and i < self.steps:
                    raise ValueError(
                        f"The data generator ran out after {i} batches, but steps={self.steps} were "
                        "requested; make it loop forever or lower steps_per_epoch/steps.") from None
                return
            self._index = i
            x, y, sw = unpack(batch, self.where())
            yield as_list(x), as_list(y), as_list(sw)
            i += 1

    def where(self):
        return f"batch {self._index} of the generator"

    def end_epoch(self):
        pass

    def reset(self):
        pass


def validation_split(arrays, split):
    """(train, val) lists of arrays: the last `split` fraction is held out (Keras, before shuffling)."""
    if not 0.0 < split < 1.0:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {split}")
    n = arrays[0].shape[0]
    at = int(math.floor(n * (1.0 - split)))
    if at == 0 or at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a "
            f"validation and training set as specified by `validation_split={split}`.")
    return [None if a is None else a[:at] for a in arrays], [None if a is None else a[at:] for a in arrays]


def class_weight_to_sample_weights(y, class_weight):
    """Per-sample (or per-step for sequence targets) weights from a {class: weight} dict."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"`class_weight` must be a dict mapping class index to weight, got {type(class_weight).__name__}.")
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1 and np.issubdtype(y.dtype, np.floating):
        ids = np.argmax(y, axis=-1)
    elif y.ndim >= 2 and y.shape[-1] == 1:
        ids = y.reshape(y.shape[:-1])
    else:
        ids = y
    ids = np.round(ids).astype(np.int64)
    if class_weight:
        top = max(max(int(k) for k in class_weight), int(ids.max()) if ids.size else 0)
        lut = np.ones(top + 1, dtype=np.float32)
        for k, w in class_weight.items():
            if int(k) < 0:
                raise ValueError(f"class_weight keys must be non-negative class indices, got {k}.")
            lut[int(k)] = float(w)
        return lut[ids]
    return np.ones(ids.shape, dtype=np.float32)

