"""The kernel checks every recurrent cell besides the LSTM gets (test_gru_kernel.py, test_simple_rnn_kernel.py).

A cell's test file imports these test functions and provides, as fixtures and
tables, what differs between cells:
  * fixture `cell` ("gru" or "simple_rnn") and fixture `variant` (extra options
    every semantic check runs with, e.g. each GRU reset_after form);
  * module tables, given to `parametrize(metafunc, module)` from the file's
    pytest_generate_tests: OPTIONS (option sets, pytest.param(dict)),
    FD_SHAPES, LARGE_SHAPES, F32_SHAPES, THREAD_SHAPES (shape(B, T, I, H, **options)).
Thresholds (as for the LSTM): float64 kernel vs central differences <= 1e-6;
float64 kernel vs reference <= 1e-10; float32 vs reference <= 1e-5 of max|ref|
(outputs), <= 1e-4 (gradients).
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import assert_all_close, rel_error, scaled_error
from rnn_problems import (F32_GRAD_TOL, F32_OUT_TOL, F64_REF_TOL, GATES, GRAD_NAMES, assert_same_results,
                          check_directional, check_fd_elementwise, compare_with_reference, ctx, kernel_forward,
                          kernel_run, loss_weights, reference_forward, reference_run, rnn_problem)

TABLES = {"kw": "OPTIONS", "fd_shape": "FD_SHAPES", "large_shape": "LARGE_SHAPES", "f32_shape": "F32_SHAPES",
          "thread_shape": "THREAD_SHAPES"}


def parametrize(metafunc, module):
    """pytest_generate_tests of a cell's test file: its tables for the fixtures named in TABLES."""
    for name, table in TABLES.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, getattr(module, table))


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


def shape(B, T, I, H, **kw):
    """One entry of a shape table: ((B, T, I, H), options)."""
    return pytest.param(((B, T, I, H), kw), id=f"B{B}-T{T}-I{I}-H{H}" + "".join(f"-{k}={v}" for k, v in kw.items()))


# The option sets every cell's OPTIONS table starts with (its activations follow).
COMMON_OPTIONS = [
    case("plain"),
    case("mask", mask=True),
    case("mask-zero_output", mask=True, zero_output_for_mask=True),
    case("mask-go_backwards", mask=True, go_backwards=True),
    case("mask-last", mask=True, return_sequences=False),
    case("mask-zero_output-go_backwards-last", mask=True, zero_output_for_mask=True, go_backwards=True,
         return_sequences=False),
    case("go_backwards", go_backwards=True),
    case("last", return_sequences=False),
    case("rec_mask", rec_mask=True),
    case("rec_mask-mask", rec_mask=True, mask=True),
    case("no_bias", bias=False),
    case("ids", vocab=11),
    case("ids-mask-go_backwards-rec_mask", vocab=11, mask=True, go_backwards=True, rec_mask=True),
    case("ids-no_bias-last", vocab=5, bias=False, return_sequences=False),
]


def _backward(cell):
    return getattr(_core, f"{cell}_backward")


# ---------------------------------------------------------------------------
# float64 kernel vs finite differences; the reference vs finite differences
# ---------------------------------------------------------------------------

def test_float64_kernel_matches_finite_differences(cell, kw, rng, seed):
    shp = (4, 6, 3, 3)
    inputs, opts = rnn_problem(cell, rng, *shp, np.float64, **kw)
    check_fd_elementwise(cell, inputs, opts, rng, ctx(cell, "float64 kernel vs FD", shp, kw, seed), kernel_run,
                         kernel_forward)


def test_float64_kernel_matches_finite_differences_shapes(cell, fd_shape, rng, seed):
    shp, kw = fd_shape
    inputs, opts = rnn_problem(cell, rng, *shp, np.float64, **kw)
    check_fd_elementwise(cell, inputs, opts, rng, ctx(cell, "float64 kernel vs FD", shp, kw, seed), kernel_run,
                         kernel_forward)


def test_float64_kernel_directional_derivative_large(cell, large_shape, rng, seed):
    shp, kw = large_shape
    inputs, opts = rnn_problem(cell, rng, *shp, np.float64, **kw)
    check_directional(cell, inputs, opts, rng, ctx(cell, "float64 kernel directional", shp, kw, seed))


