"""Property-based tests (hypothesis): random shapes and options against the float64 reference.

Each example draws shapes (B, T, I, H, N, D, C, n including 1 and odd sizes),
every LSTM option (mask, rec_mask, bias, go_backwards, zero_output_for_mask,
return_sequences, both activations, x as dense floats, token ids or one-hot
floats that take the lookup path) and misaligned-but-C-contiguous buffers
(views starting a few elements into a larger array, so SIMD code gets
unaligned pointers and odd tails). The properties:

  * float32 kernels vs the float64 reference: max|a-b| <= 1e-5 of max|ref| on
    outputs, <= 1e-4 on gradients (LSTM, dense_softmax_xent), <= 1e-5 of the
    magnitude of the products for matmul, <= 1e-6 for the optimizers;
  * float64 gradients vs central finite differences: <= 1e-6 (gradcheck.py);
  * any input in another layout or byte order (Fortran, strided, reversed,
    elements at an odd byte offset, byte-swapped, read-only) gives the bits of
    the plain call; an in-place buffer in such a layout is refused and left
    untouched.

max|ref| is taken over a group (the outputs; the gradients) rather than each
array alone: a one-element array (H = B = 1) can cancel to ~0 where float32
rounding of its O(1) terms is then "large" relative to it, which says nothing
about the kernel; the group keeps the problem's own scale.

Problems whose outputs diverge (relu or linear gates can square c every step)
are rejected up front. Some others are ill-conditioned: rounding the *inputs*
to float32 alone moves the exact float64 answer by more than the threshold. No float32 kernel can meet the threshold
there, so when a float32 check fails, the example's sensitivity is measured
(the float64 reference on inputs perturbed by ±2^-24 relative) and the example
is rejected, not failed, if that spread exceeds a quarter of the threshold. The
number of such rejections is printed with the example counts.

The float32 table is chosen once at import (FUSEDLSTM_ISA), so the float32
properties run here under the level in use and again in one subprocess per
other level the CPU has, with a fixed example budget. The number of examples
each property ran is printed (pytest -s, or shown on failure) and must reach
half its budget, so a strategy that rejects everything cannot pass quietly.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import hypothesis  # noqa: F401  (extra 'test')
except ImportError:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise  # CI installs every extra: a missing one is a broken set-up, not a skip
    pytest.skip("hypothesis is not installed (pip install 'fusedlstm[test]')", allow_module_level=True)
from hypothesis import HealthCheck, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import require  # noqa: E402
from fusedlstm import _core  # noqa: E402
from fusedlstm import optimizer_steps  # noqa: E402
from fusedlstm import reference as ref  # noqa: E402
from gradcheck import (FD_STEP, GRAD_NAMES, differentiable, fd_gradient, kernel_forward, kernel_run,  # noqa: E402
                       loss_weights, lstm_problem, reference_forward, reference_run, rel_error)

OUT_TOL, GRAD_TOL, FD_TOL, F64_REF_TOL = 1e-5, 1e-4, 1e-6, 1e-10
MATMUL_TOL, OPT_TOL = 1e-5, 1e-6
TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_PARENT = Path(_core.__file__).resolve().parent.parent

# Example budgets in-process; the subprocess of each other ISA level gets
# SUBPROCESS_EXAMPLES (passed as FUSEDLSTM_HYPOTHESIS_EXAMPLES, a JSON object that
# overrides entries). FUSEDLSTM_HYPOTHESIS_SCALE multiplies every budget.
EXAMPLES = {"lstm_f32": 800, "lstm_fd": 250, "dense_f32": 500, "dense_fd": 250, "matmul_f32": 400,
            "gemm_bf16": 300, "optimizers_f32": 250, "layouts": 150, "layouts_in_place": 150}
EXAMPLES.update(json.loads(os.environ.get("FUSEDLSTM_HYPOTHESIS_EXAMPLES", "{}")))
SUBPROCESS_EXAMPLES = {"lstm_f32": 400, "dense_f32": 250, "matmul_f32": 200, "optimizers_f32": 120}
COUNTS = {}


def budget(name):
    scale = float(os.environ.get("FUSEDLSTM_HYPOTHESIS_SCALE", "1"))
    return max(1, int(EXAMPLES[name] * scale))


def prop_settings(name):
    # derandomize=False: fresh examples every run; failures replay from the database.
    return settings(max_examples=budget(name), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def misaligned(a, offset):
    """The same values in a C-contiguous view starting `offset` elements into a larger buffer."""
    if a is None or offset == 0:
        return a
    buf = np.empty(a.size + offset, a.dtype)
    view = buf[offset:].reshape(a.shape)
    view[...] = a
    return view


def group_error(got, want, names, floor=0.0):
    """name -> max|got-want| / max(floor, max over the group of max|want|) (see the module docstring)."""
    arrays = {n: (np.asarray(got[n], np.float64), np.asarray(want[n], np.float64))
              for n in names if want[n] is not None}
    scale = max((float(np.max(np.abs(w))) for _, w in arrays.values() if w.size), default=0.0)
    scale = max(scale, floor)
    errs = {}
    for n, (g, w) in arrays.items():
        if g.shape != w.shape:
            errs[n] = float("inf")
        elif not np.all(np.isfinite(g)):
            errs[n] = float("inf")
        elif w.size:
            d = float(np.max(np.abs(g - w)))
            errs[n] = d / scale if scale > 0 else d
    return errs


def check_group(got, want, names, tol, context, floor=0.0):
    errs = group_error(got, want, names, floor)
    bad = {n: e for n, e in errs.items() if not e <= tol}
    assert not bad, f"{context}: errors {bad} > {tol:g} (all: {errs})"
    for n in names:
        assert (got[n] is None) == (want[n] is None), f"{context}: {n} is {got[n]!r}, expected {want[n]!r}"


def sensitivity(run_reference, inputs, part, names, floor=0.0, trials=3):
    """The largest group_error of run_reference(inputs)[part] under ±2^-24 relative input noise."""
    base = run_reference(inputs)[part]
    worst = 0.0
    for k in range(trials):
        noise = np.random.default_rng(k)
        pert = {n: (v.astype(np.float64) * (1 + 2.0 ** -24 * noise.choice([-1.0, 1.0], v.shape))
                    if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v) for n, v in inputs.items()}
        worst = max([worst] + list(group_error(run_reference(pert)[part], base, names, floor).values()))
    return worst


def check_or_reject_ill_conditioned(name, checks, run_reference, inputs):
    """checks: [(got, part, names, tol, context, floor)]: got vs run_reference(inputs)[part].

    A failing check whose problem is ill-conditioned rejects the example (see the
    module docstring); any other failure fails it.
    """
    want = run_reference(inputs)
    for got, part, names, tol, context, floor in checks:
        try:
            check_group(got, want[part], names, tol, context, floor)
        except AssertionError:
            if sensitivity(run_reference, inputs, part, names, floor) > tol / 4:
                rejected(name.split("_")[0], "ill-conditioned")
            raise


REJECTED = {}  # family ("lstm", "dense") -> {reason: count}


def rejected(family, reason):
    counts = REJECTED.setdefault(family, {})
    counts[reason] = counts.get(reason, 0) + 1
    reject()


def counted(name):
    """Counts the examples of a property that ran to the end (not the rejected ones)."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            COUNTS[name] = COUNTS.get(name, 0) + 1
            return result
        return wrapper
    return deco


