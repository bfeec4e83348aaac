"""Optimizer kernels (float32, in place) vs the NumPy transcription of ops.h's formulas.

The updates are elementwise, so the float32 kernels must match the reference
to rounding: max|a-b|/max|b| <= 1e-6 per buffer after every step. The
reference state is rounded to float32 after each step, as the kernel's is.
Sizes are not multiples of the vector width, to reach the scalar tails.
"""

import re

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import scaled_error

TOL = 1e-6
SIZES = [1, 7, 15, 17, 33, 1003, 100_003]
STEPS = 6


def f32(rng, n, scale=1.0):
    return (scale * rng.standard_normal(n)).astype(np.float32)


def check(name, got, want, context, before=None):
    """max|got-want| / max|want| <= TOL; with `before` (the buffer before the step) the
    scale is max(|want|, |before|): float32 rounds at the operands' scale, and a
    one-element result that cancels to near zero would otherwise measure noise."""
    err = scaled_error(got, want)
    if before is not None:
        scale = max(float(np.max(np.abs(want))), float(np.max(np.abs(before))), 1e-30)
        err = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
    assert err <= TOL, f"{context}: {name} error {err:.3g} > {TOL:g}"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("lr, beta_1, beta_2, eps, first_step", [
    pytest.param(1e-3, 0.9, 0.999, 1e-7, 1, id="defaults"),
    pytest.param(0.05, 0.8, 0.99, 1e-3, 1, id="lr0.05-b0.8-0.99-eps1e-3"),
    pytest.param(1e-2, 0.9, 0.999, 1e-7, 1000, id="from-step-1000"),
])
def test_adam(n, lr, beta_1, beta_2, eps, first_step, rng, seed):
    w = f32(rng, n)
    m = np.zeros(n, np.float32) if first_step == 1 else f32(rng, n, 0.1)
    v = np.zeros(n, np.float32) if first_step == 1 else np.abs(f32(rng, n, 0.01))
    for step in range(first_step, first_step + STEPS):
        g = f32(rng, n, 0.1)
        g[1::5] = 0.0  # zero gradients with zero state: 0/(0+eps) must stay 0
        before = (w.copy(), m.copy(), v.copy())
        _core.adam_update(w, g, m, v, step=step, lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=eps)
        # Each step from the kernel's own state (no accumulated drift), measured at the scale
        # of its operands: the weight and its update for w, the old and new moments for m, v.
        rw, rm, rv = ref.adam_update(*before[:1], g, *before[1:], step, lr, beta_1, beta_2, eps)
        context = f"adam n={n} step={step} lr={lr} seed={seed}"
        for name, a, b, prev in zip("wmv", (w, m, v), (rw, rm, rv), before):
            assert a.dtype == np.float32
            check(name, a, b, context, np.concatenate([prev, b - prev]))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                                (0.5, True)])
def test_sgd(n, momentum, nesterov, rng, seed):
    lr = 0.03
    w = f32(rng, n)
    u = f32(rng, n, 0.01)
    for step in range(STEPS):
        g = f32(rng, n)
        before = (w.copy(), u.copy())
        _core.sgd_update(w, g, u, lr=lr, momentum=momentum, nesterov=nesterov)
        # The reference starts each step from the kernel's state: float32 rounding of earlier
        # steps must not accumulate into the error of this one. Float32 rounds at the scale of
        # the largest operand (w, μu or lr·g), so that is the scale of the error.
        rw, ru = ref.sgd_update(before[0], g, before[1], lr, momentum, nesterov)
        operands = np.concatenate([before[0], momentum * ru, lr * g.astype(np.float64)])
        context = f"sgd n={n} momentum={momentum} nesterov={nesterov} step={step} seed={seed}"
        check("w", w, rw, context, operands)
        check("u", u, ru, context, operands)
    if momentum == 0.0:
        u0 = u.copy()
        g = f32(rng, n)
        _core.sgd_update(w, g, u, lr=lr)
        np.testing.assert_array_equal(u, u0, err_msg="momentum 0 must leave u untouched")


def test_sgd_without_velocity_buffer(rng, seed):
    w = f32(rng, 37)
    g = f32(rng, 37)
    want = ref.sgd_update(w, g, None, 0.1)[0]
    _core.sgd_update(w, g, None, lr=0.1)
    check("w", w, want, f"sgd u=None seed={seed}")
    with pytest.raises(ValueError, match=r"\bu\b"):
        _core.sgd_update(w, g, None, lr=0.1, momentum=0.9)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("lr, rho, eps", [(1e-3, 0.9, 1e-7), (0.1, 0.5, 1e-2)])
def test_rmsprop(n, lr, rho, eps, rng, seed):
    w = f32(rng, n)
    s = np.zeros(n, np.float32)
    for step in range(STEPS):
        g = f32(rng, n, 0.1)
        before = (w.copy(), s.copy())
        _core.rmsprop_update(w, g, s, lr=lr, rho=rho, epsilon=eps)
        rw, rs = ref.rmsprop_update(before[0], g, before[1], lr, rho, eps)  # from the kernel's state
        context = f"rmsprop n={n} lr={lr} rho={rho} step={step} seed={seed}"
        check("w", w, rw, context, np.concatenate([before[0], rw - before[0]]))
        check("s", s, rs, context, np.concatenate([before[1], rs - before[1]]))


def test_empty_buffers_are_a_no_op():
    e = np.zeros(0, np.float32)
    _core.adam_update(e, e.copy(), e.copy(), e.copy(), step=1, lr=0.1)
    _core.sgd_update(e, e.copy(), e.copy(), lr=0.1, momentum=0.9)
    _core.rmsprop_update(e, e.copy(), e.copy(), lr=0.1)


def test_strided_gradient_is_read_correctly(rng, seed):
    """g is only read, so a strided view must work and give the contiguous result."""
    n = 101
    w1 = f32(rng, n)
    w2 = w1.copy()
    m1, v1 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    m2, v2 = m1.copy(), v1.copy()
    g_wide = f32(rng, 2 * n)
    _core.adam_update(w1, g_wide[::2], m1, v1, step=1, lr=0.01)
    _core.adam_update(w2, np.ascontiguousarray(g_wide[::2]), m2, v2, step=1, lr=0.01)
    np.testing.assert_array_equal(w1, w2, err_msg=f"seed={seed}")
    np.testing.assert_array_equal(m1, m2)


@pytest.mark.parametrize("which", ["w", "m", "v"])
def test_strided_state_is_updated_in_place_or_refused(which, rng, seed):
    """An in-place buffer that is a strided view must not be silently copied and lost."""
    n = 50
    bufs = {"w": f32(rng, n), "m": np.zeros(n, np.float32), "v": np.zeros(n, np.float32)}
    g = f32(rng, n)
    want = ref.adam_update(bufs["w"], g, bufs["m"], bufs["v"], 1, 0.01)
    parent = np.zeros(2 * n, np.float32)
    parent[::2] = bufs[which]
    bufs[which] = parent[::2]
    try:
        _core.adam_update(bufs["w"], g, bufs["m"], bufs["v"], step=1, lr=0.01)
    except ValueError as exc:
        assert re.search(rf"\b{which}\b", str(exc)), f"the error must name {which!r}: {exc}"
        return
    for name, k in (("w", 0), ("m", 1), ("v", 2)):
        check(name, bufs[name], want[k], f"strided {which} seed={seed}")
