"""LSTM kernels: float64 vs finite differences, float32 vs the float64 reference.

Thresholds (the project spec):
  * float64 kernel vs central differences (step 1e-6) of
    L = Σ y⊙R + Σ hT⊙Rh + Σ cT⊙Rc:  max|a-b|/max(1,|a|,|b|) <= 1e-6, every
    element for small shapes, a random directional derivative for large ones;
  * float32 kernel vs float64 reference: max|a-b|/max|b| per array <= 1e-5 on
    outputs, <= 1e-4 on gradients.
Shapes come from H in {1, 3, 25, 33, 150}, T in {1, 200}, B in {1, 67}, I odd,
as a covering set rather than the full product (the suite's time budget).
"""

import threading

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import (GRAD_NAMES, assert_all_close, differentiable, directional, fd_directional,
                       fd_gradient, kernel_forward, kernel_run, log_errors, loss_weights, lstm_problem,
                       reference_forward, reference_run, rel_error, scaled_error)

FD_TOL = 1e-6
F32_OUT_TOL = 1e-5
F32_GRAD_TOL = 1e-4
F64_REF_TOL = 1e-10  # float64 kernel vs float64 reference: rounding only

ACTS = ref.ACTIVATIONS


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


# Option sets: keyword flags for lstm_problem (vocab, bias, mask, rec_mask,
# x_scale) plus lstm_forward options. x_scale=3 drives the hard sigmoids and
# relu into their flat pieces as well as their slopes. As gates, relu and
# linear are unbounded (f > 1 grows c geometrically, and the problem itself
# then moves by ~5e-5 under 1e-7 input noise), so they get small inputs.
X_SCALE_ACT = {"sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 3.0,
               "linear": 1.0}
X_SCALE_REC = {"tanh": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 0.5,
               "linear": 0.5}

OPTIONS = [
    case("plain"),
    case("mask", mask=True),
    case("mask-zero_output", mask=True, zero_output_for_mask=True),
    case("mask-go_backwards", mask=True, go_backwards=True),
    case("mask-last", mask=True, return_sequences=False),
    case("mask-zero_output-last", mask=True, zero_output_for_mask=True, return_sequences=False),
    case("mask-zero_output-go_backwards-last", mask=True, zero_output_for_mask=True,
         go_backwards=True, return_sequences=False),
    case("go_backwards", go_backwards=True),
    case("last", return_sequences=False),
    case("rec_mask", rec_mask=True),
    case("rec_mask-mask", rec_mask=True, mask=True),
    case("no_bias", bias=False),
    case("ids", vocab=11),
    case("ids-mask-go_backwards-rec_mask", vocab=11, mask=True, go_backwards=True, rec_mask=True),
    case("ids-no_bias-last", vocab=5, bias=False, return_sequences=False),
    *[case(f"act={a}", activation=a, x_scale=s) for a, s in X_SCALE_ACT.items()],
    *[case(f"rec_act={a}", recurrent_activation=a, x_scale=s) for a, s in X_SCALE_REC.items()],
    case("hard_sigmoid-both-mask", activation="hard_sigmoid", recurrent_activation="hard_sigmoid_k2",
         x_scale=3.0, mask=True),
]

OPTIONS_SMALL_SHAPE = (4, 6, 3, 3)  # B, T, I, H


def shape(B, T, I, H, **kw):
    return pytest.param((B, T, I, H), kw, id=f"B{B}-T{T}-I{I}-H{H}" + "".join(
        f"-{k}" for k in kw))


def ctx(what, shp, kw, seed):
    return f"{what} shape(B,T,I,H)={shp} options={kw} seed={seed}"


# ---------------------------------------------------------------------------
# float64 kernel vs finite differences
# ---------------------------------------------------------------------------

def _check_fd_elementwise(inputs, opts, rng, context, run, forward):
    """Every element of every gradient `run` returns vs central differences of `forward`."""
    Rs = loss_weights(rng, inputs, opts)
    _, grads = run(inputs, opts, Rs)
    numeric = {g: fd_gradient(lambda: forward(inputs, opts)[:3], arr, Rs)
               for g, arr in differentiable(inputs).items()}
    if inputs["x"].dtype.kind != "f":
        assert grads["dx"] is None, context + ": dx must be None for ids"
    if inputs["b"] is None:
        assert grads["db"] is None, context + ": db must be None without a bias"
    got = {g: grads[g] for g in numeric}
    return assert_all_close(got, numeric, FD_TOL, rel_error, context)