def run_property(name, prop, minimum=None):
    """Runs the hypothesis property `prop` and checks it really ran examples."""
    COUNTS[name] = 0
    REJECTED.clear()
    prop()
    n = COUNTS[name]
    print(f"hypothesis {name}: {n} examples under isa={_core.build_info()['isa']}, rejected: {REJECTED}")
    want = (minimum if minimum is not None else budget(name)) // 2
    assert n >= max(1, want), f"{name}: only {n} examples ran (budget {budget(name)})"
    return n


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------

# Input scales that move the piecewise activations through their flat pieces
# (as tests/test_lstm_kernel.py): unbounded gates (relu, linear) get small inputs.
X_SCALE_ACT = {"tanh": 1.0, "sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 3.0,
               "linear": 1.0}
X_SCALE_REC = {"tanh": 1.0, "sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 0.5,
               "linear": 0.5}


@st.composite
def lstm_cases(draw, max_b=9, max_t=10, max_i=24, max_h=40):
    """Sizes up to 4H = 160 columns: past every SIMD width, with odd tails."""
    x_kind = draw(st.sampled_from(["dense", "ids", "onehot"]))
    act = draw(st.sampled_from(ref.ACTIVATIONS))
    rec_act = draw(st.sampled_from(ref.ACTIVATIONS))
    return dict(
        shape=(draw(st.integers(1, max_b)), draw(st.integers(1, max_t)), draw(st.integers(1, max_i)),
               draw(st.integers(1, max_h))),
        x_kind=x_kind,
        flags=dict(mask=draw(st.booleans()), rec_mask=draw(st.booleans()), bias=draw(st.booleans())),
        opts=dict(go_backwards=draw(st.booleans()), zero_output_for_mask=draw(st.booleans()),
                  return_sequences=draw(st.booleans()), activation=act, recurrent_activation=rec_act),
        x_scale=min(X_SCALE_ACT[act], X_SCALE_REC[rec_act]),
        offset=draw(st.sampled_from([0, 0, 1, 3, 7])),
        seed=draw(st.integers(0, 2 ** 32 - 1)),
    )


