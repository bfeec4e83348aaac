"""SimpleRNN kernels (_core.simple_rnn_forward / simple_rnn_backward): float64 vs finite differences,
float32 vs the float64 reference.

Thresholds as for the LSTM and GRU: float64 kernel vs central differences
<= 1e-6; float32 kernel vs the float64 reference <= 1e-5 (outputs), <= 1e-4
(gradients). Keras 3 SimpleRNNCell: h_t = act(x_t·W + b + (h_{t-1} ⊙ m)·U).
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import assert_all_close, rel_error, scaled_error
from rnn_problems import (F32_GRAD_TOL, F32_OUT_TOL, F64_REF_TOL, GRAD_NAMES, assert_same_results,
                          check_directional, check_fd_elementwise, compare_with_reference, ctx, kernel_forward,
                          kernel_run, loss_weights, reference_forward, reference_run, rnn_problem)

CELL = "simple_rnn"


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


# relu and linear outputs are unbounded: small inputs and U keep 200 steps finite.
SCALE_ACT = {"sigmoid": dict(x_scale=1.0), "hard_sigmoid": dict(x_scale=3.0), "hard_sigmoid_k2": dict(x_scale=3.0),
             "relu": dict(x_scale=1.0, u_scale=0.5), "linear": dict(x_scale=0.5, u_scale=0.5)}

OPTIONS = [
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
    *[case(f"act={a}", activation=a, **s) for a, s in SCALE_ACT.items()],
    case("relu-mask-rec_mask", activation="relu", u_scale=0.5, mask=True, rec_mask=True),
]
SMALL = (4, 6, 3, 3)  # B, T, I, H


def shape(B, T, I, H, **kw):
    return pytest.param((B, T, I, H), kw, id=f"B{B}-T{T}-I{I}-H{H}" + "".join(f"-{k}={v}" for k, v in kw.items()))


# ---------------------------------------------------------------------------
# float64 kernel vs finite differences; the reference vs finite differences
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw", OPTIONS)
def test_float64_kernel_matches_finite_differences(kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *SMALL, np.float64, **kw)
    check_fd_elementwise(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel vs FD", SMALL, kw, seed), kernel_run,
                         kernel_forward)


@pytest.mark.parametrize("shp, kw", [
    shape(1, 1, 1, 1),
    shape(1, 1, 1, 1, mask=True),
    shape(3, 1, 7, 3, go_backwards=True, return_sequences=False),
    shape(2, 5, 1, 1, mask=True, zero_output_for_mask=True),
    shape(1, 4, 7, 3, vocab=3, mask=True),
    shape(2, 3, 2, 17, rec_mask=True),
])
def test_float64_kernel_matches_finite_differences_shapes(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    check_fd_elementwise(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel vs FD", shp, kw, seed), kernel_run,
                         kernel_forward)


@pytest.mark.parametrize("shp, kw", [
    shape(67, 200, 7, 33),
    shape(1, 200, 100, 150),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True),
    shape(5, 200, 3, 3, vocab=40, mask=True, zero_output_for_mask=True),
])
def test_float64_kernel_directional_derivative_large(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    check_directional(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel directional", shp, kw, seed))


@pytest.mark.parametrize("kw", OPTIONS)
def test_reference_matches_finite_differences(kw, rng, seed):
    shp = (3, 4, 2, 2)
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    check_fd_elementwise(CELL, inputs, opts, rng, ctx(CELL, "reference vs FD", shp, kw, seed), reference_run,
                         reference_forward)


# ---------------------------------------------------------------------------
# kernels vs the float64 reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw", OPTIONS)
def test_float64_kernel_matches_reference(kw, rng, seed):
    shp = (5, 7, 3, 4)
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    compare_with_reference(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel vs reference", shp, kw, seed),
                           F64_REF_TOL, F64_REF_TOL)


@pytest.mark.parametrize("kw", OPTIONS)
def test_float32_kernel_matches_reference_options(kw, rng, seed):
    shp = (9, 13, 7, 25)
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float32, **kw)
    compare_with_reference(CELL, inputs, opts, rng, ctx(CELL, "float32 kernel vs reference", shp, kw, seed),
                           F32_OUT_TOL, F32_GRAD_TOL)


@pytest.mark.parametrize("shp, kw", [
    shape(1, 1, 1, 1),
    shape(67, 1, 7, 3),
    shape(1, 200, 1, 25),
    shape(67, 200, 7, 33),
    shape(3, 200, 100, 150),
    shape(67, 40, 7, 150, mask=True),
    shape(67, 200, 1, 33, vocab=97, mask=True, go_backwards=True),
    shape(1, 200, 7, 33, mask=True, zero_output_for_mask=True, return_sequences=False),
    shape(9, 12, 5, 1030, rec_mask=True),
])
def test_float32_kernel_matches_reference_shapes(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float32, **kw)
    compare_with_reference(CELL, inputs, opts, rng, ctx(CELL, "float32 kernel vs reference", shp, kw, seed),
                           F32_OUT_TOL, F32_GRAD_TOL)


# ---------------------------------------------------------------------------
# Semantics checked directly (independent of the reference)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_semantics(dtype, rng, seed):
    B, T, I, H = 4, 5, 3, 6
    inputs, opts = rnn_problem(CELL, rng, B, T, I, H, dtype)
    mask = np.ones((B, T), dtype=bool)
    mask[0] = False
    mask[1, 0] = False
    mask[2, -1] = False
    mask[3, 2] = False
    inputs["mask"] = mask
    y, hT, _ = kernel_forward(CELL, inputs, opts)
    yz, hTz, _ = kernel_forward(CELL, inputs, dict(opts, zero_output_for_mask=True))
    ylast = kernel_forward(CELL, inputs, dict(opts, return_sequences=False))[0]
    msg = f"dtype={np.dtype(dtype).name} seed={seed}"
    np.testing.assert_array_equal(hT[0], inputs["h0"][0], err_msg=msg)
    np.testing.assert_array_equal(y[0], 0, err_msg=msg)
    np.testing.assert_array_equal(y[1, 0], 0, err_msg=msg)
    np.testing.assert_array_equal(y[3, 2], y[3, 1], err_msg=msg)
    np.testing.assert_array_equal(yz[3, 2], 0, err_msg=msg)
    np.testing.assert_array_equal(hT, hTz, err_msg=msg)
    np.testing.assert_array_equal(yz[mask], y[mask], err_msg=msg)
    np.testing.assert_array_equal(hT[2], y[2, -2], err_msg=msg)
    np.testing.assert_array_equal(ylast, y[:, -1], err_msg=msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_is_the_formula(dtype, rng, seed):
    """T = 1: h = tanh(x·W + b + (h0 ⊙ m)·U), by hand."""
    inputs, opts = rnn_problem(CELL, rng, 5, 1, 4, 9, dtype, rec_mask=True)
    f = {k: v.astype(np.float64) for k, v in inputs.items() if isinstance(v, np.ndarray)}
    want = np.tanh(f["x"][:, 0] @ f["W"] + f["b"] + (f["h0"] * f["rec_mask"]) @ f["U"])
    y, hT, _ = kernel_forward(CELL, inputs, opts)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert scaled_error(hT, want) <= tol and scaled_error(y[:, 0], want) <= tol, f"seed={seed}"


@pytest.mark.parametrize("kw", [case("plain"), case("mask", mask=True), case("ids", vocab=7)])
def test_go_backwards_is_reversed_time(kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 5, 8, 3, 4, np.float64, **kw)
    rev = dict(inputs, x=np.ascontiguousarray(inputs["x"][:, ::-1]))
    if inputs["mask"] is not None:
        rev["mask"] = np.ascontiguousarray(inputs["mask"][:, ::-1])
    Rs = loss_weights(rng, inputs, opts)
    out_b, grads_b = kernel_run(CELL, inputs, dict(opts, go_backwards=True), Rs)
    out_f, grads_f = kernel_run(CELL, rev, opts, Rs)
    if grads_f["dx"] is not None:
        grads_f["dx"] = grads_f["dx"][:, ::-1]
    context = f"go_backwards vs reversed input {kw} seed={seed}"
    assert_all_close(out_b, out_f, 1e-12, rel_error, context)
    assert_all_close(grads_b, grads_f, 1e-12, rel_error, context)


# ---------------------------------------------------------------------------
# Paths that must agree: training/inference, thread counts, ids/one-hot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [case("plain"), case("mask-go_backwards-rec_mask", mask=True, go_backwards=True,
                                                    rec_mask=True),
                                case("ids-last", vocab=9, return_sequences=False),
                                case("act=relu", activation="relu", u_scale=0.5)])
def test_training_and_inference_outputs_identical(kw, dtype, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 7, 20, 5, 33, dtype, **kw)
    inf = kernel_forward(CELL, inputs, opts, training=False)
    tr = kernel_forward(CELL, inputs, opts, training=True)
    assert inf[2] is None, "inference must keep no cache"
    assert isinstance(tr[2], _core.SimpleRnnCache)
    for name, a, b in zip(("y", "hT"), inf[:2], tr[:2]):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: training vs inference, {kw} seed={seed}")


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shp, kw", [
    shape(9, 12, 5, 600, mask=True, rec_mask=True),
    shape(67, 30, 7, 150, mask=True),
    shape(23, 30, 7, 33, mask=True, rec_mask=True, go_backwards=True),
    shape(23, 30, 1, 33, vocab=11, mask=True, return_sequences=False),
])
def test_thread_count_does_not_change_results(shp, kw, dtype, rng, seed, restore_threads):
    inputs, opts = rnn_problem(CELL, rng, *shp, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    results = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        results.append(kernel_run(CELL, inputs, opts, Rs))
    for n, r in zip((2, 3), results[1:]):
        assert_same_results(r, results[0], f"{n} threads vs 1, seed={seed}")


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [(np.float64, 1e-12, 1e-12), (np.float32, 1e-6, 1e-5)])
@pytest.mark.parametrize("kw", [case("plain"), case("mask-rec_mask-go_backwards", mask=True, rec_mask=True,
                                                    go_backwards=True),
                                case("no_bias-last", bias=False, return_sequences=False)])
def test_ids_path_equals_dense_onehot_path(kw, dtype, out_tol, grad_tol, rng, seed):
    V = 13
    inputs, opts = rnn_problem(CELL, rng, 6, 9, 1, 25, dtype, vocab=V, **kw)
    dense = dict(inputs, x=ref.ids_to_onehot(inputs["x"], V).astype(dtype))
    Rs = loss_weights(rng, inputs, opts)
    out_i, grads_i = kernel_run(CELL, inputs, opts, Rs)
    out_d, grads_d = kernel_run(CELL, dense, opts, Rs, onehot="never")
    out_a, grads_a = kernel_run(CELL, dense, opts, Rs, onehot="auto")
    context = f"ids vs dense one-hot, {kw} dtype={np.dtype(dtype).name} seed={seed}"
    assert grads_i["dx"] is None and grads_a["dx"] is not None, context
    assert grads_i["dW"].shape == (V, 25), context
    assert_all_close(out_i, out_d, out_tol, scaled_error, context)
    assert_all_close(out_a, out_d, out_tol, scaled_error, context)
    assert_all_close(grads_a, grads_d, grad_tol, scaled_error, context)
    del grads_d["dx"], grads_i["dx"]
    assert_all_close(grads_i, grads_d, grad_tol, scaled_error, context)


# ---------------------------------------------------------------------------
# Backward call options, the cache, bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_writes_weight_gradients_into_out_arrays(dtype, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 6, 9, 5, 21, dtype, mask=True)
    Rs = loss_weights(rng, inputs, opts)
    cache = kernel_forward(CELL, inputs, opts, training=True)[2]
    plain = dict(zip(GRAD_NAMES, _core.simple_rnn_backward(cache, *Rs)))
    outs = {n: np.full_like(plain[n], np.nan) for n in ("dW", "dU", "db")}
    got = dict(zip(GRAD_NAMES, _core.simple_rnn_backward(cache, *Rs, dW_out=outs["dW"], dU_out=outs["dU"],
                                                         db_out=outs["db"])))
    for n, buf in outs.items():
        assert got[n] is buf, f"{n}: the out array itself must be returned"
        np.testing.assert_array_equal(buf, plain[n], err_msg=f"{n} into out=, seed={seed}")
    start = {n: rng.standard_normal(buf.shape).astype(dtype) for n, buf in outs.items()}
    acc = {n: a.copy() for n, a in start.items()}
    _core.simple_rnn_backward(cache, *Rs, dW_out=acc["dW"], dU_out=acc["dU"], db_out=acc["db"], accumulate=True)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for n in ("dW", "dU", "db"):
        err = scaled_error(acc[n], start[n].astype(np.float64) + plain[n])
        assert err <= tol, f"{n} accumulate=True: error {err:.3g} > {tol:g}, seed={seed}"


def test_backward_none_upstream_is_zero_and_cache_outlives_inputs(rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True)
    Rs = loss_weights(rng, inputs, opts)
    want = reference_run(CELL, inputs, opts, Rs)[1]
    copies = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    cache = kernel_forward(CELL, copies, opts, training=True)[2]
    del copies
    for name, g in zip(GRAD_NAMES, _core.simple_rnn_backward(cache, None, None)):
        np.testing.assert_array_equal(g, 0.0, err_msg=name)
    got = dict(zip(GRAD_NAMES, _core.simple_rnn_backward(cache, *Rs)))
    assert_all_close(got, want, F64_REF_TOL, scaled_error, f"backward after dropping inputs, seed={seed}")


def _valid():
    r = np.random.default_rng(0)
    f = np.float32
    return dict(x=r.standard_normal((3, 4, 5)).astype(f), W=r.standard_normal((5, 6)).astype(f),
                U=r.standard_normal((6, 6)).astype(f), b=r.standard_normal(6).astype(f), h0=np.zeros((3, 6), f))


@pytest.mark.parametrize("change, kw, exc, pattern", [
    (dict(U=np.zeros((6, 7), np.float32)), {}, ValueError, r"U must have shape \(H, H\) = \(6, 6\), got \(6, 7\)"),
    (dict(W=np.zeros((5, 7), np.float32)), {}, ValueError, r"W must have shape \(I, H\) = \(5, 6\)"),
    (dict(b=np.zeros((2, 6), np.float32)), {}, ValueError, r"b must have shape \(H,\) = \(6,\), got \(2, 6\)"),
    (dict(h0=np.zeros((2, 6), np.float32)), {}, ValueError, r"h0 must have shape \(B, H\) = \(3, 6\)"),
    (dict(U=np.zeros((6, 6), np.float64)), {}, TypeError, r"U is float64 but x is float32"),
    (dict(x=np.full((3, 4), 5)), {}, ValueError, r"x\[0, 0\] = 5 is not a token id of W with V = 5 rows"),
    (dict(x=np.zeros((3, 4, 5), np.complex64)), {}, TypeError, r"x must be float32/float64"),
    ({}, dict(activation="elu"), ValueError, r"activation must be one of"),
    ({}, dict(onehot="always"), ValueError, r"onehot must be 'auto' or 'never'"),
])
def test_forward_bad_input(change, kw, exc, pattern):
    a = _valid()
    a.update(change)
    with pytest.raises(exc, match=pattern):
        _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], **kw)


def test_no_recurrent_activation_argument():
    a = _valid()
    with pytest.raises(TypeError):
        _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], recurrent_activation="sigmoid")


def test_backward_bad_input():
    a = _valid()
    y, _, cache = _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], training=True,
                                           return_sequences=False)
    gru_cache = _core.gru_forward(a["x"], np.zeros((5, 18), np.float32), np.zeros((6, 18), np.float32), None,
                                  a["h0"], training=True)[2]
    with pytest.raises(TypeError, match=r"simple_rnn_backward: cache must be the SimpleRnnCache.*got GruCache"):
        _core.simple_rnn_backward(gru_cache, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(B, H\) = \(3, 6\), got \(3, 4, 6\)"):
        _core.simple_rnn_backward(cache, np.zeros((3, 4, 6), np.float32))
    with pytest.raises(TypeError, match=r"dhT is float64 but the forward that made the cache is float32"):
        _core.simple_rnn_backward(cache, y, np.zeros((3, 6)))
