"""activations.softmax takes the row maximum down the columns of a transposed copy for many
short rows: the bits must be those of the plain last-axis formula."""

import numpy as np
import pytest

from fusedlstm import activations


def _plain(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


@pytest.mark.parametrize("shape", [(5120, 27), (64, 32), (63, 32), (64, 33), (200, 1), (3, 40, 27)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_bits_equal_the_plain_formula(shape, dtype, rng, seed):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1, shape[-1])
    flat[::7] = 0.0
    if shape[-1] > 1:  # (a row of -inf alone has no softmax)
        flat[1::11, 0] = -np.inf
    flat[2::13] = -0.0
    got = activations.softmax(x)
    np.testing.assert_array_equal(got, _plain(x), err_msg=f"shape {shape}, seed={seed}")
    assert got.dtype == dtype
