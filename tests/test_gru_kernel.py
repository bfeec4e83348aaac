"""GRU kernels (_core.gru_forward / gru_backward): float64 vs finite differences, float32 vs the float64 reference.

Thresholds as for the LSTM (tests/test_lstm_kernel.py): float64 kernel vs
central differences <= 1e-6 (max|a-b|/max(1,|a|,|b|)); float32 kernel vs the
float64 reference <= 1e-5 of max|ref| on outputs, <= 1e-4 on gradients. Both
Keras forms are covered: reset_after=True (bias (2, 3H)) and False (bias (3H,)).
The reference itself was checked against keras.layers.GRU (3.15.1, torch
backend) to float32 rounding; the Keras parity suites do that for the layer.
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import assert_all_close, rel_error, scaled_error
from rnn_problems import (F32_GRAD_TOL, F32_OUT_TOL, F64_REF_TOL, GRAD_NAMES, assert_same_results,
                          check_directional, check_fd_elementwise, compare_with_reference, ctx, kernel_forward,
                          kernel_run, loss_weights, reference_forward, reference_run, rnn_problem)

CELL = "gru"


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


# Inputs scaled so the piecewise activations visit their flat pieces. An
# unbounded update gate (relu, linear) multiplies h by a function of h each
# step, so those get small inputs and a small U (rnn_problem's u_scale).
X_SCALE_ACT = {"sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 3.0, "linear": 1.0}
SCALE_REC = {"tanh": dict(x_scale=1.0), "hard_sigmoid": dict(x_scale=3.0), "hard_sigmoid_k2": dict(x_scale=3.0),
             "relu": dict(x_scale=0.5, u_scale=0.3), "linear": dict(x_scale=0.5, u_scale=0.3)}

BASE_OPTIONS = [
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
    *[case(f"act={a}", activation=a, x_scale=s) for a, s in X_SCALE_ACT.items()],
    *[case(f"rec_act={a}", recurrent_activation=a, **s) for a, s in SCALE_REC.items()],
    case("hard_sigmoid-both-mask", activation="hard_sigmoid", recurrent_activation="hard_sigmoid_k2",
         x_scale=3.0, mask=True),
]


def _both_forms(options):
    """Every option set with reset_after=True (Keras 3's default) and False."""
    out = []
    for p in options:
        for ra in (True, False):
            out.append(pytest.param(dict(p.values[0], reset_after=ra), id=f"{p.id}-reset_after={ra}"))
    return out


OPTIONS = _both_forms(BASE_OPTIONS)
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
    shape(1, 1, 1, 1, mask=True, reset_after=False),
    shape(3, 1, 7, 3, go_backwards=True, return_sequences=False),
    shape(2, 5, 1, 1, mask=True, zero_output_for_mask=True, reset_after=False),
    shape(1, 4, 7, 3, vocab=3, mask=True),
    shape(2, 3, 2, 17, rec_mask=True, reset_after=False),
])
def test_float64_kernel_matches_finite_differences_shapes(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    check_fd_elementwise(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel vs FD", shp, kw, seed), kernel_run,
                         kernel_forward)


@pytest.mark.parametrize("shp, kw", [
    shape(67, 200, 7, 33),
    shape(1, 200, 100, 150, reset_after=False),
    shape(67, 1, 99, 150),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True, reset_after=False),
    shape(5, 200, 3, 3, vocab=40, mask=True, zero_output_for_mask=True),
])
def test_float64_kernel_directional_derivative_large(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float64, **kw)
    check_directional(CELL, inputs, opts, rng, ctx(CELL, "float64 kernel directional", shp, kw, seed))