def make_lstm_problem(case, dtype):
    """(inputs, opts, rng, context) for one drawn case; rejects cases stuck on a kink."""
    B, T, I, H = case["shape"]
    rng = np.random.default_rng(case["seed"])
    vocab = I if case["x_kind"] != "dense" else None
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            inputs, opts = lstm_problem(rng, B, T, I, H, dtype, vocab=vocab, x_scale=case["x_scale"],
                                        **case["flags"], **case["opts"])
        except RuntimeError:  # no draw away from the activation kinks (both piecewise, tiny shape)
            rejected("lstm", "on a kink")
        outs = reference_forward(inputs, opts)[:3]
    if not all(np.all(np.abs(a) < 1e4) for a in outs):
        rejected("lstm", "diverging")  # relu/linear gates: c can grow like c^2 per step
    if case["x_kind"] == "onehot":  # dense floats the kernel's onehot='auto' turns into ids
        inputs["x"] = ref.ids_to_onehot(inputs["x"], I).astype(dtype)
    inputs = {k: misaligned(v, case["offset"]) if isinstance(v, np.ndarray) else v
              for k, v in inputs.items()}
    context = (f"LSTM B,T,I,H={case['shape']} x={case['x_kind']} {case['flags']} {case['opts']} "
               f"offset={case['offset']} seed={case['seed']} isa={_core.build_info()['isa']}")
    return inputs, opts, rng, context


@prop_settings("lstm_f32")
@given(case=lstm_cases())
@counted("lstm_f32")
def lstm_float32_matches_reference(case):
    inputs, opts, rng, context = make_lstm_problem(case, np.float32)
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(inputs, opts, Rs)
    if case["x_kind"] == "onehot":
        assert k_grads["dx"] is not None, context + ": dense one-hot x must still get dx"
    for name, a in k_out.items():
        assert a.dtype == np.float32, f"{context}: {name} is {a.dtype}"
    check_or_reject_ill_conditioned(
        "lstm_f32", [(k_out, 0, ("y", "hT", "cT"), OUT_TOL, context + " outputs", 0.0),
                     (k_grads, 1, GRAD_NAMES, GRAD_TOL, context + " gradients", 0.0)],
        lambda inp: reference_run(inp, opts, Rs), inputs)