@pytest.mark.parametrize("kw", OPTIONS)
def test_float64_kernel_matches_finite_differences(kw, rng, seed):
    B, T, I, H = OPTIONS_SMALL_SHAPE
    inputs, opts = lstm_problem(rng, B, T, I, H, np.float64, **kw)
    _check_fd_elementwise(inputs, opts, rng, ctx("float64 kernel vs FD", (B, T, I, H), kw, seed),
                          kernel_run, kernel_forward)


@pytest.mark.parametrize("shp, kw", [
    shape(1, 1, 1, 1),
    shape(1, 1, 1, 1, mask=True),
    shape(3, 1, 7, 3, go_backwards=True, return_sequences=False),
    shape(2, 5, 1, 1, mask=True, zero_output_for_mask=True),
    shape(1, 4, 7, 3, vocab=3, mask=True),
])
def test_float64_kernel_matches_finite_differences_shapes(shp, kw, rng, seed):
    inputs, opts = lstm_problem(rng, *shp, np.float64, **kw)
    _check_fd_elementwise(inputs, opts, rng, ctx("float64 kernel vs FD", shp, kw, seed), kernel_run,
                          kernel_forward)


@pytest.mark.parametrize("shp, kw", [
    shape(67, 200, 7, 33),
    shape(1, 200, 100, 150),
    shape(67, 1, 99, 150),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True),
    shape(5, 200, 3, 3, vocab=40, mask=True, zero_output_for_mask=True),
])
def test_float64_kernel_directional_derivative_large(shp, kw, rng, seed):
    inputs, opts = lstm_problem(rng, *shp, np.float64, **kw)
    Rs = loss_weights(rng, inputs, opts)
    _, grads = kernel_run(inputs, opts, Rs)
    params = differentiable(inputs)
    dirs = {g: rng.standard_normal(a.shape) for g, a in params.items()}
    numeric = fd_directional(lambda: kernel_forward(inputs, opts)[:3], list(params.values()),
                             list(dirs.values()), Rs)
    analytic = directional([grads[g] for g in params], list(dirs.values()))
    err = rel_error(analytic, numeric)
    log_errors(ctx("float64 kernel directional", shp, kw, seed), {"directional": err})
    assert err <= FD_TOL, (f"{ctx('float64 kernel directional derivative', shp, kw, seed)}: "
                           f"analytic {analytic!r}, finite differences {numeric!r}, error {err:.3g}")


@pytest.mark.parametrize("kw", OPTIONS)
def test_reference_matches_finite_differences(kw, rng, seed):
    """The oracle itself: its backward is the derivative of its forward."""
    B, T, I, H = 3, 4, 2, 2
    inputs, opts = lstm_problem(rng, B, T, I, H, np.float64, **kw)
    _check_fd_elementwise(inputs, opts, rng, ctx("reference vs FD", (B, T, I, H), kw, seed),
                          reference_run, reference_forward)


# ---------------------------------------------------------------------------
# kernels vs the float64 reference
# ---------------------------------------------------------------------------

def _compare_with_reference(inputs, opts, rng, context, out_tol, grad_tol):
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(inputs, opts, Rs)
    r_out, r_grads = reference_run(inputs, opts, Rs)
    for name, a in {**k_out, **{k: v for k, v in k_grads.items() if v is not None}}.items():
        assert a.dtype == inputs["W"].dtype, f"{context}: {name} has dtype {a.dtype}"
    assert_all_close(k_out, r_out, out_tol, scaled_error, context + " (outputs)")
    assert_all_close(k_grads, r_grads, grad_tol, scaled_error, context + " (gradients)")


@pytest.mark.parametrize("kw", OPTIONS)
def test_float64_kernel_matches_reference(kw, rng, seed):
    shp = (5, 7, 3, 4)
    inputs, opts = lstm_problem(rng, *shp, np.float64, **kw)
    _compare_with_reference(inputs, opts, rng, ctx("float64 kernel vs reference", shp, kw, seed),
                            F64_REF_TOL, F64_REF_TOL)