@pytest.mark.parametrize("kw", OPTIONS)
def test_reference_matches_finite_differences(kw, rng, seed):
    """The oracle itself: its backward is the derivative of its forward."""
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
    shape(67, 200, 7, 33, reset_after=False),
    shape(3, 200, 100, 150),
    shape(67, 1, 100, 150, reset_after=False),
    shape(67, 40, 7, 150, mask=True),
    shape(67, 200, 1, 33, vocab=97, mask=True, go_backwards=True),
    shape(1, 200, 7, 33, mask=True, zero_output_for_mask=True, return_sequences=False, reset_after=False),
    shape(9, 12, 5, 260, rec_mask=True),
])
def test_float32_kernel_matches_reference_shapes(shp, kw, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, *shp, np.float32, **kw)
    compare_with_reference(CELL, inputs, opts, rng, ctx(CELL, "float32 kernel vs reference", shp, kw, seed),
                           F32_OUT_TOL, F32_GRAD_TOL)


# ---------------------------------------------------------------------------
# Semantics checked directly (independent of the reference)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_semantics(dtype, reset_after, rng, seed):
    B, T, I, H = 4, 5, 3, 6
    inputs, opts = rnn_problem(CELL, rng, B, T, I, H, dtype, reset_after=reset_after)
    mask = np.ones((B, T), dtype=bool)
    mask[0] = False           # all masked
    mask[1, 0] = False        # first step masked
    mask[2, -1] = False       # last step masked
    mask[3, 2] = False        # a gap
    inputs["mask"] = mask
    y, hT, _ = kernel_forward(CELL, inputs, opts)
    yz, hTz, _ = kernel_forward(CELL, inputs, dict(opts, zero_output_for_mask=True))
    ylast = kernel_forward(CELL, inputs, dict(opts, return_sequences=False))[0]
    msg = f"dtype={np.dtype(dtype).name} reset_after={reset_after} seed={seed}"
    np.testing.assert_array_equal(hT[0], inputs["h0"][0], err_msg=msg)  # all masked: keeps h0 ...
    np.testing.assert_array_equal(y[0], 0, err_msg=msg)                 # ... and outputs zeros
    np.testing.assert_array_equal(y[1, 0], 0, err_msg=msg)
    np.testing.assert_array_equal(y[3, 2], y[3, 1], err_msg=msg)
    np.testing.assert_array_equal(yz[3, 2], 0, err_msg=msg)
    np.testing.assert_array_equal(hT, hTz, err_msg=msg)
    np.testing.assert_array_equal(yz[mask], y[mask], err_msg=msg)
    np.testing.assert_array_equal(hT[2], y[2, -2], err_msg=msg)
    np.testing.assert_array_equal(ylast, y[:, -1], err_msg=msg)


@pytest.mark.parametrize("kw", [case("plain"), case("mask", mask=True), case("ids", vocab=7),
                                case("reset_after=False-mask", mask=True, reset_after=False)])
def test_go_backwards_is_reversed_time(kw, rng, seed):
    """go_backwards == the forward direction on time-reversed x and mask; dx in x's order."""
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_recurrent_kernel_is_a_feedforward_gate_mix(dtype, rng, seed):
    """U = 0, b_rec = 0: h_t = z ⊙ h_{t-1} + (1 - z) ⊙ tanh(x·W_h + b_h) with z = σ(x·W_z + b_z), by hand."""
    B, T, I, H = 3, 4, 5, 7
    inputs, opts = rnn_problem(CELL, rng, B, T, I, H, dtype)
    inputs["U"][:] = 0
    inputs["b"][1] = 0
    x, W, b = (inputs[k].astype(np.float64) for k in ("x", "W", "b"))
    h = inputs["h0"].astype(np.float64)
    for t in range(T):
        pre = x[:, t] @ W + b[0]
        z = 1 / (1 + np.exp(-pre[:, :H]))
        h = z * h + (1 - z) * np.tanh(pre[:, 2 * H:])
    hT = kernel_forward(CELL, inputs, opts)[1]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert scaled_error(hT, h) <= tol, f"seed={seed}"