@prop_settings("lstm_fd")
@given(case=lstm_cases(max_b=3, max_t=5, max_i=4, max_h=5))
@counted("lstm_fd")
def lstm_float64_matches_finite_differences(case):
    inputs, opts, rng, context = make_lstm_problem(case, np.float64)
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(inputs, opts, Rs)
    r_out, r_grads = reference_run(inputs, opts, Rs)
    check_group(k_out, r_out, ("y", "hT", "cT"), F64_REF_TOL, context + " float64 kernel vs reference")
    check_group(k_grads, r_grads, GRAD_NAMES, F64_REF_TOL, context + " float64 kernel vs reference")
    # fd_gradient perturbs each array in place: contiguous copies the forward reads
    inputs = {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    for g, arr in differentiable(inputs).items():
        forward = lambda: kernel_forward(inputs, opts)[:3]  # noqa: E731
        numeric = fd_gradient(forward, arr, Rs)
        err = rel_error(k_grads[g], numeric)
        if err > FD_TOL:
            # Unbounded gates (relu/linear) can make L so large or so curved that the central
            # difference itself is off by more than the tolerance. Steps h and h/2 tell: if they
            # disagree beyond the tolerance the example is rejected (and counted), not passed;
            # if they agree, the kernel must match the finer one.
            finer = fd_gradient(forward, arr, Rs, h=FD_STEP / 2)
            if rel_error(finer, numeric) > FD_TOL:
                rejected("lstm_fd", "finite differences unreliable (steps h and h/2 disagree)")
            err = rel_error(k_grads[g], finer)
        assert err <= FD_TOL, f"{context}: {g} vs finite differences: error {err:.3g} > {FD_TOL:g}"


def test_lstm_float32_matches_reference():
    run_property("lstm_f32", lstm_float32_matches_reference)


def test_lstm_float64_gradients_match_finite_differences():
    run_property("lstm_fd", lstm_float64_matches_finite_differences)


# ---------------------------------------------------------------------------
# dense_softmax_xent
# ---------------------------------------------------------------------------

EPS = 1e-7
CLIP_MARGIN = 1e-3


@st.composite
def dense_cases(draw, max_n=9, max_d=7, max_c=9):
    return dict(N=draw(st.integers(1, max_n)), D=draw(st.integers(1, max_d)), C=draw(st.integers(1, max_c)),
                labels=draw(st.sampled_from(["int64", "int32", "uint8", "targets"])),
                weights=draw(st.booleans()), bias=draw(st.booleans()), from_logits=draw(st.booleans()),
                backward=draw(st.booleans()), offset=draw(st.sampled_from([0, 0, 1, 5])),
                x_scale=draw(st.sampled_from([1.0, 1.0, 6.0])),  # 6: peaked, confident rows
                seed=draw(st.integers(0, 2 ** 32 - 1)))


def make_dense_problem(case, dtype):
    N, D, C = case["N"], case["D"], case["C"]
    rng = np.random.default_rng(case["seed"])
    x = (case["x_scale"] * rng.standard_normal((N, D))).astype(dtype)
    W = (rng.standard_normal((D, C)) / np.sqrt(D)).astype(dtype)
    b = (0.1 * rng.standard_normal(C)).astype(dtype) if case["bias"] else None
    if case["labels"] == "targets":
        labels = rng.dirichlet(np.ones(C), size=N).astype(dtype)
    else:
        labels = rng.integers(0, C, N).astype(case["labels"])
    w = rng.random(N).astype(dtype) if case["weights"] else None
    if C > 1:  # C = 1 is always clipped (p = 1): exact on both sides
        p = ref.dense_softmax_xent(x, W, b, labels, w)[1]
        if (np.abs(p / EPS - 1) < CLIP_MARGIN).any() or (np.abs((1 - p) / EPS - 1) < CLIP_MARGIN).any():
            rejected("dense", "on a clip edge")
    p = dict(x=x, W=W, b=b, labels=labels, weights=w)
    p = {k: misaligned(v, case["offset"]) for k, v in p.items()}
    context = f"dense_softmax_xent {case} isa={_core.build_info()['isa']}"
    return p, context


def dense_kernel(p, from_logits, backward=True):
    loss, probs, dx, dW, db = _core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"], p["weights"],
                                                        from_logits=from_logits, backward=backward)
    return dict(loss=np.array(loss), probs=probs), dict(dx=dx, dW=dW, db=db)


def dense_reference(p, from_logits):
    loss, probs, dx, dW, db = ref.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"], p["weights"],
                                                      from_logits=from_logits)
    return dict(loss=np.array(loss), probs=probs), dict(dx=dx, dW=dW, db=db)


@prop_settings("dense_f32")
@given(case=dense_cases(max_n=40, max_d=40, max_c=40))
@counted("dense_f32")
def dense_float32_matches_reference(case):
    p, context = make_dense_problem(case, np.float32)
    k_out, k_grads = dense_kernel(p, case["from_logits"], case["backward"])
    assert k_out["probs"].dtype == np.float32, context
    # The loss comes from float32 probabilities: each row's -log q carries an
    # absolute error of a few float32 ulps of 1 whatever its size, so a total
    # loss near 0 (confident right answers) is measured against Σ w_n, the
    # scale of the rows' terms, not against itself.
    w = p["weights"]
    loss_scale = float(np.sum(np.abs(w))) if w is not None else float(case["N"])
    checks = [(k_out, 0, ("loss",), OUT_TOL, context + " loss", loss_scale),
              (k_out, 0, ("probs",), OUT_TOL, context + " probs", 0.0)]
    if case["backward"]:
        # Likewise dlogits = w·(p - t) is exact only to ~1 ulp of p: a confident row's tiny
        # gradient is measured against what one uncertain row contributes (max w times the
        # largest of its other factors), not against itself.
        grad_floor = (float(np.max(np.abs(w))) if w is not None else 1.0) * max(
            1.0, float(np.max(np.abs(p["x"]))), float(np.max(np.abs(p["W"]))))
        checks.append((k_grads, 1, ("dx", "dW", "db"), GRAD_TOL, context + " gradients", grad_floor))
    else:
        assert all(v is None for v in k_grads.values()), context + ": backward=False returned gradients"
    check_or_reject_ill_conditioned("dense_f32", checks, lambda inp: dense_reference(inp, case["from_logits"]), p)


