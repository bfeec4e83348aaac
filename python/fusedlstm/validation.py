"""Checks of user data at the API's edge: numeric dtype, finite values.

A NaN or Inf in x, y or a sample weight would otherwise flow through the kernels
and surface epochs later as a NaN loss with no hint of its source; a string or
object array would fail deep inside NumPy with a message that names no argument.
Both are refused where the data enters, naming the argument, what is expected and
what was found (the first bad value and its position).

Cost: one vectorised pass in C++ (`_core.first_nonfinite`) over a contiguous
float32/float64 array; other layouts and dtypes take NumPy's elementwise test.
"""

import numpy as np

from . import _core

__all__ = ["check_numeric", "check_finite"]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_numeric(a, what):
    """Raise TypeError unless `a` has a boolean, integer or floating dtype."""
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array (bool, int or float), got dtype {a.dtype}.")


def check_finite(a, what):
    """Raise ValueError if a floating array holds NaN or +-Inf."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    if a.dtype in _KERNEL_DTYPES and a.flags.c_contiguous and a.flags.aligned:
        if _core.first_nonfinite(a) < 0:
            return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    pos = np.unravel_index(int(np.argmax(bad)), a.shape)
    pos = tuple(int(i) for i in pos)
    raise ValueError(
        f"{what} must hold finite values, got {a[pos]} at position {pos} "
        f"({int(bad.sum())} non-finite value(s) in total).")