# ---------------------------------------------------------------------------
# Paths that must agree: training/inference, thread counts, ids/one-hot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [case("plain"), case("mask-go_backwards-rec_mask", mask=True, go_backwards=True,
                                                    rec_mask=True),
                                case("reset_after=False-rec_mask", rec_mask=True, reset_after=False),
                                case("ids-last", vocab=9, return_sequences=False),
                                case("act=relu", activation="relu")])
def test_training_and_inference_outputs_identical(kw, dtype, rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 7, 20, 5, 33, dtype, **kw)
    inf = kernel_forward(CELL, inputs, opts, training=False)
    tr = kernel_forward(CELL, inputs, opts, training=True)
    assert inf[2] is None, "inference must keep no cache"
    assert isinstance(tr[2], _core.GruCache)
    for name, a, b in zip(("y", "hT"), inf[:2], tr[:2]):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: training vs inference, {kw} seed={seed}")


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


# Both sides of the time loop's split (see test_lstm_kernel.py): a large U with
# few rows per thread splits each step's products, the others give each thread
# its own block of rows (23 and 67 rows: blocks of unequal size).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shp, kw", [
    shape(9, 12, 5, 300, mask=True, rec_mask=True),
    shape(9, 12, 5, 300, mask=True, rec_mask=True, reset_after=False),
    shape(67, 30, 7, 150, mask=True),
    shape(23, 30, 7, 33, mask=True, rec_mask=True, go_backwards=True, reset_after=False),
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
                                case("no_bias-last-reset_after=False", bias=False, return_sequences=False,
                                     reset_after=False)])
def test_ids_path_equals_dense_onehot_path(kw, dtype, out_tol, grad_tol, rng, seed):
    V = 13
    inputs, opts = rnn_problem(CELL, rng, 6, 9, 1, 25, dtype, vocab=V, **kw)
    dense = dict(inputs, x=ref.ids_to_onehot(inputs["x"], V).astype(dtype))
    Rs = loss_weights(rng, inputs, opts)
    out_i, grads_i = kernel_run(CELL, inputs, opts, Rs)
    out_d, grads_d = kernel_run(CELL, dense, opts, Rs, onehot="never")
    out_a, grads_a = kernel_run(CELL, dense, opts, Rs, onehot="auto")
    context = f"ids vs dense one-hot, {kw} dtype={np.dtype(dtype).name} seed={seed}"
    assert grads_i["dx"] is None and grads_d["dx"].shape == dense["x"].shape, context
    assert grads_a["dx"] is not None, context + ": dense x needs dx even when detected as one-hot"
    assert grads_i["dW"].shape == (V, 3 * 25), context
    assert_all_close(out_i, out_d, out_tol, scaled_error, context)
    assert_all_close(out_a, out_d, out_tol, scaled_error, context)
    assert_all_close(grads_a, grads_d, grad_tol, scaled_error, context)
    del grads_d["dx"], grads_i["dx"]
    assert_all_close(grads_i, grads_d, grad_tol, scaled_error, context)


# ---------------------------------------------------------------------------
# Backward call options, the cache
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [case("dense"), case("ids", vocab=9, mask=True),
                                case("reset_after=False", reset_after=False)])
