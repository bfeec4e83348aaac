"""dense_softmax_xent and matmul: float64 vs finite differences, float32 vs the reference.

Tolerances as for the LSTM: float64 kernel vs central differences (step 1e-6)
max|a-b|/max(1,|a|,|b|) <= 1e-6; float32 kernel vs float64 reference
max|a-b|/max|b| <= 1e-5 on the loss and probabilities, <= 1e-4 on gradients.
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import assert_all_close, fd_gradient, rel_error, scaled_error

FD_TOL = 1e-6
F32_OUT_TOL = 1e-5
F32_GRAD_TOL = 1e-4
F64_REF_TOL = 1e-10
CLIP_MARGIN = 1e-3  # relative distance kept between random probabilities and the clip edges
EPS = 1e-7


def dense_problem(rng, N, D, C, dtype, *, sparse=True, weights=False, bias=True, scale=1.0):
    """Inputs for dense_softmax_xent; no probability lies near a clip edge (a kink)."""
    for _ in range(50):
        x = (scale * rng.standard_normal((N, D))).astype(dtype)
        W = (rng.standard_normal((D, C)) / np.sqrt(D)).astype(dtype)
        b = (0.1 * rng.standard_normal(C)).astype(dtype) if bias else None
        if sparse:
            labels = rng.integers(0, C, size=N)
        else:
            labels = rng.dirichlet(np.ones(C), size=N).astype(dtype)
        w = rng.random(N).astype(dtype) if weights else None
        p = ref.dense_softmax_xent(x, W, b, labels, w)[1]
        near_low = np.abs(p / EPS - 1) < CLIP_MARGIN
        near_high = np.abs((1 - p) / EPS - 1) < CLIP_MARGIN
        if not (near_low.any() or near_high.any()):
            return dict(x=x, W=W, b=b, labels=labels, weights=w)
    raise RuntimeError("could not draw probabilities away from the clip edges")


def kernel(p, **opts):
    loss, probs, dx, dW, db = _core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"],
                                                        p["weights"], **opts)
    return dict(loss=np.array(loss), probs=probs), dict(dx=dx, dW=dW, db=db)


def reference(p, **opts):
    loss, probs, dx, dW, db = ref.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"],
                                                      p["weights"], **opts)
    return dict(loss=np.array(loss), probs=probs), dict(dx=dx, dW=dW, db=db)


def case(case_id, **kw):
    return pytest.param(kw, id=case_id)


PROBLEMS = [
    case("sparse"),
    case("sparse-weights", weights=True),
    case("dense", sparse=False),
    case("dense-weights-no_bias", sparse=False, weights=True, bias=False),
    case("sparse-no_bias", bias=False),
]
FROM_LOGITS = [pytest.param(False, id="probs"), pytest.param(True, id="from_logits")]


def _with_clipped_rows(p, rng):
    """Append rows the clip acts on: confidently right, confidently wrong, partly clipped."""
    C = p["W"].shape[1]
    D = p["x"].shape[1]
    extra_logits = np.zeros((3, C))
    extra_logits[0, 0] = 40.0                 # right and sure: p_0 > 1 - eps
    extra_logits[1, 1] = 40.0                 # wrong and sure: p_label < eps
    extra_logits[2, :2] = (20.0, 19.0)        # two live classes, the rest below eps
    # x rows that produce exactly these logits through W (with b) via a least-squares solve
    b = p["b"] if p["b"] is not None else 0.0
    W = p["W"].astype(np.float64)
    xs = np.linalg.lstsq(W.T, (extra_logits - b).T, rcond=None)[0].T
    p = dict(p, x=np.concatenate([p["x"], xs.astype(p["x"].dtype)]))
    labels = p["labels"]
    if labels.ndim == 1:
        p["labels"] = np.concatenate([labels, [0, 0, 1]])
    else:
        t = np.zeros((3, C), labels.dtype)
        t[0, 0] = 1
        t[1, 0] = 1
        t[2, :3] = (0.5, 0.25, 0.25)        # mass on a clipped class
        p["labels"] = np.concatenate([labels, t])
    if p["weights"] is not None:
        p["weights"] = np.concatenate([p["weights"], np.ones(3, p["weights"].dtype)])
    assert D >= C, "the clipped rows need D >= C to hit the logits exactly"
    return p


# ---------------------------------------------------------------------------
# float64: finite differences and the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("from_logits", FROM_LOGITS)
@pytest.mark.parametrize("kw", PROBLEMS)
def test_float64_kernel_matches_finite_differences(kw, from_logits, rng, seed):
    p = _with_clipped_rows(dense_problem(rng, 5, 7, 4, np.float64, **kw), rng)

    def loss():
        return (np.array(_core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"], p["weights"],
                                                  from_logits=from_logits, backward=False)[0]),)

    _, grads = kernel(p, from_logits=from_logits)
    numeric = {name: fd_gradient(loss, p[arg], [np.array(1.0)])
               for name, arg in (("dx", "x"), ("dW", "W"), ("db", "b")) if p[arg] is not None}
    if p["b"] is None:
        assert grads["db"] is None
    assert_all_close({k: grads[k] for k in numeric}, numeric, FD_TOL, rel_error,
                     f"float64 dense_softmax_xent vs FD {kw} from_logits={from_logits} seed={seed}")


@pytest.mark.parametrize("from_logits", FROM_LOGITS)
@pytest.mark.parametrize("kw", PROBLEMS)
def test_float64_kernel_matches_reference(kw, from_logits, rng, seed):
    p = _with_clipped_rows(dense_problem(rng, 9, 11, 6, np.float64, **kw), rng)
    context = f"float64 dense_softmax_xent vs reference {kw} from_logits={from_logits} seed={seed}"
    k_out, k_grads = kernel(p, from_logits=from_logits)
    r_out, r_grads = reference(p, from_logits=from_logits)
    assert_all_close(k_out, r_out, F64_REF_TOL, scaled_error, context)
    assert_all_close(k_grads, r_grads, F64_REF_TOL, scaled_error, context)


@pytest.mark.parametrize("from_logits", FROM_LOGITS)
@pytest.mark.parametrize("kw", PROBLEMS)
def test_reference_matches_finite_differences(kw, from_logits, rng, seed):
    """The oracle itself, clipped rows included."""
    p = _with_clipped_rows(dense_problem(rng, 4, 5, 3, np.float64, **kw), rng)
    _, grads = reference(p, from_logits=from_logits)

    def loss():
        return (np.array(ref.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"], p["weights"],
                                                from_logits=from_logits)[0]),)

    numeric = {name: fd_gradient(loss, p[arg], [np.array(1.0)])
               for name, arg in (("dx", "x"), ("dW", "W"), ("db", "b")) if p[arg] is not None}
    assert_all_close({k: grads[k] for k in numeric}, numeric, FD_TOL, rel_error,
                     f"reference vs FD {kw} from_logits={from_logits} seed={seed}")


# ---------------------------------------------------------------------------
# float32 vs the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("from_logits", FROM_LOGITS)
@pytest.mark.parametrize("N, D, C, kw", [
    pytest.param(1, 1, 2, {}, id="N1-D1-C2"),
    pytest.param(67, 33, 7, {"weights": True}, id="N67-D33-C7-weights"),
    pytest.param(13400, 150, 97, {"weights": True}, id="N13400-D150-C97-weights"),
    pytest.param(200, 25, 1000, {"sparse": False}, id="N200-D25-C1000-dense"),
    pytest.param(31, 17, 5, {"bias": False, "scale": 4.0}, id="N31-D17-C5-no_bias-peaked"),
])
def test_float32_kernel_matches_reference(N, D, C, kw, from_logits, rng, seed):
    p = dense_problem(rng, N, D, C, np.float32, **kw)
    context = f"float32 dense_softmax_xent vs reference N={N} D={D} C={C} {kw} " \
              f"from_logits={from_logits} seed={seed}"
    k_out, k_grads = kernel(p, from_logits=from_logits)
    r_out, r_grads = reference(p, from_logits=from_logits)
    assert k_out["probs"].dtype == np.float32, context
    assert isinstance(_core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"])[0], float)
    # A float32 probability near 1 carries an absolute error of ~1 ulp, so -log p does too:
    # the loss is measured against Σw (its size when every row is uncertain), not against
    # a loss that confident rows can make arbitrarily small.
    loss_scale = max(abs(float(r_out["loss"])), _weight_sum(p))
    loss_err = abs(float(k_out["loss"]) - float(r_out["loss"])) / loss_scale
    assert loss_err <= F32_OUT_TOL, f"loss error {loss_err:.3g} > {F32_OUT_TOL}: {context}"
    assert_all_close({"probs": k_out["probs"]}, {"probs": r_out["probs"]}, F32_OUT_TOL, scaled_error, context)
    # Likewise dlogits = w·(p - t) is exact only to ~1 ulp of p, so each gradient is
    # measured against at least the size one uncertain row gives it (max w times its
    # other factor); with many rows the reference's own scale is far above that floor.
    sw = float(np.max(p["weights"])) if p["weights"] is not None else 1.0
    floors = {"dx": sw * float(np.max(np.abs(p["W"]))), "dW": sw * float(np.max(np.abs(p["x"]))), "db": sw}
    for name, want in r_grads.items():
        got = k_grads[name]
        if want is None:
            assert got is None, f"{name}: {context}"
            continue
        scale = max(float(np.max(np.abs(want))), floors[name])
        err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
        assert err <= F32_GRAD_TOL, f"{name}: error {err:.3g} > {F32_GRAD_TOL}: {context}"


def _weight_sum(p):
    n = p["x"].shape[0]
    return float(np.sum(p["weights"])) if p["weights"] is not None else float(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_class(dtype, rng):
    """C = 1: p = 1 always; clipped, so the probability loss is -log(1-eps) with no gradient."""
    p = dense_problem(rng, 6, 3, 1, dtype)
    for from_logits in (False, True):
        k_out, k_grads = kernel(p, from_logits=from_logits)
        r_out, r_grads = reference(p, from_logits=from_logits)
        np.testing.assert_allclose(k_out["loss"], r_out["loss"], rtol=1e-5, atol=1e-12)
        np.testing.assert_array_equal(k_out["probs"], 1.0)
        for name in k_grads:
            np.testing.assert_array_equal(k_grads[name], 0.0, err_msg=f"{name} from_logits={from_logits}")


# ---------------------------------------------------------------------------
# Clipping, label forms, options
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipped_rows_get_zero_gradient(dtype, rng, seed):
    base = dense_problem(rng, 4, 6, 5, dtype)
    p = _with_clipped_rows(base, rng)
    _, grads = kernel(p)
    probs = kernel(p)[0]["probs"]
    context = f"dtype={np.dtype(dtype).name} seed={seed}"
    assert probs[4, 0] > 1 - EPS and probs[5, 0] < EPS, f"set-up: {probs[4:6]} {context}"
    # confidently right and confidently wrong rows: every entry clipped, no gradient
    np.testing.assert_array_equal(grads["dx"][4:6], 0.0, err_msg=context)
    # the partly clipped row still has a gradient
    assert np.any(grads["dx"][6] != 0), context
    # the fully clipped rows add nothing to dW, db
    keep = [0, 1, 2, 3, 6]
    _, g_keep = kernel(dict(p, x=p["x"][keep], labels=p["labels"][keep]))
    for name in ("dW", "db"):
        np.testing.assert_allclose(grads[name], g_keep[name], rtol=0,
                                   atol=1e-6 if dtype == np.float32 else 1e-14, err_msg=context)
    # from_logits has no clip: the sure-but-wrong row is pulled hard
    _, g_logits = kernel(p, from_logits=True)
    assert np.abs(g_logits["dx"][5]).max() > 0.1, context
    loss_rows = kernel(dict(p, x=p["x"][4:6], labels=p["labels"][4:6]))[0]["loss"]
    want = -np.log(np.array(1 - EPS, dtype)) - np.log(np.array(EPS, dtype))
    np.testing.assert_allclose(loss_rows, want, rtol=1e-5, err_msg=context)


# Float targets that are all exactly one-hot take the class-id path inside the
# kernel; one all-zero row (no target: loss and gradient 0) keeps them on the
# general path. Both must agree with the reference's float-target formula.
@pytest.mark.parametrize("zero_row", [False, True], ids=["onehot", "onehot+zero_row"])
@pytest.mark.parametrize("from_logits", FROM_LOGITS)
def test_onehot_float_targets_match_reference(zero_row, from_logits, rng, seed):
    p = _with_clipped_rows(dense_problem(rng, 13, 11, 6, np.float64, weights=True), rng)
    t = np.eye(6)[p["labels"]]
    if zero_row:
        t[4] = 0.0
    p = dict(p, labels=t)
    context = f"float64 one-hot targets vs reference zero_row={zero_row} from_logits={from_logits} seed={seed}"
    k_out, k_grads = kernel(p, from_logits=from_logits)
    r_out, r_grads = reference(p, from_logits=from_logits)
    assert_all_close(k_out, r_out, F64_REF_TOL, scaled_error, context)
    assert_all_close(k_grads, r_grads, F64_REF_TOL, scaled_error, context)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", FROM_LOGITS)
def test_sparse_labels_equal_onehot_targets(dtype, from_logits, rng, seed):
    p = dense_problem(rng, 23, 9, 7, dtype, weights=True)
    dense = dict(p, labels=np.eye(7, dtype=dtype)[p["labels"]])
    tol = 1e-12 if dtype == np.float64 else 1e-6
    a_out, a_grads = kernel(p, from_logits=from_logits)
    b_out, b_grads = kernel(dense, from_logits=from_logits)
    c_out, c_grads = kernel(dict(p, labels=p["labels"].astype(np.int32)), from_logits=from_logits)
    context = f"sparse vs one-hot labels dtype={np.dtype(dtype).name} seed={seed}"
    assert_all_close(a_out, b_out, tol, scaled_error, context)
    assert_all_close(a_grads, b_grads, tol, scaled_error, context)
    assert_all_close(c_out, a_out, 0.0, scaled_error, context + " (int32 vs int64 labels)")
    assert_all_close(c_grads, a_grads, 0.0, scaled_error, context + " (int32 vs int64 labels)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_scale_rows(dtype, rng, seed):
    p = dense_problem(rng, 10, 5, 4, dtype)
    w = np.zeros(10, dtype)
    w[3], w[7] = 2.0, 0.5
    out, grads = kernel(dict(p, weights=w))
    r3 = kernel(dict(p, x=p["x"][3:4], labels=p["labels"][3:4]))
    r7 = kernel(dict(p, x=p["x"][7:8], labels=p["labels"][7:8]))
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out["loss"], 2 * r3[0]["loss"] + 0.5 * r7[0]["loss"], rtol=tol)
    np.testing.assert_array_equal(grads["dx"][w == 0], 0.0)
    np.testing.assert_allclose(grads["dx"][3], 2 * r3[1]["dx"][0], rtol=tol, atol=tol)
    np.testing.assert_allclose(grads["dW"], 2 * r3[1]["dW"] + 0.5 * r7[1]["dW"], rtol=tol, atol=tol,
                               err_msg=f"seed={seed}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_false_and_probs(dtype, rng, seed):
    p = dense_problem(rng, 12, 5, 8, dtype)
    loss, probs, dx, dW, db = _core.dense_softmax_xent(p["x"], p["W"], p["b"], p["labels"],
                                                       backward=False)
    assert dx is None and dW is None and db is None
    full = kernel(p)[0]
    assert loss == float(full["loss"])
    np.testing.assert_array_equal(probs, full["probs"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert probs.shape == (12, 8) and probs.dtype == dtype


def test_clip_eps_is_used(rng, seed):
    p = _with_clipped_rows(dense_problem(rng, 4, 6, 5, np.float64), rng)
    for eps in (1e-3, 1e-12):
        k_out, k_grads = kernel(p, clip_eps=eps)
        r_out, r_grads = reference(p, clip_eps=eps)
        context = f"clip_eps={eps} seed={seed}"
        assert_all_close(k_out, r_out, F64_REF_TOL, scaled_error, context)
        assert_all_close(k_grads, r_grads, F64_REF_TOL, scaled_error, context)


# ---------------------------------------------------------------------------
# matmul (the library GEMM)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("M, N, K", [(1, 1, 1), (7, 33, 100), (67, 150, 600), (5, 3, 0), (0, 4, 3),
                                     (129, 1, 17)])
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(M, N, K, ta, tb, dtype, tol, rng, seed):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    got = _core.matmul(a, b, trans_a=ta, trans_b=tb)
    context = f"matmul M={M} N={N} K={K} ta={ta} tb={tb} seed={seed}"
    assert got.shape == (M, N) and got.dtype == dtype, context
    assert scaled_error(got, want) <= tol, context
    out = rng.standard_normal((M, N)).astype(dtype)
    start = out.copy()
    res = _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out, accumulate=True)
    assert res is out or np.shares_memory(res, out), context + ": out= must be written in place"
    assert scaled_error(out, start + want) <= tol, context + " accumulate"
    _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
    assert scaled_error(out, want) <= tol, context + " out="
