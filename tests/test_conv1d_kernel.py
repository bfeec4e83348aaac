"""Conv1D kernels (_core.conv1d_forward / conv1d_backward) against the float64 reference and finite differences.

Keras 3 semantics, channels_last: x (B, L, C), W (kernel_size, C/groups,
filters), padding 'valid' / 'same' (the odd padding step on the right, as
keras/src/backend/torch/nn.py splits it) / 'causal', strides, dilation_rate,
groups. The reference itself was checked against keras.layers.Conv1D
(3.15.1, torch backend) to float32 rounding for every padding mode, even and
odd kernels and lengths, strides, dilation and groups.

Thresholds: float64 kernel vs central differences <= 1e-6
(max|a-b|/max(1,|a|,|b|)); float64 kernel vs reference <= 1e-10; float32 vs
reference <= 1e-5 of max|ref| (outputs) and <= 1e-4 (gradients).
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import assert_all_close, fd_gradient, rel_error, scaled_error

FD_TOL, F64_TOL, F32_OUT_TOL, F32_GRAD_TOL = 1e-6, 1e-10, 1e-5, 1e-4
GRADS = ("dx", "dW", "db")


def conv_problem(rng, B, L, C, F, K, dtype=np.float64, bias=True, **opts):
    groups = opts.get("groups", 1)
    x = rng.standard_normal((B, L, C)).astype(dtype)
    W = (rng.standard_normal((K, C // groups, F)) / np.sqrt(K * C / groups)).astype(dtype)
    b = (0.1 * rng.standard_normal(F)).astype(dtype) if bias else None
    return dict(x=x, W=W, b=b), opts


def kernel_run(p, opts, R):
    y = _core.conv1d_forward(p["x"], p["W"], p["b"], **opts)
    dx, dW, db = _core.conv1d_backward(R, p["x"], p["W"], use_bias=p["b"] is not None, **opts)
    return y, dict(dx=dx, dW=dW, db=db)


def reference_run(p, opts, R):
    y = ref.conv1d_forward(p["x"], p["W"], p["b"], **opts)
    dx, dW, db = ref.conv1d_backward(R, p["x"], p["W"], p["b"] is not None, **opts)
    return y, dict(dx=dx, dW=dW, db=db)


def upstream(rng, p, opts):
    """dL/dy for L = Σ y ⊙ R, in x's dtype (the output shape from the reference)."""
    y = ref.conv1d_forward(p["x"], p["W"], p["b"], **opts)
    return rng.standard_normal(y.shape).astype(p["x"].dtype)


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


# (B, L, C, F, K) and options; odd sizes, sizes around the vector widths
OPTIONS = [
    case("valid"),
    case("same", padding="same"),
    case("same-even_kernel", padding="same", K=4),
    case("same-stride2", padding="same", strides=2),
    case("same-stride3-even_kernel", padding="same", strides=3, K=4),
    case("causal", padding="causal"),
    case("causal-dilation2", padding="causal", dilation_rate=2),
    case("same-dilation3", padding="same", dilation_rate=3),
    case("valid-stride2-dilation2", strides=2, dilation_rate=2),
    case("groups3", groups=3),
    case("same-groups3-stride2", padding="same", groups=3, strides=2),
    case("kernel1", K=1),
    case("kernel_longer_than_input-same", K=11, padding="same"),
    case("no_bias", bias=False),
]


def _problem(rng, kw, dtype, B=2, L=9, C=6, F=9):
    kw = dict(kw)
    K = kw.pop("K", 3)
    bias = kw.pop("bias", True)
    return conv_problem(rng, B, L, C, F, K, dtype, bias=bias, **kw)


@pytest.mark.parametrize("kw", OPTIONS)
def test_float64_kernel_matches_finite_differences(kw, rng, seed):
    p, opts = _problem(rng, kw, np.float64)
    R = upstream(rng, p, opts)
    _, grads = kernel_run(p, opts, R)
    forward = lambda: [_core.conv1d_forward(p["x"], p["W"], p["b"], **opts)]  # noqa: E731
    numeric = {"dx": fd_gradient(forward, p["x"], [R]), "dW": fd_gradient(forward, p["W"], [R])}
    if p["b"] is not None:
        numeric["db"] = fd_gradient(forward, p["b"], [R])
    else:
        assert grads["db"] is None
    assert_all_close({k: grads[k] for k in numeric}, numeric, FD_TOL, rel_error,
                     f"conv1d float64 kernel vs FD {kw} seed={seed}")


