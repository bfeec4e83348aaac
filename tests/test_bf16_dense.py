"""precision="bfloat16" in the dense kernels: _core.matmul and _core.dense_softmax_xent.

Under bfloat16 the GEMM operands are rounded (reference.matmul_bf16) and
everything else stays float32: the softmax, the loss, the bias gradient. A
product too small to gain (reference.bf16_pays, K < 16 or M·N·K < 32768) stays
float32, bit for bit the float32 path.

Tolerances: the forward (loss, probabilities) against the float64 reference on
the same rounded operands, max|a-b|/max|b| <= 1e-5 as for float32. The weight
and input gradients round dz, which the kernel computes in float32 and the
reference in float64: where the two land on different sides of a bfloat16
rounding boundary (about 1 element in 10^4 here) that element moves by one
bfloat16 step (2^-8 relative), so those are compared at 2e-3 (db, a float32
sum, at the float32 path's 1e-4); a wrong
transpose, a float32 product or an unrounded operand is off by far more (the
test checks that float32 products would miss the forward tolerance).
"""

import numpy as np
import pytest

from conftest import require
from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import scaled_error

OUT_TOL = 1e-5
GRAD_TOL = 2e-3      # dx, dW (seen: 2.3e-4 at worst over 240 problems)
F32_GRAD_TOL = 1e-4  # db: a float32 sum of dz, as in the float32 path


@pytest.fixture(autouse=True)
def _needs_ml_dtypes():
    require("ml_dtypes")


def dense_problem(rng, N, D, C, sparse=True, weights=False, bias=True):
    x = rng.standard_normal((N, D)).astype(np.float32)
    W = (rng.standard_normal((D, C)) / np.sqrt(D)).astype(np.float32)
    b = (0.1 * rng.standard_normal(C)).astype(np.float32) if bias else None
    labels = rng.integers(0, C, N) if sparse else rng.dirichlet(np.ones(C), N).astype(np.float32)
    w = rng.random(N).astype(np.float32) if weights else None
    return x, W, b, labels, w


@pytest.mark.parametrize("M, N, K, ta, tb", [(64, 100, 130, False, False), (37, 129, 300, True, False),
                                               (200, 33, 64, False, True), (17, 1000, 17, True, True)])
def test_matmul_bf16_matches_rounded_reference(rng, seed, M, N, K, ta, tb):
    assert ref.bf16_pays(M, N, K)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    got = _core.matmul(a, b, trans_a=ta, trans_b=tb, precision="bfloat16")
    err = scaled_error(got, ref.matmul_bf16(a, b, ta, tb))
    assert err <= OUT_TOL, f"seed={seed}: {err:.3g}"
    exact = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert scaled_error(got, exact) > 10 * OUT_TOL, "bfloat16 operands must show in the result"
    out = rng.standard_normal((M, N)).astype(np.float32)
    want = out + ref.matmul_bf16(a, b, ta, tb)
    _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out, accumulate=True, precision="bfloat16")
    assert scaled_error(out, want) <= OUT_TOL


@pytest.mark.parametrize("M, N, K", [(64, 64, 15), (1, 2047, 16), (2, 1023, 16), (3, 5, 7), (100, 100, 8)])
def test_matmul_below_the_size_rule_is_float32_bit_for_bit(rng, M, N, K):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    assert not ref.bf16_pays(M, N, K)
    np.testing.assert_array_equal(_core.matmul(a, b, precision="bfloat16"), _core.matmul(a, b))


@pytest.mark.parametrize("M, N, K", [(1, 2048, 16), (2, 1024, 16), (64, 64, 16)])
def test_matmul_at_the_size_rule_is_bfloat16(rng, M, N, K):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    assert ref.bf16_pays(M, N, K)
    np.testing.assert_array_equal(_core.matmul(a, b, precision="bfloat16"), _core.gemm_bf16(a, b))