@prop_settings("dense_fd")
@given(case=dense_cases(max_n=6, max_d=5, max_c=6))
@counted("dense_fd")
def dense_float64_matches_finite_differences(case):
    p, context = make_dense_problem(case, np.float64)
    p = {k: np.ascontiguousarray(v) if v is not None else None for k, v in p.items()}
    _, grads = dense_kernel(p, case["from_logits"])
    rng = np.random.default_rng(case["seed"] + 1)
    R = rng.standard_normal()  # the loss is a scalar: L = R·loss

    def forward():
        return [np.array(_core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"], p["weights"],
                                                  from_logits=case["from_logits"], backward=False)[0])]

    for g, name in (("dx", "x"), ("dW", "W"), ("db", "b")):
        if p[name] is None:
            assert grads[g] is None, context + f": {g} without {name}"
            continue
        numeric = fd_gradient(forward, p[name], [np.array(R)])
        err = rel_error(R * grads[g], numeric)
        assert err <= FD_TOL, f"{context}: {g} vs finite differences: error {err:.3g} > {FD_TOL:g}"


def test_dense_float32_matches_reference():
    run_property("dense_f32", dense_float32_matches_reference)


def test_dense_float64_gradients_match_finite_differences():
    run_property("dense_fd", dense_float64_matches_finite_differences)


# ---------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------

@prop_settings("matmul_f32")
@given(M=st.integers(0, 40), N=st.integers(0, 40), K=st.integers(0, 70), ta=st.booleans(), tb=st.booleans(),
       out_mode=st.sampled_from(["new", "out", "accumulate"]), offset=st.sampled_from([0, 1, 3]),
       seed=st.integers(0, 2 ** 32 - 1))
@counted("matmul_f32")
def matmul_float32_matches_float64(M, N, K, ta, tb, out_mode, offset, seed):
    rng = np.random.default_rng(seed)
    a = misaligned(rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32), offset)
    b = misaligned(rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32), offset)
    A, Bm = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    start = rng.standard_normal((M, N)).astype(np.float32)
    want = A @ Bm + (start if out_mode == "accumulate" else 0.0)
    # the error bound of a sum of products is relative to the products' magnitudes
    magnitude = np.abs(A) @ np.abs(Bm) + (np.abs(start) if out_mode == "accumulate" else 0.0)
    scale = max(float(np.max(magnitude, initial=0.0)), 1e-30)
    if out_mode == "new":
        got = _core.matmul(a, b, trans_a=ta, trans_b=tb)
    else:
        got = misaligned(start.copy(), offset)
        res = _core.matmul(a, b, trans_a=ta, trans_b=tb, out=got, accumulate=out_mode == "accumulate")
        assert res is got or np.shares_memory(res, got), "out= must be written in place"
    context = f"matmul M={M} N={N} K={K} ta={ta} tb={tb} {out_mode} offset={offset} seed={seed}"
    assert got.shape == (M, N) and got.dtype == np.float32, context
    err = float(np.max(np.abs(got - want), initial=0.0)) / scale
    assert err <= MATMUL_TOL, f"{context}: error {err:.3g}"


def test_matmul_float32_matches_float64():
    run_property("matmul_f32", matmul_float32_matches_float64)


# Every bfloat16 level this CPU has, called by name (no subprocess needed), on
# operands rounded by the reference (ml_dtypes): same error bound as matmul.
@prop_settings("gemm_bf16")
@given(M=st.integers(0, 70), N=st.integers(0, 70), K=st.integers(0, 100), ta=st.booleans(), tb=st.booleans(),
       out_mode=st.sampled_from(["new", "out", "accumulate"]), packed=st.booleans(),
       offset=st.sampled_from([0, 1, 3]), level=st.sampled_from(_core.build_info()["bf16_levels"]),
       seed=st.integers(0, 2 ** 32 - 1))
