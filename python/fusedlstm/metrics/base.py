"""The Metric base class, Mean, and MeanMetricWrapper (a mean of per-sample values).

A metric's state is a set of sums (its `accumulators`: named float or array
attributes) that only ever grow by addition, so the state of several batches, of
an interrupted epoch or of several MPI ranks is their sum. `state()` gives them as
one float64 vector and `set_state()` takes it back: checkpoints save it, and a
data-parallel step adds the ranks' increments of it.

A mean metric accumulates Keras 3's way (keras.src.metrics.reduction_metrics):

    total += Σ_b mean_rest(values · w),  count += Σ_b mean_rest(w)

so a masked sequence accuracy is the fraction of correct unmasked steps. A
MeanMetricWrapper takes the output mask into the weights (Keras does so for these
metrics only; confusion-matrix metrics ignore masks in Keras too).
"""

import numpy as np

from .. import registry as _registry

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "merge_mask", "same_rank"]


class Metric:
    """Base: update_state(...), result(), reset_state(), and the state vector.

    Subclasses name their sums in `accumulators` and set them in `reset_state`;
    a metric whose sums' shapes depend on the data (the number of classes) sets
    them in `build(y_true_shape, y_pred_shape)`, which the model calls before the
    first update.
    """

    accumulators = ("total", "count")
    _default_name = "metric"

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Received an invalid value for argument `name`, expected a string, got {name!r}.")
        self.name = name or self._default_name
        self.dtype = dtype
        self.reset_state()

    def build(self, y_true_shape, y_pred_shape):
        """Allocate data-dependent sums (no-op unless a metric needs the shapes)."""

    @property
    def built(self):
        return all(getattr(self, n, None) is not None for n in self.accumulators)

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    reset_states = reset_state

    def result(self):
        return float(self.total / self.count) if self.count else 0.0

    # --- the state as one vector ----------------------------------------------------------------

    def state(self):
        """The accumulators, flattened into one float64 vector (a copy)."""
        parts = [np.ravel(np.asarray(getattr(self, n), dtype=np.float64)) for n in self.accumulators]
        return np.concatenate(parts) if parts else np.zeros(0)

    def set_state(self, vector):
        """Take state()'s vector back (its length must match)."""
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if v.size != self.state().size:
            raise ValueError(
                f"metric {self.name!r}: the saved state has {v.size} values, this metric keeps "
                f"{self.state().size}.")
        at = 0
        for n in self.accumulators:
            cur = getattr(self, n)
            if isinstance(cur, np.ndarray):
                setattr(self, n, v[at:at + cur.size].reshape(cur.shape).copy())
                at += cur.size
            else:
                setattr(self, n, float(v[at]))
                at += 1

    def _accumulate(self, values, weight=None):
        """total/count of a mean of per-sample values (module docstring)."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 0:
            v = v[None]
        B = v.shape[0]
        if weight is None:
            # Σ_b mean_rest(v) without the per-row pass.
            self.total += float(v.sum()) * B / v.size if v.size else 0.0
            self.count += B
            return
        w = np.asarray(weight, dtype=np.float64)
        while w.ndim > v.ndim and w.shape[-1] == 1:
            w = w.reshape(w.shape[:-1])
        r = w.ndim
        if v.ndim > r:
            v = v.reshape(v.shape[:r] + (-1,)).mean(axis=-1)
        w = np.broadcast_to(w.reshape(w.shape + (1,) * (v.ndim - r)), v.shape)
        vw = v * w
        self.total += float(vw.reshape(B, -1).mean(axis=1).sum()) if vw.size else 0.0
        self.count += float(w.reshape(B, -1).mean(axis=1).sum()) if w.size else 0.0

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


@_registry.register("metrics")
class Mean(Metric):
    """The weighted mean of the values given (keras.metrics.Mean)."""

    _default_name = "mean"

    def update_state(self, values, sample_weight=None):
        self._accumulate(values, sample_weight)

    def add(self, value, weight):
        """Scalar fast path: total += value·weight, count += weight (the loss trackers)."""
        self.total += value * weight
        self.count += weight


@_registry.register("metrics")
class Sum(Metric):
    """The weighted sum of the values given (keras.metrics.Sum)."""

    accumulators = ("total",)
    _default_name = "sum"

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, dtype=np.float64)
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            while w.ndim < v.ndim:
                w = w[..., None]
            v = v * w
        self.total += float(v.sum())

    def result(self):
        return float(self.total)


def merge_mask(sample_weight, mask):
    """Keras's apply_mask(reduction='sum'): the output mask as 0/1 weights, times the
    sample weights (rank lined up); None when there is neither."""
    if mask is None:
        return sample_weight
    m = mask.astype(np.float64)
    if sample_weight is None:
        return m
    w = np.asarray(sample_weight, dtype=np.float64)
    while w.ndim < m.ndim:
        w = w[..., None]
    while m.ndim < w.ndim:
        m = m[..., None]
    return w * m


class MeanMetricWrapper(Mean):
    """The mean of fn(y_true, y_pred)'s per-sample values, weighted by sample weights and
    the output mask (keras.metrics.MeanMetricWrapper).

    fn may be any Python callable on NumPy arrays returning one value per sample (or
    per sample and step); it is reported under `name` (default: fn.__name__).
    Keyword arguments are passed to fn on every call.
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper needs a callable fn(y_true, y_pred), got {fn!r}.")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name or getattr(fn, "__name__", None) or "metric", dtype)

    def values(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        v = self.values(np.asarray(y_true), np.asarray(y_pred))
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            raise TypeError(f"metric {self.name!r}: the function returned values of dtype {v.dtype}, expected numbers.")
        self._accumulate(v, merge_mask(sample_weight, mask))


def same_rank(x1, x2, expand_rank_1=True):
    """Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the
    longer one ends in 1, squeeze it (or expand a rank-1 partner instead)."""
    r1, r2 = np.ndim(x1), np.ndim(x2)
    if r1 == r2 + 1 and np.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = np.expand_dims(x2, -1)
        else:
            x1 = np.squeeze(x1, -1)
    elif r2 == r1 + 1 and np.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = np.expand_dims(x1, -1)
        else:
            x2 = np.squeeze(x2, -1)
    return x1, x2