@pytest.mark.parametrize("kw", OPTIONS)
def test_float32_kernel_matches_reference_options(kw, rng, seed):
    shp = (9, 13, 7, 25)
    inputs, opts = lstm_problem(rng, *shp, np.float32, **kw)
    _compare_with_reference(inputs, opts, rng, ctx("float32 kernel vs reference", shp, kw, seed),
                            F32_OUT_TOL, F32_GRAD_TOL)


@pytest.mark.parametrize("shp, kw", [
    shape(1, 1, 1, 1),
    shape(67, 1, 7, 3),
    shape(1, 200, 1, 25),
    shape(67, 200, 7, 33),
    shape(3, 200, 100, 150),
    shape(67, 1, 100, 150),
    shape(67, 200, 7, 150, mask=True),
    shape(67, 200, 1, 33, vocab=97, mask=True, go_backwards=True),
    shape(1, 200, 7, 33, mask=True, zero_output_for_mask=True, return_sequences=False),
])
def test_float32_kernel_matches_reference_shapes(shp, kw, rng, seed):
    inputs, opts = lstm_problem(rng, *shp, np.float32, **kw)
    _compare_with_reference(inputs, opts, rng, ctx("float32 kernel vs reference", shp, kw, seed),
                            F32_OUT_TOL, F32_GRAD_TOL)


# ---------------------------------------------------------------------------
# Keras mask semantics, checked directly (independent of the reference)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_semantics(dtype, rng, seed):
    B, T, I, H = 4, 5, 3, 6
    inputs, opts = lstm_problem(rng, B, T, I, H, dtype)
    mask = np.ones((B, T), dtype=bool)
    mask[0] = False           # all masked
    mask[1, 0] = False        # first step masked
    mask[2, -1] = False       # last step masked
    mask[3, 2] = False        # a gap
    inputs["mask"] = mask
    y, hT, cT, _ = kernel_forward(inputs, {})
    yz, hTz, cTz, _ = kernel_forward(inputs, {"zero_output_for_mask": True})
    ylast, _, _, _ = kernel_forward(inputs, {"return_sequences": False})
    ylastz, _, _, _ = kernel_forward(inputs, {"return_sequences": False, "zero_output_for_mask": True})
    msg = f"dtype={np.dtype(dtype).name} seed={seed}"
    # an all-masked row keeps its initial state and outputs zeros (not h0)
    np.testing.assert_array_equal(hT[0], inputs["h0"][0], err_msg=msg)
    np.testing.assert_array_equal(cT[0], inputs["c0"][0], err_msg=msg)
    np.testing.assert_array_equal(y[0], 0, err_msg=msg)
    # a masked first step outputs zeros, not h0
    np.testing.assert_array_equal(y[1, 0], 0, err_msg=msg)
    # a masked step repeats the previous output, or is zero with zero_output_for_mask
    np.testing.assert_array_equal(y[3, 2], y[3, 1], err_msg=msg)
    np.testing.assert_array_equal(yz[3, 2], 0, err_msg=msg)
    np.testing.assert_array_equal(y[2, -1], y[2, -2], err_msg=msg)
    # state and real-step outputs do not depend on zero_output_for_mask
    np.testing.assert_array_equal(hT, hTz, err_msg=msg)
    np.testing.assert_array_equal(cT, cTz, err_msg=msg)
    np.testing.assert_array_equal(yz[mask], y[mask], err_msg=msg)
    # a row whose last step is masked: hT is the last real step's h
    np.testing.assert_array_equal(hT[2], y[2, -2], err_msg=msg)
    # return_sequences=False gives the last step's output under the same rule
    np.testing.assert_array_equal(ylast, y[:, -1], err_msg=msg)
    np.testing.assert_array_equal(ylastz, yz[:, -1], err_msg=msg)
    assert np.any(ylast[2] != 0) and np.all(ylastz[2] == 0), msg


@pytest.mark.parametrize("kw", [case("plain"), case("mask", mask=True), case("ids", vocab=7)])
def test_go_backwards_is_reversed_time(kw, rng, seed):
    """go_backwards == the forward direction on time-reversed x and mask; dx in x's order."""
    inputs, opts = lstm_problem(rng, 5, 8, 3, 4, np.float64, **kw)
    rev = dict(inputs, x=np.ascontiguousarray(inputs["x"][:, ::-1]))
    if inputs["mask"] is not None:
        rev["mask"] = np.ascontiguousarray(inputs["mask"][:, ::-1])
    Rs = loss_weights(rng, inputs, opts)
    out_b, grads_b = kernel_run(inputs, dict(opts, go_backwards=True), Rs)
    out_f, grads_f = kernel_run(rev, opts, Rs)
    context = f"go_backwards vs reversed input {kw} seed={seed}"
    if grads_f["dx"] is not None:
        grads_f["dx"] = grads_f["dx"][:, ::-1]
    assert_all_close(out_b, out_f, 1e-12, rel_error, context)
    assert_all_close(grads_b, grads_f, 1e-12, rel_error, context)


