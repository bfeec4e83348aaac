"""Checks of user data at the API's edge: numeric dtype, finite values.

A NaN or Inf in x, y or a sample weight would otherwise flow through the kernels
and surface epochs later as a NaN loss with no hint of its source; a string or
object array would fail deep inside NumPy with a message that names no argument.
Both are refused where the data enters, naming the argument, what is expected and
what was found (the first bad value and its position).

Cost: one reduction over a large array (np.sum; NaN and Inf survive any sum), and
the elementwise search only when that sum is not finite; small arrays (a batch)
take the elementwise test directly.
"""

import numpy as np

__all__ = ["check_numeric", "check_finite"]

# Below this size one elementwise pass is cheaper than the errstate-guarded sum.
_SMALL = 1 << 16


def check_numeric(a, what):
    """Raise TypeError unless `a` has a boolean, integer or floating dtype."""
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array (bool, int or float), got dtype {a.dtype}.")


def check_finite(a, what):
    """Raise ValueError if a floating array holds NaN or +-Inf."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    if a.size <= _SMALL:
        bad = ~np.isfinite(a)
        if not bad.any():
            return
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(a)):
                return
        bad = ~np.isfinite(a)
        if not bad.any():  # the sum overflowed; every value is finite
            return
    pos = np.unravel_index(int(np.argmax(bad)), a.shape)
    pos = tuple(int(i) for i in pos)
    raise ValueError(
        f"{what} must hold finite values, got {a[pos]} at position {pos} "
        f"({int(bad.sum())} non-finite value(s) in total).")