def test_float32_precision_is_the_default_bit_for_bit(rng):
    a = rng.standard_normal((70, 90)).astype(np.float32)
    b = rng.standard_normal((90, 50)).astype(np.float32)
    np.testing.assert_array_equal(_core.matmul(a, b, precision="float32"), _core.matmul(a, b))
    x, W, bias, labels, _ = dense_problem(rng, 40, 30, 20)
    for k, d in zip(_core.dense_softmax_xent(x, W, bias, labels, precision="float32"),
                    _core.dense_softmax_xent(x, W, bias, labels)):
        np.testing.assert_array_equal(k, d)


PROBLEMS = [
    pytest.param(dict(N=300, D=64, C=40), id="sparse"),
    pytest.param(dict(N=256, D=128, C=27, weights=True), id="sparse-weights"),
    pytest.param(dict(N=200, D=48, C=33, sparse=False), id="categorical"),
    pytest.param(dict(N=160, D=96, C=50, bias=False), id="no-bias"),
]


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_dense_softmax_xent_bf16_matches_rounded_reference(rng, seed, problem, from_logits):
    p = dict(problem)
    N, D, C = p.pop("N"), p.pop("D"), p.pop("C")
    x, W, b, labels, w = dense_problem(rng, N, D, C, **p)
    # All three products are above the size rule: every one of them is bfloat16.
    assert ref.bf16_pays(N, C, D) and ref.bf16_pays(N, D, C) and ref.bf16_pays(D, C, N)
    got = _core.dense_softmax_xent(x, W, b, labels, w, from_logits=from_logits, precision="bfloat16")
    want = ref.dense_softmax_xent(x, W, b, labels, w, from_logits=from_logits, precision="bfloat16")
    ctx = f"seed={seed} {problem} from_logits={from_logits}"
    for name, g, r, tol in zip(("loss", "probs", "dx", "dW", "db"), got, want,
                               (OUT_TOL, OUT_TOL, GRAD_TOL, GRAD_TOL, F32_GRAD_TOL)):
        if r is None:
            assert g is None, f"{ctx}: {name}"
            continue
        err = scaled_error(np.asarray(g), np.asarray(r))
        assert err <= tol, f"{ctx}: {name} max|a-b|/max|b| = {err:.3g} > {tol}"
    # The float32 reference is further away than the tolerance: bfloat16 was used.
    exact = ref.dense_softmax_xent(x, W, b, labels, w, from_logits=from_logits)
    assert scaled_error(got[1], exact[1]) > OUT_TOL, f"{ctx}: probabilities look float32"


def test_dense_softmax_xent_small_shapes_stay_float32(rng):
    x, W, b, labels, _ = dense_problem(rng, 7, 5, 3)  # K = 5, 3, 7: all below the rule
    for k, d in zip(_core.dense_softmax_xent(x, W, b, labels, precision="bfloat16"),
                    _core.dense_softmax_xent(x, W, b, labels)):
        np.testing.assert_array_equal(k, d)


def test_bfloat16_thread_count_does_not_change_a_bit(rng):
    saved = _core.get_num_threads()
    try:
        x, W, b, labels, _ = dense_problem(rng, 500, 256, 64)
        runs = []
        for nt in (1, 2, 3):
            _core.set_num_threads(nt)
            runs.append(_core.dense_softmax_xent(x, W, b, labels, precision="bfloat16"))
        for run in runs[1:]:
            for k, d in zip(run, runs[0]):
                np.testing.assert_array_equal(k, d)
    finally:
        _core.set_num_threads(saved)


def test_bad_precision_is_named():
    a = np.ones((2, 3), np.float32)
    for fn, args in ((_core.matmul, (a, a.T)),
                     (_core.dense_softmax_xent, (a, a.T.copy(), None, np.array([0, 1])))):
        with pytest.raises(ValueError, match=r"precision.*'float32' or 'bfloat16'.*'float16'"):
            fn(*args, precision="float16")
        with pytest.raises(TypeError, match=r"precision='bfloat16' needs float32 arrays, got float64"):
            fn(*(x.astype(np.float64) if isinstance(x, np.ndarray) and x.dtype == np.float32 else x
                 for x in args), precision="bfloat16")