# ---------------------------------------------------------------------------
# Paths that must agree: training/inference, thread counts, ids/one-hot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [case("plain"), case("mask-go_backwards-rec_mask", mask=True,
                                                    go_backwards=True, rec_mask=True),
                                case("ids-last", vocab=9, return_sequences=False),
                                case("act=relu", activation="relu")])
def test_training_and_inference_outputs_identical(kw, dtype, rng, seed):
    inputs, opts = lstm_problem(rng, 7, 20, 5, 33, dtype, **kw)
    inf = kernel_forward(inputs, opts, training=False)
    tr = kernel_forward(inputs, opts, training=True)
    assert inf[3] is None, "inference must keep no cache"
    assert isinstance(tr[3], _core.LstmCache)
    for name, a, b in zip(("y", "hT", "cT"), inf[:3], tr[:3]):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: training vs inference, {kw} seed={seed}")


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [case("dense"), case("ids", vocab=9, mask=True)])
def test_backward_writes_weight_gradients_into_out_arrays(kw, dtype, rng, seed):
    """dW_out/dU_out/db_out receive exactly the returned gradients; accumulate adds to them."""
    inputs, opts = lstm_problem(rng, 6, 9, 5, 21, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    _, _, _, cache = kernel_forward(inputs, opts, training=True)
    plain = dict(zip(GRAD_NAMES, _core.lstm_backward(cache, *Rs)))
    outs = {n: np.full_like(plain[n], np.nan) for n in ("dW", "dU", "db")}
    got = dict(zip(GRAD_NAMES, _core.lstm_backward(cache, *Rs, dW_out=outs["dW"], dU_out=outs["dU"],
                                                   db_out=outs["db"])))
    for n, buf in outs.items():
        assert got[n] is buf, f"{n}: the out array itself must be returned"
        np.testing.assert_array_equal(buf, plain[n], err_msg=f"{n} into out=, seed={seed}")
    for n in ("dx", "dh0", "dc0"):
        if plain[n] is not None:
            np.testing.assert_array_equal(got[n], plain[n], err_msg=f"{n} with out= given, seed={seed}")

    start = {n: rng.standard_normal(buf.shape).astype(dtype) for n, buf in outs.items()}
    acc = {n: a.copy() for n, a in start.items()}
    _core.lstm_backward(cache, *Rs, dU_out=acc["dU"], db_out=acc["db"], accumulate=True)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for n in ("dU", "db"):
        want = start[n].astype(np.float64) + plain[n]
        err = scaled_error(acc[n], want)
        assert err <= tol, f"{n} accumulate=True: error {err:.3g} > {tol:g}, seed={seed}"


# Shapes on both sides of the time loop's split: a large U with few rows per
# thread splits each step's GEMM across threads, the others give each thread its
# own block of batch rows (23 and 67 rows: blocks of unequal size).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shp, kw", [
    shape(9, 12, 5, 260, mask=True, rec_mask=True),
    shape(67, 30, 7, 150, mask=True),
    shape(23, 30, 7, 33, mask=True, rec_mask=True, go_backwards=True),
    shape(23, 30, 1, 33, vocab=11, mask=True, return_sequences=False),
])
def test_thread_count_does_not_change_results(shp, kw, dtype, rng, seed, restore_threads):
    inputs, opts = lstm_problem(rng, *shp, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    results = []
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        assert _core.get_num_threads() == n
        results.append(kernel_run(inputs, opts, Rs))
    for n, (outs, grads) in zip((2, 3), results[1:]):
        for name in outs:
            np.testing.assert_array_equal(outs[name], results[0][0][name],
                                          err_msg=f"{name} with {n} threads vs 1, seed={seed}")
        for name in grads:
            np.testing.assert_array_equal(grads[name], results[0][1][name],
                                          err_msg=f"{name} with {n} threads vs 1, seed={seed}")


def _onehot_inputs(inputs, V):
    dense = dict(inputs, x=ref.ids_to_onehot(inputs["x"], V).astype(inputs["W"].dtype))
    return dense


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [(np.float64, 1e-12, 1e-12),
                                                       (np.float32, 1e-6, 1e-5)])
