"""The GEMM on a narrow output (N up to one column panel of the micro-kernel): A is
read in place instead of packed, since each of its values is used once. It must
give the bits the packed path gives (the columns of a wider product, which packs
A), at every thread count, and match the float64 product."""

import numpy as np
import pytest

from fusedlstm import _core
from gradcheck import scaled_error


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


# M large enough that A is far above the in-place limit (8192 values); K past one
# K block (384) in the last shape, so later blocks add onto C.
@pytest.mark.parametrize("M, K, N", [(700, 300, 27), (1500, 64, 1), (333, 500, 32), (5000, 17, 9)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_narrow_product_equals_the_packed_path(M, K, N, accumulate, rng, seed, restore_threads):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    wide = np.concatenate([b, rng.standard_normal((K, 40)).astype(np.float32)], axis=1)  # > one panel: packs A
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    c0_wide = np.concatenate([c0, np.zeros((M, 40), np.float32)], axis=1)
    want = a.astype(np.float64) @ b.astype(np.float64) + (c0 if accumulate else 0)
    results = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        c = c0.copy()
        _core.matmul(a, b, out=c, accumulate=accumulate)
        cw = c0_wide.copy()
        _core.matmul(a, wide, out=cw, accumulate=accumulate)
        np.testing.assert_array_equal(c, cw[:, :N], err_msg=f"narrow vs packed columns, {n} threads, seed={seed}")
        results.append(c)
    for n, c in zip((2, 3), results[1:]):
        np.testing.assert_array_equal(c, results[0], err_msg=f"{n} threads vs 1, seed={seed}")
    assert scaled_error(results[0], want) <= 1e-5, f"vs float64, seed={seed}"