@pytest.mark.parametrize("kw", OPTIONS)
def test_reference_matches_finite_differences(kw, rng, seed):
    p, opts = _problem(rng, kw, np.float64, B=2, L=7, C=3, F=3)
    if opts.get("groups", 1) == 3:
        p, opts = _problem(rng, kw, np.float64, B=2, L=7, C=3, F=6)
    R = upstream(rng, p, opts)
    _, grads = reference_run(p, opts, R)
    forward = lambda: [ref.conv1d_forward(p["x"], p["W"], p["b"], **opts)]  # noqa: E731
    numeric = {"dx": fd_gradient(forward, p["x"], [R]), "dW": fd_gradient(forward, p["W"], [R])}
    if p["b"] is not None:
        numeric["db"] = fd_gradient(forward, p["b"], [R])
    assert_all_close({k: grads[k] for k in numeric}, numeric, FD_TOL, rel_error,
                     f"conv1d reference vs FD {kw} seed={seed}")


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [(np.float64, F64_TOL, F64_TOL),
                                                       (np.float32, F32_OUT_TOL, F32_GRAD_TOL)])
@pytest.mark.parametrize("kw", OPTIONS)
def test_kernel_matches_reference(kw, dtype, out_tol, grad_tol, rng, seed):
    p, opts = _problem(rng, kw, dtype, B=5, L=37, C=21, F=33)
    R = upstream(rng, p, opts)
    y, grads = kernel_run(p, opts, R)
    ry, rgrads = reference_run(p, opts, R)
    context = f"conv1d {np.dtype(dtype).name} kernel vs reference {kw} seed={seed}"
    assert y.dtype == dtype and all(g is None or g.dtype == dtype for g in grads.values()), context
    assert_all_close({"y": y}, {"y": ry}, out_tol, scaled_error, context)
    assert_all_close(grads, rgrads, grad_tol, scaled_error, context)


@pytest.mark.parametrize("shp, kw", [
    ((1, 1, 1, 1, 1), {}),
    ((3, 5, 1, 1, 5), {}),
    ((64, 100, 64, 64, 5), dict(padding="same")),      # a typical CNN-LSTM front end
    ((7, 300, 17, 130, 4), dict(padding="causal", dilation_rate=3)),
    ((2, 1000, 3, 16, 7), dict(strides=2, padding="same")),
    ((4, 50, 64, 96, 3), dict(groups=32, padding="same")),  # depthwise-like: 2 channels per group
    ((3, 20, 256, 8, 2), dict(groups=8)),
])
def test_float32_kernel_matches_reference_shapes(shp, kw, rng, seed):
    B, L, C, F, K = shp
    p, opts = conv_problem(rng, B, L, C, F, K, np.float32, **kw)
    R = upstream(rng, p, opts)
    y, grads = kernel_run(p, opts, R)
    ry, rgrads = reference_run(p, opts, R)
    context = f"conv1d float32 kernel vs reference (B,L,C,F,K)={shp} {kw} seed={seed}"
    assert_all_close({"y": y}, {"y": ry}, F32_OUT_TOL, scaled_error, context)
    assert_all_close(grads, rgrads, F32_GRAD_TOL, scaled_error, context)