@pytest.mark.parametrize("kw", [case("plain"), case("mask-rec_mask-go_backwards", mask=True,
                                                    rec_mask=True, go_backwards=True),
                                case("no_bias-last", bias=False, return_sequences=False)])
def test_ids_path_equals_dense_onehot_path(kw, dtype, out_tol, grad_tol, rng, seed):
    V = 13
    inputs, opts = lstm_problem(rng, 6, 9, 1, 25, dtype, vocab=V, **kw)
    dense = _onehot_inputs(inputs, V)
    Rs = loss_weights(rng, inputs, opts)
    out_i, grads_i = kernel_run(inputs, opts, Rs)
    out_d, grads_d = kernel_run(dense, opts, Rs, onehot="never")
    context = f"ids vs dense one-hot (onehot='never'), {kw} dtype={np.dtype(dtype).name} seed={seed}"
    assert grads_i["dx"] is None, context + ": dx must be None for ids"
    assert grads_d["dx"].shape == dense["x"].shape, context
    assert grads_i["dW"].shape == (V, 4 * 25), context
    assert_all_close(out_i, out_d, out_tol, scaled_error, context)
    del grads_d["dx"], grads_i["dx"]
    assert_all_close(grads_i, grads_d, grad_tol, scaled_error, context)


@pytest.mark.parametrize("dtype, out_tol, grad_tol", [(np.float64, 1e-12, 1e-12),
                                                       (np.float32, 1e-6, 1e-5)])
def test_onehot_auto_equals_never_on_onehot_input(dtype, out_tol, grad_tol, rng, seed):
    V = 10
    inputs, opts = lstm_problem(rng, 5, 11, 1, 33, dtype, vocab=V, mask=True)
    dense = _onehot_inputs(inputs, V)
    Rs = loss_weights(rng, inputs, opts)
    out_a, grads_a = kernel_run(dense, opts, Rs, onehot="auto")
    out_n, grads_n = kernel_run(dense, opts, Rs, onehot="never")
    context = f"onehot='auto' vs 'never' on one-hot x, dtype={np.dtype(dtype).name} seed={seed}"
    assert grads_a["dx"] is not None and grads_a["dx"].shape == dense["x"].shape, \
        context + ": dense x needs dx even when it was detected as one-hot"
    assert_all_close(out_a, out_n, out_tol, scaled_error, context)
    assert_all_close(grads_a, grads_n, grad_tol, scaled_error, context)
    r_out, r_grads = reference_run(dense, opts, Rs)
    tol_o, tol_g = (F64_REF_TOL, F64_REF_TOL) if dtype == np.float64 else (F32_OUT_TOL, F32_GRAD_TOL)
    assert_all_close(out_a, r_out, tol_o, scaled_error, context + " vs reference")
    assert_all_close(grads_a, r_grads, tol_g, scaled_error, context + " vs reference")


def _near_onehot(kind, rng, B, T, V, dtype):
    """One-hot x with one row (the last, so an early-exit check must read it all) spoiled."""
    ids = rng.integers(-1, V, size=(B, T))
    x = ref.ids_to_onehot(ids, V)
    row = x[B - 1, T - 1]
    row[:] = 0.0
    if kind == "0.999":
        row[2] = 0.999
    elif kind == "two-ones":
        row[1] = row[3] = 1.0
    elif kind == "minus-one":
        row[2] = -1.0
    elif kind == "one-plus-tiny":
        row[2], row[0] = 1.0, 1e-30
    elif kind == "2.0":
        row[2] = 2.0
    return x.astype(dtype)


NEAR_ONEHOT = ["0.999", "two-ones", "minus-one", "one-plus-tiny", "2.0"]