def test_backward_writes_weight_gradients_into_out_arrays(kw, dtype, rng, seed):
    """dW_out/dU_out/db_out receive exactly the returned gradients; accumulate adds to them."""
    inputs, opts = rnn_problem(CELL, rng, 6, 9, 5, 21, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    cache = kernel_forward(CELL, inputs, opts, training=True)[2]
    plain = dict(zip(GRAD_NAMES, _core.gru_backward(cache, *Rs)))
    assert plain["db"].shape == inputs["b"].shape, "db has the shape of b"
    outs = {n: np.full_like(plain[n], np.nan) for n in ("dW", "dU", "db")}
    got = dict(zip(GRAD_NAMES, _core.gru_backward(cache, *Rs, dW_out=outs["dW"], dU_out=outs["dU"],
                                                  db_out=outs["db"])))
    for n, buf in outs.items():
        assert got[n] is buf, f"{n}: the out array itself must be returned"
        np.testing.assert_array_equal(buf, plain[n], err_msg=f"{n} into out=, seed={seed}")
    start = {n: rng.standard_normal(buf.shape).astype(dtype) for n, buf in outs.items()}
    acc = {n: a.copy() for n, a in start.items()}
    _core.gru_backward(cache, *Rs, dW_out=acc["dW"], dU_out=acc["dU"], db_out=acc["db"], accumulate=True)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for n in ("dW", "dU", "db"):
        err = scaled_error(acc[n], start[n].astype(np.float64) + plain[n])
        assert err <= tol, f"{n} accumulate=True: error {err:.3g} > {tol:g}, seed={seed}"


def test_backward_none_upstream_is_zero_and_repeatable(rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True)
    y, _, cache = kernel_forward(CELL, inputs, opts, training=True)
    assert (cache.B, cache.T, cache.H) == (3, 5, 6) and cache.nbytes > 0
    zero = _core.gru_backward(cache, None, None)
    for name, g in zip(GRAD_NAMES, zero):
        np.testing.assert_array_equal(g, 0.0, err_msg=name)
    dy = rng.standard_normal(y.shape)
    a, b = _core.gru_backward(cache, dy), _core.gru_backward(cache, dy, np.zeros((3, 6)))
    no_dx = _core.gru_backward(cache, dy, need_dx=False)
    assert no_dx[0] is None
    for name, u, v, w in zip(GRAD_NAMES, a, b, no_dx):
        np.testing.assert_array_equal(u, v, err_msg=f"{name}: dhT None vs zeros, seed={seed}")
        if name != "dx":
            np.testing.assert_array_equal(u, w, err_msg=f"{name}: need_dx=False, seed={seed}")


def test_cache_outlives_its_inputs(rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True, reset_after=False)
    Rs = loss_weights(rng, inputs, opts)
    want = reference_run(CELL, inputs, opts, Rs)[1]
    copies = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    cache = kernel_forward(CELL, copies, opts, training=True)[2]
    del copies
    got = dict(zip(GRAD_NAMES, _core.gru_backward(cache, *Rs)))
    assert_all_close(got, want, F64_REF_TOL, scaled_error, f"backward after dropping inputs, seed={seed}")


# ---------------------------------------------------------------------------
# Bad input: clear exceptions naming the argument
# ---------------------------------------------------------------------------

def _valid(reset_after=True):
    B, T, I, H = 3, 4, 5, 6
    r = np.random.default_rng(0)
    f = np.float32
    b = (2, 18) if reset_after else (18,)
    return dict(x=r.standard_normal((B, T, I)).astype(f), W=r.standard_normal((I, 18)).astype(f),
                U=r.standard_normal((H, 18)).astype(f), b=r.standard_normal(b).astype(f),
                h0=np.zeros((B, H), f))


@pytest.mark.parametrize("change, kw, exc, pattern", [
    (dict(b=np.zeros(18, np.float32)), {}, ValueError, r"b must have shape \(2, 3H\) = \(2, 18\) with reset_after"),
    (dict(b=np.zeros((2, 18), np.float32)), dict(reset_after=False), ValueError,
     r"b must have shape \(3H,\) = \(18,\) with reset_after=False"),
    (dict(U=np.zeros((6, 24), np.float32)), {}, ValueError, r"U must have shape \(H, 3H\) = \(6, 18\), got \(6, 24\)"),
    (dict(W=np.zeros((5, 24), np.float32)), {}, ValueError, r"W must have shape \(I, 3H\) = \(5, 18\)"),
    (dict(h0=np.zeros((3, 5), np.float32)), {}, ValueError, r"h0 must have shape \(B, H\) = \(3, 6\)"),
    (dict(W=np.zeros((5, 18), np.float64)), {}, TypeError, r"W is float64 but x is float32"),
    (dict(x=np.array([[0, 9]])), {}, ValueError, r"W must have shape \(V, 3H\)|h0 must have shape"),
    (dict(x=np.full((3, 4), 5)), {}, ValueError, r"x\[0, 0\] = 5 is not a token id of W with V = 5 rows"),
    (dict(mask=np.ones((3, 5), bool)), {}, ValueError, r"mask must have shape \(B, T\) = \(3, 4\)"),
    (dict(rec_mask=np.ones((3, 5), np.float32)), {}, ValueError, r"rec_mask must have shape \(B, H\) = \(3, 6\)"),
    ({}, dict(activation="softmax"), ValueError, r"activation must be one of"),
    ({}, dict(recurrent_activation="swish"), ValueError, r"recurrent_activation must be one of"),
    (dict(x=None), {}, TypeError, r"gru_forward: x must be a numpy array, got None"),
])
def test_forward_bad_input(change, kw, exc, pattern):
    a = _valid(kw.get("reset_after", True))
    extra = {k: change.pop(k) for k in ("mask", "rec_mask") if k in change}
    a.update(change)
    with pytest.raises(exc, match=pattern):
        _core.gru_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], **extra, **kw)