def test_reference_matches_finite_differences(cell, kw, rng, seed):
    """The oracle itself: its backward is the derivative of its forward."""
    shp = (3, 4, 2, 2)
    inputs, opts = rnn_problem(cell, rng, *shp, np.float64, **kw)
    check_fd_elementwise(cell, inputs, opts, rng, ctx(cell, "reference vs FD", shp, kw, seed), reference_run,
                         reference_forward)


# ---------------------------------------------------------------------------
# kernels vs the float64 reference
# ---------------------------------------------------------------------------

def test_float64_kernel_matches_reference(cell, kw, rng, seed):
    shp = (5, 7, 3, 4)
    inputs, opts = rnn_problem(cell, rng, *shp, np.float64, **kw)
    compare_with_reference(cell, inputs, opts, rng, ctx(cell, "float64 kernel vs reference", shp, kw, seed),
                           F64_REF_TOL, F64_REF_TOL)


def test_float32_kernel_matches_reference_options(cell, kw, rng, seed):
    shp = (9, 13, 7, 25)
    inputs, opts = rnn_problem(cell, rng, *shp, np.float32, **kw)
    compare_with_reference(cell, inputs, opts, rng, ctx(cell, "float32 kernel vs reference", shp, kw, seed),
                           F32_OUT_TOL, F32_GRAD_TOL)


def test_float32_kernel_matches_reference_shapes(cell, f32_shape, rng, seed):
    shp, kw = f32_shape
    inputs, opts = rnn_problem(cell, rng, *shp, np.float32, **kw)
    compare_with_reference(cell, inputs, opts, rng, ctx(cell, "float32 kernel vs reference", shp, kw, seed),
                           F32_OUT_TOL, F32_GRAD_TOL)


# ---------------------------------------------------------------------------
# Keras mask semantics and go_backwards, checked directly (independent of the reference)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_semantics(cell, variant, dtype, rng, seed):
    B, T, I, H = 4, 5, 3, 6
    inputs, opts = rnn_problem(cell, rng, B, T, I, H, dtype, **variant)
    mask = np.ones((B, T), dtype=bool)
    mask[0] = False           # all masked
    mask[1, 0] = False        # first step masked
    mask[2, -1] = False       # last step masked
    mask[3, 2] = False        # a gap
    inputs["mask"] = mask
    y, hT, _ = kernel_forward(cell, inputs, opts)
    yz, hTz, _ = kernel_forward(cell, inputs, dict(opts, zero_output_for_mask=True))
    ylast = kernel_forward(cell, inputs, dict(opts, return_sequences=False))[0]
    msg = f"{cell} {variant} dtype={np.dtype(dtype).name} seed={seed}"
    np.testing.assert_array_equal(hT[0], inputs["h0"][0], err_msg=msg)  # all masked: keeps h0 ...
    np.testing.assert_array_equal(y[0], 0, err_msg=msg)                 # ... and outputs zeros, not h0
    np.testing.assert_array_equal(y[1, 0], 0, err_msg=msg)
    np.testing.assert_array_equal(y[3, 2], y[3, 1], err_msg=msg)        # a masked step repeats the output
    np.testing.assert_array_equal(yz[3, 2], 0, err_msg=msg)             # or is zero with zero_output_for_mask
    np.testing.assert_array_equal(hT, hTz, err_msg=msg)
    np.testing.assert_array_equal(yz[mask], y[mask], err_msg=msg)
    np.testing.assert_array_equal(hT[2], y[2, -2], err_msg=msg)         # last step masked: the last real h
    np.testing.assert_array_equal(ylast, y[:, -1], err_msg=msg)