# "one-plus-tiny" is left out: taking it as one-hot would change results by 1e-30,
# which no comparison can see; test_onehot_ids_rejects_near_onehot_rows covers it.
@pytest.mark.parametrize("kind", [k for k in NEAR_ONEHOT if k != "one-plus-tiny"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, F64_REF_TOL), (np.float32, F32_OUT_TOL)])
def test_onehot_auto_does_not_take_near_onehot_rows(kind, dtype, tol, rng, seed):
    V = 6
    inputs, opts = lstm_problem(rng, 3, 4, V, 5, dtype)
    inputs["x"] = _near_onehot(kind, rng, 3, 4, V, dtype)
    Rs = loss_weights(rng, inputs, opts)
    out_a, grads_a = kernel_run(inputs, opts, Rs, onehot="auto")
    r_out, r_grads = reference_run(inputs, opts, Rs)
    context = f"onehot='auto' on a {kind!r} row, dtype={np.dtype(dtype).name} seed={seed}"
    assert_all_close(out_a, r_out, tol, scaled_error, context)
    assert_all_close(grads_a, r_grads, 1e-4 if dtype == np.float32 else tol, scaled_error, context)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onehot_ids_detects_onehot_rows(dtype, rng, seed):
    B, T, V = 4, 7, 9
    ids = rng.integers(-1, V, size=(B, T))
    ids[0, 0], ids[1, 1] = -1, V - 1
    got = _core.onehot_ids(ref.ids_to_onehot(ids, V).astype(dtype))
    assert got is not None, f"seed={seed}"
    assert got.dtype == np.int32 and got.shape == (B, T)
    np.testing.assert_array_equal(got, ids, err_msg=f"seed={seed}")
    # all zero rows, and a width of 1
    np.testing.assert_array_equal(_core.onehot_ids(np.zeros((2, 3, 4), dtype)), -1)
    np.testing.assert_array_equal(_core.onehot_ids(np.ones((2, 3, 1), dtype)), 0)
    # non-contiguous input reads the right elements
    wide = ref.ids_to_onehot(ids, V).astype(dtype)[:, :, ::-1]
    np.testing.assert_array_equal(_core.onehot_ids(wide), np.where(ids >= 0, V - 1 - ids, -1))