# ---------------------------------------------------------------------------
# Semantics checked directly
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("L, K, s, d, want", [
    (7, 4, 1, 1, (1, 2)),    # stride 1: K-1 = 3, the odd step on the right
    (8, 4, 2, 1, (1, 1)),    # ceil(8/2)=4 outputs: (4-1)*2 + 4 - 8 = 2
    (7, 2, 2, 1, (0, 1)),    # (4-1)*2 + 2 - 7 = 1
    (9, 3, 3, 1, (0, 0)),    # (3-1)*3 + 3 - 9 = 0
    (5, 3, 1, 2, (2, 2)),    # dilated span 5
    (4, 5, 2, 1, (1, 2)),    # a kernel longer than the input: (2-1)*2 + 5 - 4 = 3
])
def test_same_padding_split_is_keras(L, K, s, d, want):
    assert ref.conv1d_padding(L, K, s, "same", d) == want
    x = np.ones((1, L, 1))
    W = np.ones((K, 1, 1))
    y = _core.conv1d_forward(x, W, None, strides=s, padding="same", dilation_rate=d)
    assert y.shape == (1, -(-L // s), 1)
    # with all-ones data, an output counts the taps that land inside x
    left = want[0]
    counts = [sum(0 <= t * s + k * d - left < L for k in range(K)) for t in range(y.shape[1])]
    np.testing.assert_array_equal(y[0, :, 0], counts)


def test_causal_output_does_not_see_the_future(rng):
    x = rng.standard_normal((2, 20, 3))
    W = rng.standard_normal((4, 3, 5))
    y = _core.conv1d_forward(x, W, None, padding="causal", dilation_rate=2)
    assert y.shape == (2, 20, 5)
    x2 = x.copy()
    x2[:, 11:] = rng.standard_normal((2, 9, 3))
    y2 = _core.conv1d_forward(x2, W, None, padding="causal", dilation_rate=2)
    np.testing.assert_array_equal(y2[:, :11], y[:, :11])
    assert np.all(y2[:, 11] != y[:, 11])


def test_groups_are_independent_convolutions(rng):
    x = rng.standard_normal((3, 15, 8))
    W = rng.standard_normal((3, 2, 12))  # groups = 4: 2 channels -> 3 filters each
    y = _core.conv1d_forward(x, W, None, groups=4, padding="same")
    for g in range(4):
        part = _core.conv1d_forward(np.ascontiguousarray(x[:, :, 2 * g:2 * g + 2]), W[:, :, 3 * g:3 * g + 3], None,
                                    padding="same")
        np.testing.assert_allclose(y[:, :, 3 * g:3 * g + 3], part, rtol=1e-13, atol=1e-13)


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shp, kw", [((64, 100, 64, 64, 5), dict(padding="same")),
                                     ((9, 333, 7, 40, 4), dict(padding="causal", dilation_rate=2, groups=1)),
                                     ((5, 120, 48, 48, 3), dict(groups=6, strides=2, padding="same"))])
def test_thread_count_does_not_change_results(shp, kw, dtype, rng, seed, restore_threads):
    p, opts = conv_problem(rng, *shp, dtype, **kw)
    R = upstream(rng, p, opts)
    results = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        results.append(kernel_run(p, opts, R))
    for n, (y, g) in zip((2, 3), results[1:]):
        np.testing.assert_array_equal(y, results[0][0], err_msg=f"y with {n} threads, seed={seed}")
        for name in GRADS:
            np.testing.assert_array_equal(g[name], results[0][1][name], err_msg=f"{name} with {n} threads")


# ---------------------------------------------------------------------------
# Backward options, layouts, bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_out_arrays_accumulate_and_need_dx(dtype, rng, seed):
    p, opts = conv_problem(rng, 4, 30, 6, 10, 3, dtype, padding="same")
    R = upstream(rng, p, opts)
    dx, dW, db = _core.conv1d_backward(R, p["x"], p["W"], **opts)
    outW, outb = np.full_like(dW, np.nan), np.full_like(db, np.nan)
    got = _core.conv1d_backward(R, p["x"], p["W"], dW_out=outW, db_out=outb, need_dx=False, **opts)
    assert got[0] is None and got[1] is outW and got[2] is outb
    np.testing.assert_array_equal(outW, dW)
    np.testing.assert_array_equal(outb, db)
    startW, startb = rng.standard_normal(dW.shape).astype(dtype), rng.standard_normal(db.shape).astype(dtype)
    accW, accb = startW.copy(), startb.copy()
    _core.conv1d_backward(R, p["x"], p["W"], dW_out=accW, db_out=accb, accumulate=True, **opts)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert scaled_error(accW, startW.astype(np.float64) + dW) <= tol, f"seed={seed}"
    assert scaled_error(accb, startb.astype(np.float64) + db) <= tol, f"seed={seed}"
    nob = _core.conv1d_backward(R, p["x"], p["W"], use_bias=False, **opts)
    assert nob[2] is None
    np.testing.assert_array_equal(nob[1], dW)


