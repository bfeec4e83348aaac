"""Subnormals are flushed to zero inside the kernels, and only there.

Every kernel call runs with subnormal inputs read as zero and subnormal results
written as zero (x86: MXCSR FTZ+DAZ; AArch64: FPCR.FZ, which does both), on the
caller's thread and on the pool's workers, and gives the caller its own mode
back. Speed is what the flush is for (a subnormal operand costs ~100x on x86),
but tests assert no timings: the flush is checked by its results instead. With
the flush, x86 and ARM read and write subnormals the same way, so the exact
zeros below are expected on both.

float32: normal down to 1.2e-38, so 1e-20·1e-20 = 1e-40 is a subnormal result
and 1e-40 a subnormal input. float64: 1e-160·1e-160 and 1e-320 likewise.
"""

import numpy as np
import pytest

from fusedlstm import _core

TINY = {np.float32: (1e-20, 1e-40), np.float64: (1e-160, 1e-320)}  # (factor, subnormal)


def caller_keeps_subnormals(dtype):
    """True when this thread computes subnormals (its FP mode does not flush)."""
    f, sub = (dtype(v) for v in TINY[dtype])
    with np.errstate(under="ignore"):
        return f * f != 0 and sub * dtype(1e10) != 0 and sub != 0


@pytest.fixture(autouse=True)
def threads_restored():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_flushes_subnormal_results_and_inputs(dtype, threads):
    assert caller_keeps_subnormals(dtype), "the test process already flushes subnormals"
    _core.set_num_threads(threads)
    f, sub = TINY[dtype]
    # 256^3 multiply-adds: above the threading threshold, so with 2 threads the
    # workers compute part of C under the caller's (flushing) mode.
    n = 256
    a = np.full((n, n), f, dtype)
    # Each product is subnormal: flushed, every sum is 0 (unflushed: n·1e-40,
    # a normal float32 2.6e-38, so nothing else would make it zero).
    got = _core.matmul(a, a)
    assert np.count_nonzero(got) == 0, f"{np.count_nonzero(got)} of {got.size} results not flushed, e.g. {got.flat[0]!r}"
    # A subnormal input is read as zero (unflushed: 1e-40·1e10 = 1e-30, normal).
    s = np.full((n, n), sub, dtype)
    one = np.full((n, n), 1e10, dtype)
    got = _core.matmul(s, one)
    assert np.count_nonzero(got) == 0, f"subnormal inputs were not read as zero, e.g. {got.flat[0]!r}"
    assert caller_keeps_subnormals(dtype), "the caller's FP mode was not restored after matmul"


def lstm_decaying_to_subnormal(B=3, T=6, I=5, H=11):
    """An LSTM whose cell state is subnormal from the start and whose new
    contributions are subnormal: c0 = 1e-39, f = σ(30) = 1, i = σ(-30) = 9e-14,
    g = tanh(1e-30) = 1e-30, so i·g = 9e-44 and, unflushed, c_t ≈ 1e-39 at every step."""
    x = np.zeros((B, T, I), np.float32)
    W = np.zeros((I, 4 * H), np.float32)
    U = np.zeros((H, 4 * H), np.float32)
    b = np.zeros(4 * H, np.float32)
    b[:H], b[H:2 * H], b[2 * H:3 * H] = -30.0, 30.0, 1e-30
    h0 = np.zeros((B, H), np.float32)
    c0 = np.full((B, H), 1e-39, np.float32)
    return x, W, U, b, h0, c0


@pytest.mark.parametrize("threads", [1, 2])
def test_lstm_state_in_the_subnormal_range_is_flushed(threads):
    assert caller_keeps_subnormals(np.float32)
    _core.set_num_threads(threads)
    x, W, U, b, h0, c0 = lstm_decaying_to_subnormal()
    y, hT, cT, _ = _core.lstm_forward(x, W, U, b, h0, c0)
    # c0 is read as 0 and i·g is flushed: the state is exactly zero, and so is h = o·tanh(c).
    for name, v in (("y", y), ("h_T", hT), ("c_T", cT)):
        assert np.count_nonzero(v) == 0, f"{name} not flushed: max {np.max(np.abs(v))!r}"
    # The float64 reference keeps ~1e-39 there: the flush differs from it by less
    # than the smallest normal float32, nothing more.
    from fusedlstm import reference as ref
    r = ref.lstm_forward(*(a.astype(np.float64) for a in (x, W, U, b, h0, c0)))
    for got, want in zip((y, hT, cT), r[:3]):
        assert float(np.max(np.abs(got - want))) < np.finfo(np.float32).tiny
    assert caller_keeps_subnormals(np.float32), "the caller's FP mode was not restored after lstm_forward"


def test_lstm_backward_reads_subnormal_gradients_as_zero(rng):
    """Upstream gradients that are all subnormal (a loss scaled far down) give
    exactly zero gradients everywhere; unflushed they would be ~1e-39 and slow."""
    B, T, I, H = 4, 5, 6, 9
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    W = (rng.standard_normal((I, 4 * H)) / 3).astype(np.float32)
    U = (rng.standard_normal((H, 4 * H)) / 3).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    c0 = rng.standard_normal((B, H)).astype(np.float32)
    _, _, _, cache = _core.lstm_forward(x, W, U, b, h0, c0, training=True)
    dy, dhT, dcT = (rng.uniform(-1, 1, s).astype(np.float32) * np.float32(1e-39)
                    for s in ((B, T, H), (B, H), (B, H)))
    assert np.all(np.abs(dy[dy != 0]) < np.finfo(np.float32).tiny)  # subnormal indeed
    grads = _core.lstm_backward(cache, dy, dhT, dcT)
    for name, g in zip(("dx", "dh0", "dc0", "dW", "dU", "db"), grads):
        assert np.count_nonzero(g) == 0, f"{name}: {np.count_nonzero(g)} nonzero, max {np.max(np.abs(g))!r}"
    assert caller_keeps_subnormals(np.float32), "the caller's FP mode was not restored after lstm_backward"


def test_fp_mode_is_restored_when_a_kernel_raises():
    x, W, U, b, h0, c0 = lstm_decaying_to_subnormal()
    # Token 99 is out of range for a 5-row table: lstm_forward raises while its
    # guard has the flushing mode set (the ids are checked inside the call).
    ids = np.array([[0, 99]], np.int64)
    with pytest.raises(ValueError, match="token id"):
        _core.lstm_forward(ids, W, U, b, h0[:1], c0[:1])
    assert caller_keeps_subnormals(np.float32), "a raising kernel call left the FP mode changed"


def test_normal_values_are_not_flushed():
    """The flush only touches subnormals: the smallest normal float32 passes through."""
    tiny = np.finfo(np.float32).tiny
    a = np.array([[tiny * 4]], np.float32)
    got = _core.matmul(a, np.array([[0.5]], np.float32))
    assert got[0, 0] == np.float32(tiny * 2)