@counted("gemm_bf16")
def gemm_bf16_matches_rounded_float64(M, N, K, ta, tb, out_mode, packed, offset, level, seed):
    rng = np.random.default_rng(seed)
    a = misaligned(rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32), offset)
    b = misaligned(rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32), offset)
    A, Bm = ref.bf16_round(a.T if ta else a), ref.bf16_round(b.T if tb else b)
    start = rng.standard_normal((M, N)).astype(np.float32)
    want = A @ Bm + (start if out_mode == "accumulate" else 0.0)
    magnitude = np.abs(A) @ np.abs(Bm) + (np.abs(start) if out_mode == "accumulate" else 0.0)
    scale = max(float(np.max(magnitude, initial=0.0)), 1e-30)
    kw = dict(trans_a=ta, trans_b=tb, level=level, packed=packed)
    if out_mode == "new":
        got = _core.gemm_bf16(a, b, **kw)
    else:
        got = misaligned(start.copy(), offset)
        res = _core.gemm_bf16(a, b, out=got, accumulate=out_mode == "accumulate", **kw)
        assert res is got or np.shares_memory(res, got), "out= must be written in place"
    context = f"gemm_bf16 {level} M={M} N={N} K={K} ta={ta} tb={tb} {out_mode} packed={packed} seed={seed}"
    assert got.shape == (M, N) and got.dtype == np.float32, context
    err = float(np.max(np.abs(got - want), initial=0.0)) / scale
    assert err <= MATMUL_TOL, f"{context}: error {err:.3g}"


def test_gemm_bf16_matches_rounded_float64():
    require("ml_dtypes")
    run_property("gemm_bf16", gemm_bf16_matches_rounded_float64)


# ---------------------------------------------------------------------------
# Optimizers: sizes around every SIMD width and the 64Ki-element block, misaligned starts
# ---------------------------------------------------------------------------

SIZES = st.one_of(st.integers(1, 70), st.sampled_from([127, 128, 129, 255, 256, 257, 65535, 65536, 65537,
                                                       131073]))


@prop_settings("optimizers_f32")
@given(n=SIZES, which=st.sampled_from(["adam", "sgd", "sgd-momentum", "sgd-nesterov", "rmsprop"]),
       offset=st.integers(0, 17), first_step=st.sampled_from([1, 2, 10, 1000]),
       seed=st.integers(0, 2 ** 32 - 1))
@counted("optimizers_f32")
def optimizers_float32_match_reference(n, which, offset, first_step, seed):
    rng = np.random.default_rng(seed)
    w = misaligned(rng.standard_normal(n).astype(np.float32), offset)
    g = misaligned((0.1 * rng.standard_normal(n)).astype(np.float32), (offset + 5) % 17)
    s1 = misaligned((0.1 * rng.standard_normal(n)).astype(np.float32), offset)
    s2 = misaligned(np.abs(0.01 * rng.standard_normal(n)).astype(np.float32), offset)
    befores = {id(a): a.copy() for a in (w, s1, s2)}
    lr = 1e-3 if which in ("adam", "rmsprop") else 0.01
    if which == "adam":
        hyper, slots, rule = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7), {"m": s1, "v": s2}, "adam"
    elif which == "rmsprop":
        hyper, slots, rule = dict(rho=0.9, momentum=0.0, epsilon=1e-7), {"velocity": s2}, "rmsprop"
    else:
        mom = 0.0 if which == "sgd" else 0.9
        hyper, slots, rule = dict(momentum=mom, nesterov=which == "sgd-nesterov"), ({"u": s1} if mom else {}), "sgd"
    s64 = {k: a.astype(np.float64) for k, a in slots.items()}
    want_w = ref.optimizer_rule(rule, w.astype(np.float64), g.astype(np.float64), s64, lr, first_step, hyper,
                                np.float32)
    want = [want_w] + [s64[k] for k in slots]
    if rule == "adam":
        _core.adam_step(w, g, s1, s2, alpha=float(optimizer_steps.adam_alpha(lr, 0.9, 0.999, first_step)), **hyper)
    elif rule == "rmsprop":
        _core.rmsprop_step(w, g, s2, lr=lr, **hyper)
    else:
        _core.sgd_step(w, g, s1 if hyper["momentum"] else None, lr=lr, **hyper)
    got = [w] + list(slots.values())
    context = f"{which} n={n} offset={offset} step={first_step} seed={seed}"
    for k, (a, b) in enumerate(zip(got, want)):
        # float32 rounds at the operands' scale: a moment that cancels to near zero
        # (β·m ≈ -(1-β)·g) is measured against the buffer it was updated from.
        scale = max(float(np.max(np.abs(b))), float(np.max(np.abs(befores[id(a)]))), 1e-30)
        err = float(np.max(np.abs(a.astype(np.float64) - b))) / scale
        assert err <= OPT_TOL, f"{context}: buffer {k} error {err:.3g}"