@pytest.mark.parametrize("extra", [{}, dict(mask=True), dict(vocab=7)], ids=["plain", "mask", "ids"])
def test_go_backwards_is_reversed_time(cell, variant, extra, rng, seed):
    """go_backwards == the forward direction on time-reversed x and mask; dx in x's order."""
    inputs, opts = rnn_problem(cell, rng, 5, 8, 3, 4, np.float64, **variant, **extra)
    rev = dict(inputs, x=np.ascontiguousarray(inputs["x"][:, ::-1]))
    if inputs["mask"] is not None:
        rev["mask"] = np.ascontiguousarray(inputs["mask"][:, ::-1])
    Rs = loss_weights(rng, inputs, opts)
    out_b, grads_b = kernel_run(cell, inputs, dict(opts, go_backwards=True), Rs)
    out_f, grads_f = kernel_run(cell, rev, opts, Rs)
    if grads_f["dx"] is not None:
        grads_f["dx"] = grads_f["dx"][:, ::-1]
    context = f"{cell} go_backwards vs reversed input {variant} {extra} seed={seed}"
    assert_all_close(out_b, out_f, 1e-12, rel_error, context)
    assert_all_close(grads_b, grads_f, 1e-12, rel_error, context)


# ---------------------------------------------------------------------------
# Paths that must agree: training/inference, thread counts, ids/one-hot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [{}, dict(mask=True, go_backwards=True, rec_mask=True),
                                   dict(vocab=9, return_sequences=False)], ids=["plain", "mask-back-rec", "ids-last"])
def test_training_and_inference_outputs_identical(cell, variant, extra, dtype, rng, seed):
    inputs, opts = rnn_problem(cell, rng, 7, 20, 5, 33, dtype, **variant, **extra)
    inf = kernel_forward(cell, inputs, opts, training=False)
    tr = kernel_forward(cell, inputs, opts, training=True)
    assert inf[2] is None, "inference must keep no cache"
    assert type(tr[2]).__name__ == {"gru": "GruCache", "simple_rnn": "SimpleRnnCache"}[cell]
    for name, a, b in zip(("y", "hT"), inf[:2], tr[:2]):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: training vs inference, {extra} seed={seed}")


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


# THREAD_SHAPES covers both sides of the time loop's split (recurrent.cpp): a U
# past L2 with few rows per thread splits each step's products, the others give
# each thread its own block of rows (23 and 67 rows: blocks of unequal size).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_results(cell, thread_shape, dtype, rng, seed, restore_threads):
    shp, kw = thread_shape
    inputs, opts = rnn_problem(cell, rng, *shp, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    results = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        results.append(kernel_run(cell, inputs, opts, Rs))
    for n, r in zip((2, 3), results[1:]):
        assert_same_results(r, results[0], f"{cell} {n} threads vs 1, seed={seed}")


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [(np.float64, 1e-12, 1e-12), (np.float32, 1e-6, 1e-5)])
@pytest.mark.parametrize("extra", [{}, dict(mask=True, rec_mask=True, go_backwards=True),
                                   dict(bias=False, return_sequences=False)],
                         ids=["plain", "mask-rec-back", "nobias-last"])
def test_ids_path_equals_dense_onehot_path(cell, variant, extra, dtype, out_tol, grad_tol, rng, seed):
    V, H = 13, 25
    inputs, opts = rnn_problem(cell, rng, 6, 9, 1, H, dtype, vocab=V, **variant, **extra)
    dense = dict(inputs, x=ref.ids_to_onehot(inputs["x"], V).astype(dtype))
    Rs = loss_weights(rng, inputs, opts)
    out_i, grads_i = kernel_run(cell, inputs, opts, Rs)
    out_d, grads_d = kernel_run(cell, dense, opts, Rs, onehot="never")
    out_a, grads_a = kernel_run(cell, dense, opts, Rs, onehot="auto")
    context = f"{cell} ids vs dense one-hot, {variant} {extra} dtype={np.dtype(dtype).name} seed={seed}"
    assert grads_i["dx"] is None and grads_d["dx"].shape == dense["x"].shape, context
    assert grads_a["dx"] is not None, context + ": dense x needs dx even when detected as one-hot"
    assert grads_i["dW"].shape == (V, GATES[cell] * H), context
    assert_all_close(out_i, out_d, out_tol, scaled_error, context)
    assert_all_close(out_a, out_d, out_tol, scaled_error, context)
    assert_all_close(grads_a, grads_d, grad_tol, scaled_error, context)
    del grads_d["dx"], grads_i["dx"]
    assert_all_close(grads_i, grads_d, grad_tol, scaled_error, context)