def test_backward_bad_input():
    a = _valid()
    y, _, cache = _core.gru_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], training=True)
    lstm_cache = _core.lstm_forward(a["x"], np.zeros((5, 24), np.float32), np.zeros((6, 24), np.float32), None,
                                    a["h0"], a["h0"], training=True)[3]
    with pytest.raises(TypeError, match=r"gru_backward: cache must be the GruCache of a training=True gru_forward, "
                                        r"got LstmCache"):
        _core.gru_backward(lstm_cache, None)
    with pytest.raises(TypeError, match=r"lstm_backward: cache must be the LstmCache.*got GruCache"):
        _core.lstm_backward(cache, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(B, T, H\) = \(3, 4, 6\)"):
        _core.gru_backward(cache, y[:, :2])
    with pytest.raises(ValueError, match=r"db_out must have shape \(2, 3H\) = \(2, 18\), got \(18,\)"):
        _core.gru_backward(cache, y, db_out=np.zeros(18, np.float32))
    with pytest.raises(TypeError, match=r"dW_out must be float32 in native byte order"):
        _core.gru_backward(cache, y, dW_out=np.zeros((5, 18), ">f4"))
    square = _core.gru_forward(a["x"][:, :, :1].repeat(6, axis=2), np.zeros((6, 18), np.float32), a["U"], None,
                               a["h0"], training=True)[2]  # I = H: dW and dU have one shape
    buf = np.zeros((6, 18), np.float32)
    with pytest.raises(ValueError, match=r"dW_out, dU_out and db_out must be different arrays"):
        _core.gru_backward(square, y, dW_out=buf, dU_out=buf)
    no_bias = _core.gru_forward(a["x"], a["W"], a["U"], None, a["h0"], training=True)[2]
    with pytest.raises(ValueError, match=r"db_out was given but the forward had no bias"):
        _core.gru_backward(no_bias, y, db_out=np.zeros((2, 18), np.float32))


def test_non_contiguous_inputs_give_the_contiguous_results(rng, seed):
    inputs, opts = rnn_problem(CELL, rng, 5, 6, 4, 7, np.float32, mask=True, rec_mask=True)
    Rs = loss_weights(rng, inputs, opts)
    want = kernel_run(CELL, inputs, opts, Rs)
    odd = {k: (None if v is None else np.asfortranarray(v) if v.ndim >= 2 else v[::-1].copy()[::-1])
           for k, v in inputs.items()}
    odd["x"] = np.ascontiguousarray(inputs["x"][:, :, ::-1])[:, :, ::-1]  # a reversed (strided) view
    assert not odd["x"].flags.c_contiguous
    got = kernel_run(CELL, odd, opts, [np.asfortranarray(r) for r in Rs])
    assert_same_results(got, want, f"non-contiguous inputs, seed={seed}")