@pytest.mark.parametrize("kind", NEAR_ONEHOT + ["nan", "inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onehot_ids_rejects_near_onehot_rows(kind, dtype, rng):
    if kind in ("nan", "inf"):
        x = _near_onehot("0.999", rng, 3, 4, 6, dtype)
        x[2, 3, :] = 0.0
        x[2, 3, 1] = np.nan if kind == "nan" else np.inf
    else:
        x = _near_onehot(kind, rng, 3, 4, 6, dtype)
    assert _core.onehot_ids(x) is None, f"row {x[2, 3]!r} was taken as one-hot"


# ---------------------------------------------------------------------------
# Backward call options, the cache, mask dtypes
# ---------------------------------------------------------------------------

def test_backward_none_upstream_is_zero(rng, seed):
    inputs, opts = lstm_problem(rng, 3, 5, 4, 6, np.float64, mask=True)
    B, H = inputs["h0"].shape
    y, _, _, cache = kernel_forward(inputs, opts, training=True)
    zeros_y, zeros_h = np.zeros_like(y), np.zeros((B, H))
    dy = rng.standard_normal(y.shape)
    a = _core.lstm_backward(cache, None, zeros_h, zeros_h)
    b = _core.lstm_backward(cache, zeros_y, None, None)
    c = _core.lstm_backward(cache, dy)
    d = _core.lstm_backward(cache, dy, zeros_h, zeros_h)
    for name, u, v in zip(GRAD_NAMES, a, b):
        np.testing.assert_array_equal(u, 0.0, err_msg=name)
        np.testing.assert_array_equal(v, 0.0, err_msg=name)
    for name, u, v in zip(GRAD_NAMES, c, d):
        np.testing.assert_array_equal(u, v, err_msg=f"{name}: None vs explicit zeros, seed={seed}")


@pytest.mark.parametrize("kw", [case("dense"), case("ids", vocab=5)])
def test_backward_need_dx_and_repeat(kw, rng, seed):
    inputs, opts = lstm_problem(rng, 4, 6, 3, 5, np.float32, mask=True, **kw)
    Rs = loss_weights(rng, inputs, opts)
    cache = kernel_forward(inputs, opts, training=True)[3]
    assert (cache.B, cache.T, cache.H) == (4, 6, 5)
    assert cache.nbytes > 0
    full = _core.lstm_backward(cache, *Rs)
    again = _core.lstm_backward(cache, *Rs)
    no_dx = _core.lstm_backward(cache, *Rs, need_dx=False)
    assert no_dx[0] is None
    for name, u, v, w in zip(GRAD_NAMES, full, again, no_dx):
        np.testing.assert_array_equal(u, v, err_msg=f"{name}: second backward on one cache, seed={seed}")
        if name != "dx":
            np.testing.assert_array_equal(u, w, err_msg=f"{name}: need_dx=False, seed={seed}")


def test_cache_outlives_its_inputs(rng, seed):
    """The cache holds references to the forward's inputs: deleting ours is safe."""
    inputs, opts = lstm_problem(rng, 3, 5, 4, 6, np.float64, mask=True, rec_mask=True)
    Rs = loss_weights(rng, inputs, opts)
    want = reference_run(inputs, opts, Rs)[1]
    copies = {k: (None if v is None else v.copy()) for k, v in inputs.items()}
    cache = kernel_forward(copies, opts, training=True)[3]
    del copies
    got = dict(zip(GRAD_NAMES, _core.lstm_backward(cache, *Rs)))
    assert_all_close(got, want, F64_REF_TOL, scaled_error, f"backward after dropping inputs, seed={seed}")


@pytest.mark.parametrize("mask_dtype", [np.uint8, np.int32, np.int64])
def test_mask_dtypes_are_equivalent(mask_dtype, rng, seed):
    inputs, opts = lstm_problem(rng, 6, 7, 3, 4, np.float32, mask=True)
    Rs = loss_weights(rng, inputs, opts)
    want_o, want_g = kernel_run(inputs, opts, Rs)
    m = inputs["mask"].astype(mask_dtype)
    if mask_dtype != np.uint8:
        m[m != 0] = 7  # nonzero, not just 1, means a real step
    got_o, got_g = kernel_run(dict(inputs, mask=m), opts, Rs)
    for name in want_o:
        np.testing.assert_array_equal(got_o[name], want_o[name], err_msg=f"{name} seed={seed}")
    for name in want_g:
        np.testing.assert_array_equal(got_g[name], want_g[name], err_msg=f"{name} seed={seed}")


@pytest.mark.parametrize("id_dtype", [np.int32, np.uint16, np.int16])
def test_id_dtypes_are_equivalent(id_dtype, rng, seed):
    inputs, opts = lstm_problem(rng, 5, 8, 1, 6, np.float32, vocab=9, mask=True)
    Rs = loss_weights(rng, inputs, opts)
    want_o, want_g = kernel_run(inputs, opts, Rs)  # int64 ids
    ids = inputs["x"]
    if id_dtype == np.uint16:
        ids = np.maximum(ids, 0)  # no -1 in an unsigned type
        want_o, want_g = kernel_run(dict(inputs, x=ids), opts, Rs)
    got_o, got_g = kernel_run(dict(inputs, x=ids.astype(id_dtype)), opts, Rs)
    for name in want_o:
        np.testing.assert_array_equal(got_o[name], want_o[name], err_msg=f"{name} seed={seed}")
    for name in want_g:
        np.testing.assert_array_equal(got_g[name], want_g[name], err_msg=f"{name} seed={seed}")


# ---------------------------------------------------------------------------
# Thread safety: concurrent calls from Python threads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_python_threads_match_sequential(dtype, rng, seed):
    problems = [lstm_problem(rng, 17, 40, 7, 33, dtype, mask=True),
                lstm_problem(rng, 9, 30, 1, 25, dtype, vocab=20, go_backwards=True)]
    Rs = [loss_weights(rng, inp, opts) for inp, opts in problems]
    sequential = [kernel_run(inp, opts, r) for (inp, opts), r in zip(problems, Rs)]
    results = [[None] * 5 for _ in problems]
    errors = []
    start = threading.Barrier(len(problems))

    def work(k):
        try:
            start.wait()
            for rep in range(5):
                results[k][rep] = kernel_run(*problems[k], Rs[k])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, (want_o, want_g) in enumerate(sequential):
        for rep, (got_o, got_g) in enumerate(results[k]):
            for name in want_o:
                np.testing.assert_array_equal(got_o[name], want_o[name],
                                              err_msg=f"thread {k} rep {rep} {name} seed={seed}")
            for name in want_g:
                np.testing.assert_array_equal(got_g[name], want_g[name],
                                              err_msg=f"thread {k} rep {rep} {name} seed={seed}")