# ---------------------------------------------------------------------------
# Backward call options, the cache
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [{}, dict(vocab=9, mask=True)], ids=["dense", "ids"])
def test_backward_writes_weight_gradients_into_out_arrays(cell, variant, extra, dtype, rng, seed):
    """dW_out/dU_out/db_out receive exactly the returned gradients; accumulate adds to them."""
    inputs, opts = rnn_problem(cell, rng, 6, 9, 5, 21, dtype, **variant, **extra)
    Rs = loss_weights(rng, inputs, opts)
    cache = kernel_forward(cell, inputs, opts, training=True)[2]
    plain = dict(zip(GRAD_NAMES, _backward(cell)(cache, *Rs)))
    assert plain["db"].shape == inputs["b"].shape, "db has the shape of b"
    outs = {n: np.full_like(plain[n], np.nan) for n in ("dW", "dU", "db")}
    got = dict(zip(GRAD_NAMES, _backward(cell)(cache, *Rs, dW_out=outs["dW"], dU_out=outs["dU"],
                                               db_out=outs["db"])))
    for n, buf in outs.items():
        assert got[n] is buf, f"{n}: the out array itself must be returned"
        np.testing.assert_array_equal(buf, plain[n], err_msg=f"{n} into out=, seed={seed}")
    start = {n: rng.standard_normal(buf.shape).astype(dtype) for n, buf in outs.items()}
    acc = {n: a.copy() for n, a in start.items()}
    _backward(cell)(cache, *Rs, dW_out=acc["dW"], dU_out=acc["dU"], db_out=acc["db"], accumulate=True)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for n in ("dW", "dU", "db"):
        err = scaled_error(acc[n], start[n].astype(np.float64) + plain[n])
        assert err <= tol, f"{n} accumulate=True: error {err:.3g} > {tol:g}, seed={seed}"


def test_backward_none_upstream_is_zero_and_repeatable(cell, variant, rng, seed):
    inputs, opts = rnn_problem(cell, rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True, **variant)
    y, _, cache = kernel_forward(cell, inputs, opts, training=True)
    assert (cache.B, cache.T, cache.H) == (3, 5, 6) and cache.nbytes > 0
    for name, g in zip(GRAD_NAMES, _backward(cell)(cache, None, None)):
        np.testing.assert_array_equal(g, 0.0, err_msg=name)
    dy = rng.standard_normal(y.shape)
    a, b = _backward(cell)(cache, dy), _backward(cell)(cache, dy, np.zeros((3, 6)))
    no_dx = _backward(cell)(cache, dy, need_dx=False)
    assert no_dx[0] is None
    for name, u, v, w in zip(GRAD_NAMES, a, b, no_dx):
        np.testing.assert_array_equal(u, v, err_msg=f"{name}: dhT None vs zeros, seed={seed}")
        if name != "dx":
            np.testing.assert_array_equal(u, w, err_msg=f"{name}: need_dx=False, seed={seed}")


def test_cache_outlives_its_inputs(cell, variant, rng, seed):
    """The cache holds references to the forward's W and U: deleting ours is safe."""
    inputs, opts = rnn_problem(cell, rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True, **variant)
    Rs = loss_weights(rng, inputs, opts)
    want = reference_run(cell, inputs, opts, Rs)[1]
    copies = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    cache = kernel_forward(cell, copies, opts, training=True)[2]
    del copies
    got = dict(zip(GRAD_NAMES, _backward(cell)(cache, *Rs)))
    assert_all_close(got, want, F64_REF_TOL, scaled_error, f"{cell} backward after dropping inputs, seed={seed}")


def test_non_contiguous_inputs_give_the_contiguous_results(cell, variant, rng, seed):
    inputs, opts = rnn_problem(cell, rng, 5, 6, 4, 7, np.float32, mask=True, rec_mask=True, **variant)
    Rs = loss_weights(rng, inputs, opts)
    want = kernel_run(cell, inputs, opts, Rs)
    odd = {k: (None if v is None else np.asfortranarray(v) if v.ndim >= 2 else v[::-1].copy()[::-1])
           for k, v in inputs.items()}
    odd["x"] = np.ascontiguousarray(inputs["x"][:, :, ::-1])[:, :, ::-1]  # a reversed (strided) view
    assert not odd["x"].flags.c_contiguous
    got = kernel_run(cell, odd, opts, [np.asfortranarray(r) for r in Rs])
    assert_same_results(got, want, f"{cell} non-contiguous inputs, seed={seed}")