def test_optimizers_float32_match_reference():
    run_property("optimizers_f32", optimizers_float32_match_reference)


# ---------------------------------------------------------------------------
# Layouts and byte orders: the numbers of the plain C-order call, or a clear
# refusal for the buffers updated in place (never garbage: a byte-swapped or
# odd-byte-offset in-place buffer used to be read as raw native floats)
# ---------------------------------------------------------------------------

LAYOUTS = ("c", "fortran", "strided", "reversed", "odd_byte_offset", "byteswapped", "readonly")


def relayout(a, how):
    """The same values as `a` in another memory layout or byte order."""
    if not isinstance(a, np.ndarray) or how == "c":
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided" and a.ndim:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if how == "reversed" and a.ndim:
        return np.flip(np.flip(a, -1).copy(), -1)
    if how == "odd_byte_offset":
        view = np.frombuffer(bytearray(a.nbytes + 1), a.dtype, a.size, offset=1).reshape(a.shape)
        view[...] = a
        return view
    if how == "byteswapped" and a.dtype.itemsize > 1:
        return a.astype(a.dtype.newbyteorder())
    b = a.copy()
    b.setflags(write=False)
    return b


def usable_in_place(a):
    return a.flags.c_contiguous and a.flags.writeable and a.flags.aligned and a.dtype.isnative


def same_bits(got, want, context):
    for k, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes(), f"{context}: output {k}"
        elif isinstance(w, float):
            assert g == w or (np.isnan(g) and np.isnan(w)), f"{context}: output {k}"


@prop_settings("layouts")
@given(case=lstm_cases(max_b=4, max_t=5, max_i=6, max_h=9), data=st.data())
@counted("layouts")
def relaid_inputs_give_the_same_bits(case, data):
    inputs, opts, rng, context = make_lstm_problem(dict(case, offset=0), np.float32)
    layouts = {k: data.draw(st.sampled_from(LAYOUTS), label=k) for k, v in inputs.items() if v is not None}
    relaid = {k: relayout(v, layouts.get(k, "c")) for k, v in inputs.items()}
    context += f" layouts={layouts}"
    Rs = loss_weights(rng, inputs, opts)
    rs_layout = data.draw(st.sampled_from(LAYOUTS), label="upstream gradients")
    want_o, want_g = kernel_run(inputs, opts, Rs)
    got_o, got_g = kernel_run(relaid, opts, [relayout(r, rs_layout) for r in Rs])
    same_bits(list(got_o.values()) + list(got_g.values()), list(want_o.values()) + list(want_g.values()), context)
    # dense_softmax_xent and matmul on the LSTM's own arrays, relaid the same way
    x2 = want_o["hT"]
    W2, b2 = inputs["U"][:, : 4 * case["shape"][3] - 1], inputs["U"][0, : 4 * case["shape"][3] - 1]
    labels = np.arange(x2.shape[0]) % W2.shape[1]
    want = _core.dense_softmax_xent(x2, np.ascontiguousarray(W2), np.ascontiguousarray(b2), labels)
    got = _core.dense_softmax_xent(relayout(x2, layouts.get("h0", "c")), relayout(np.ascontiguousarray(W2),
                                   layouts.get("U", "c")), relayout(np.ascontiguousarray(b2), layouts.get("W", "c")),
                                   relayout(labels, layouts.get("c0", "c")))
    same_bits(got, want, context + " dense_softmax_xent")
    same_bits([_core.matmul(relayout(x2, layouts.get("W", "c")), relayout(inputs["U"], layouts.get("c0", "c")))],
              [_core.matmul(x2, inputs["U"])], context + " matmul")


@prop_settings("layouts")
@given(n=st.integers(1, 40), which=st.sampled_from(["adam", "sgd", "rmsprop", "matmul_out"]),
       lay=st.tuples(*[st.sampled_from(LAYOUTS)] * 4), seed=st.integers(0, 2 ** 32 - 1))