def test_non_contiguous_inputs_give_the_contiguous_results(rng):
    p, opts = conv_problem(rng, 3, 17, 5, 7, 3, np.float32, padding="same", strides=2)
    R = upstream(rng, p, opts)
    want = kernel_run(p, opts, R)
    odd = dict(x=np.asfortranarray(p["x"]), W=p["W"][:, :, ::-1].copy()[:, :, ::-1], b=p["b"][::-1].copy()[::-1])
    assert not odd["W"].flags.c_contiguous
    got = kernel_run(odd, opts, np.asfortranarray(R))
    np.testing.assert_array_equal(got[0], want[0])
    for name in GRADS:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)


def _x(*shape, dt=np.float32):
    return np.ones(shape, dt)


@pytest.mark.parametrize("args, kw, exc, pattern", [
    ((_x(2, 9, 6), _x(3, 4, 8), None), {}, ValueError,
     r"W must have shape \(kernel_size, C/groups, filters\) = \(3, 6, 8\), got \(3, 4, 8\)"),
    ((_x(2, 9, 6), _x(3, 2, 8), None), dict(groups=4), ValueError, r"C = 6 channels, which groups = 4 does not divide"),
    ((_x(2, 9, 6), _x(3, 2, 8), None), dict(groups=2), ValueError,
     r"W must have shape \(kernel_size, C/groups, filters\) = \(3, 3, 8\), got \(3, 2, 8\)"),
    ((_x(2, 9, 6), _x(3, 2, 7), None), dict(groups=3), ValueError, r"7 filters, which groups = 3 does not divide"),
    ((_x(2, 9, 6), _x(3, 6, 8), _x(7)), {}, ValueError, r"b must have shape \(filters,\) = \(8,\), got \(7,\)"),
    ((_x(2, 9, 6), _x(3, 6, 8), None), dict(padding="SAME"), ValueError, r"padding must be 'valid', 'same' or"),
    ((_x(2, 9, 6), _x(3, 6, 8), None), dict(strides=0), ValueError, r"strides must be a positive integer"),
    ((_x(2, 9, 6), _x(3, 6, 8), None), dict(dilation_rate=-1), ValueError, r"dilation_rate must be a positive"),
    ((_x(2, 9, 6), _x(3, 6, 8), None), dict(groups=0), ValueError, r"groups must be a positive integer"),
    ((_x(2, 4, 6), _x(3, 6, 8), None), dict(dilation_rate=2), ValueError,
     r"L = 4 steps \(4 with padding\), fewer than .* = 5: there is no output step"),
    ((_x(2, 9, 6), _x(3, 6, 8, dt=np.float64), None), {}, TypeError, r"W is float64 but x is float32"),
    ((_x(2, 9, 6, dt=np.int32), _x(3, 6, 8), None), {}, TypeError, r"x must be a float32 or float64 array"),
    ((_x(9, 6), _x(3, 6, 8), None), {}, ValueError, r"x must be 3-D \(B, L, C\)"),
    ((_x(2, 0, 6), _x(3, 6, 8), None), {}, ValueError, r"L \(steps\) must be at least 1"),
    ((None, _x(3, 6, 8), None), {}, TypeError, r"conv1d_forward: x must be a numpy array, got None"),
])
def test_forward_bad_input(args, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _core.conv1d_forward(*args, **kw)


def test_backward_bad_input():
    x, W = _x(2, 9, 6), _x(3, 6, 8)
    with pytest.raises(ValueError, match=r"dy must have shape \(B, L_out, filters\) = \(2, 7, 8\), got \(2, 9, 8\)"):
        _core.conv1d_backward(_x(2, 9, 8), x, W)
    with pytest.raises(TypeError, match=r"dy is float64 but x is float32"):
        _core.conv1d_backward(_x(2, 7, 8, dt=np.float64), x, W)
    with pytest.raises(ValueError, match=r"db_out was given but use_bias=False"):
        _core.conv1d_backward(_x(2, 7, 8), x, W, use_bias=False, db_out=_x(8))
    with pytest.raises(ValueError, match=r"dW_out must have shape"):
        _core.conv1d_backward(_x(2, 7, 8), x, W, dW_out=_x(3, 6, 9))
    with pytest.raises(TypeError, match=r"dW_out must be a numpy array \(it is updated in place\)"):
        _core.conv1d_backward(_x(2, 7, 8), x, W, dW_out=[1.0])