@counted("layouts_in_place")
def in_place_buffers_are_used_or_refused(n, which, lay, seed):
    rng = np.random.default_rng(seed)
    plain = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    plain[3] = np.abs(plain[3])
    if which == "matmul_out":
        plain = [rng.standard_normal((3, n)).astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32),
                 rng.standard_normal((3, 2)).astype(np.float32)]

    def run(bufs):
        if which == "adam":
            _core.adam_step(bufs[0], bufs[1], bufs[2], bufs[3], alpha=0.01)
        elif which == "sgd":
            _core.sgd_step(bufs[0], bufs[1], bufs[2], lr=0.01, momentum=0.9, nesterov=True)
        elif which == "rmsprop":
            _core.rmsprop_step(bufs[0], bufs[1], bufs[3], lr=0.01)
        else:
            _core.matmul(bufs[0], bufs[1], out=bufs[2], accumulate=True)

    want = [a.copy() for a in plain]
    run(want)
    bufs = [relayout(a, how) for a, how in zip(plain, lay)]
    before = [np.array(b) for b in bufs]
    updated = {"adam": (0, 2, 3), "sgd": (0, 2), "rmsprop": (0, 3), "matmul_out": (2,)}[which]
    context = f"{which} n={n} layouts={lay} seed={seed}"
    if all(usable_in_place(bufs[i]) for i in updated):
        run(bufs)
        for k, (b, w) in enumerate(zip(bufs, want)):
            assert np.array_equal(b, w), f"{context}: buffer {k}"
        return
    with pytest.raises((ValueError, TypeError), match=r"must be"):
        run(bufs)
    for k, (b, b0) in enumerate(zip(bufs, before)):
        assert np.array_equal(b, b0), f"{context}: refused, yet buffer {k} changed"


def test_relaid_inputs_give_the_same_bits():
    run_property("layouts", relaid_inputs_give_the_same_bits)


def test_in_place_buffers_are_used_or_refused():
    run_property("layouts_in_place", in_place_buffers_are_used_or_refused, minimum=budget("layouts"))


def test_uint64_ids_beyond_int64_are_refused():
    """2^64-1 used to wrap to the valid id -1 (an all-zero input) and pass silently."""
    W, U, h = np.ones((5, 8), np.float32), np.zeros((2, 8), np.float32), np.zeros((1, 2), np.float32)
    for bad in (2 ** 64 - 1, 2 ** 63, 5):
        ids = np.array([[0, bad]], np.uint64)
        with pytest.raises(ValueError, match=rf"x\[0, 1\] = {bad} is not a token id"):
            _core.lstm_forward(ids, W, U, None, h, h)
    _core.lstm_forward(np.array([[0, 4]], np.uint64), W, U, None, h, h)


# ---------------------------------------------------------------------------
# The float32 properties under every other ISA level (one subprocess each)
# ---------------------------------------------------------------------------

F32_PROPERTIES = {"lstm_f32": "lstm_float32_matches_reference", "dense_f32": "dense_float32_matches_reference",
                  "matmul_f32": "matmul_float32_matches_float64",
                  "optimizers_f32": "optimizers_float32_match_reference"}

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import test_hypothesis_kernels as t
counts = {}
for name, fn in t.F32_PROPERTIES.items():
    counts[name] = t.run_property(name, getattr(t, fn), minimum=t.budget(name))
print("COUNTS " + json.dumps(counts))
"""


def other_levels():
    info = _core.build_info()
    return [lv for lv in info["isa_available"] if lv != info["isa"]]


@pytest.mark.parametrize("level", ["generic", "neon", "avx2", "avx512"])
def test_float32_properties_under_other_isa_levels(level):
    if level == _core.build_info()["isa"]:
        pytest.skip(f"{level} is the level in use: the in-process properties cover it")
    if level not in other_levels():
        pytest.skip(f"this CPU lacks {level}")
    env = dict(os.environ, FUSEDLSTM_ISA=level, FUSEDLSTM_HYPOTHESIS_EXAMPLES=json.dumps(SUBPROCESS_EXAMPLES),
               PYTHONPATH=os.pathsep.join([str(PACKAGE_PARENT), str(TESTS_DIR)] + [
                   p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(TESTS_DIR)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={level}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    counts = json.loads(proc.stdout.split("COUNTS ", 1)[1].splitlines()[0])
    print(f"FUSEDLSTM_ISA={level}: hypothesis examples {counts}")
    assert set(counts) == set(F32_PROPERTIES) and all(v >= 1 for v in counts.values()), counts
