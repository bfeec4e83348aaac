"""Random GRU / SimpleRNN problems and the checks test_gru_kernel.py and test_simple_rnn_kernel.py share.

A problem is (inputs, opts): inputs are the arrays <cell>_forward takes (x, W,
U, b, h0, mask, rec_mask), opts its keyword options. The loss behind every
gradient check is L = Σ y ⊙ R_y + Σ h_T ⊙ R_h (gradcheck.py), so the backward is
fed R_y, R_h. Piecewise-linear activations have kinks where neither finite
differences nor float32-vs-float64 comparisons mean anything, so problems are
redrawn until every pre-activation is KINK_MARGIN away from one (as for the LSTM).
"""

import numpy as np

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import (KINK_MARGIN, KINKS, assert_all_close, fd_gradient, make_mask, rel_error,
                       scaled_error)

GRAD_NAMES = ("dx", "dh0", "dW", "dU", "db")  # <cell>_backward's results, in order
OUT_NAMES = ("y", "hT")
GATES = {"gru": 3, "simple_rnn": 1}
UNBOUNDED = {"relu", "linear"}  # activations whose outputs can grow without limit

FD_TOL = 1e-6
F32_OUT_TOL = 1e-5
F32_GRAD_TOL = 1e-4
F64_REF_TOL = 1e-10


def bias_shape(cell, H, opts):
    if cell == "gru" and opts.get("reset_after", True):
        return (2, 3 * H)
    return (GATES[cell] * H,)


def _kink_distance(cell, cache, opts):
    """Smallest distance of a pre-activation to a kink of its activation."""
    act = opts.get("activation", "tanh")
    rec_act = opts.get("recurrent_activation", "sigmoid")
    worst = np.inf
    for _, m_t, s in cache["steps"]:
        rows = m_t[:, 0]
        if cell == "gru":
            pieces = [(s["pre_z"], rec_act), (s["pre_r"], rec_act), (s["pre_h"], act)]
        else:
            pieces = [(s["z"], act)]
        for vals, a in pieces:
            v = vals[rows]
            for k in KINKS[a]:
                if v.size:
                    worst = min(worst, float(np.min(np.abs(v - k))))
    return worst


def rnn_problem(cell, rng, B, T, I, H, dtype=np.float64, *, vocab=None, bias=True, mask=False, rec_mask=False,
                x_scale=1.0, u_scale=1.0, **opts):
    """(inputs, opts) for <cell>_forward; `vocab` makes x (B, T) ids in [-1, vocab).

    u_scale shrinks U and h0: a GRU whose update gate is unbounded (relu, linear)
    multiplies h by a function of h every step and diverges within a few steps
    at the usual scale. Problems whose outputs still grow past 1e3 are redrawn.
    """
    G = GATES[cell] * H
    act = opts.get("activation", "tanh")
    rec_act = opts.get("recurrent_activation", "sigmoid")
    for _ in range(50):
        if vocab is None:
            x = (x_scale * rng.standard_normal((B, T, I))).astype(dtype)
            W = (rng.standard_normal((I, G)) / np.sqrt(I)).astype(dtype)
        else:
            x = rng.integers(-1, vocab, size=(B, T)).astype(np.int64)
            W = (x_scale * rng.standard_normal((vocab, G))).astype(dtype)
        inputs = dict(
            x=x, W=W,
            U=(u_scale * rng.standard_normal((H, G)) / np.sqrt(H)).astype(dtype),
            b=(0.1 * rng.standard_normal(bias_shape(cell, H, opts))).astype(dtype) if bias else None,
            h0=(0.5 * u_scale * rng.standard_normal((B, H))).astype(dtype),
            mask=make_mask(rng, B, T) if mask else None,
            rec_mask=((rng.random((B, H)) < 0.75) / 0.75).astype(dtype) if rec_mask else None,
        )
        if not (KINKS[act] or KINKS[rec_act] or UNBOUNDED & {act, rec_act}):
            return inputs, opts
        with np.errstate(over="ignore", invalid="ignore"):
            y, _, cache = reference_forward(cell, inputs, opts)
        if not np.all(np.abs(y) < 1e3):
            continue  # diverging (unbounded gates)
        if _kink_distance(cell, cache, opts) >= KINK_MARGIN:
            return inputs, opts
    raise RuntimeError(f"could not draw a {cell} problem away from the activation kinks and not diverging")


def reference_forward(cell, inputs, opts):
    fwd = ref.gru_forward if cell == "gru" else ref.simple_rnn_forward
    return fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"], mask=inputs["mask"],
               rec_mask=inputs["rec_mask"], **opts)


def reference_run(cell, inputs, opts, Rs):
    """float64 reference: ({y, hT}, {dx, dh0, dW, dU, db}) for dL/d(outputs) = Rs."""
    y, hT, cache = reference_forward(cell, inputs, opts)
    bwd = ref.gru_backward if cell == "gru" else ref.simple_rnn_backward
    return dict(y=y, hT=hT), dict(zip(GRAD_NAMES, bwd(cache, *Rs)))


def kernel_forward(cell, inputs, opts, training=False, **extra):
    fwd = getattr(_core, f"{cell}_forward")
    return fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"], mask=inputs["mask"],
               rec_mask=inputs["rec_mask"], training=training, **opts, **extra)


def kernel_run(cell, inputs, opts, Rs, **extra):
    """The C++ kernels: ({y, hT}, {dx, dh0, dW, dU, db}) for dL/d(outputs) = Rs."""
    y, hT, cache = kernel_forward(cell, inputs, opts, training=True, **extra)
    grads = getattr(_core, f"{cell}_backward")(cache, *Rs)
    return dict(y=y, hT=hT), dict(zip(GRAD_NAMES, grads))


def loss_weights(rng, inputs, opts):
    """Random R for y and hT, in W's dtype."""
    B, H = inputs["h0"].shape
    T = inputs["x"].shape[1]
    y_shape = (B, T, H) if opts.get("return_sequences", True) else (B, H)
    dt = inputs["W"].dtype
    return [rng.standard_normal(s).astype(dt) for s in (y_shape, (B, H))]


def differentiable(inputs):
    """name -> array for every input the cell is differentiable in (dL/d name)."""
    names = {"dW": "W", "dU": "U", "db": "b", "dh0": "h0"}
    if inputs["x"].dtype.kind == "f":
        names["dx"] = "x"
    return {g: inputs[a] for g, a in names.items() if inputs[a] is not None}


def ctx(cell, what, shp, kw, seed):
    return f"{cell} {what} shape(B,T,I,H)={shp} options={kw} seed={seed}"


# ---------------------------------------------------------------------------
# Checks shared by the two cells' test files
# ---------------------------------------------------------------------------

def check_fd_elementwise(cell, inputs, opts, rng, context, run, forward):
    """Every element of every gradient `run` returns vs central differences of `forward`."""
    Rs = loss_weights(rng, inputs, opts)
    _, grads = run(cell, inputs, opts, Rs)
    numeric = {g: fd_gradient(lambda: forward(cell, inputs, opts)[:2], arr, Rs)
               for g, arr in differentiable(inputs).items()}
    if inputs["x"].dtype.kind != "f":
        assert grads["dx"] is None, context + ": dx must be None for ids"
    if inputs["b"] is None:
        assert grads["db"] is None, context + ": db must be None without a bias"
    return assert_all_close({g: grads[g] for g in numeric}, numeric, FD_TOL, rel_error, context)


def check_directional(cell, inputs, opts, rng, context):
    """A random directional derivative of the float64 kernel vs central differences (large shapes)."""
    from gradcheck import directional, fd_directional, log_errors
    Rs = loss_weights(rng, inputs, opts)
    _, grads = kernel_run(cell, inputs, opts, Rs)
    params = differentiable(inputs)
    dirs = {g: rng.standard_normal(a.shape) for g, a in params.items()}
    numeric = fd_directional(lambda: kernel_forward(cell, inputs, opts)[:2], list(params.values()),
                             list(dirs.values()), Rs)
    analytic = directional([grads[g] for g in params], list(dirs.values()))
    err = rel_error(analytic, numeric)
    log_errors(context, {"directional": err})
    assert err <= FD_TOL, f"{context}: analytic {analytic!r}, finite differences {numeric!r}, error {err:.3g}"


def compare_with_reference(cell, inputs, opts, rng, context, out_tol, grad_tol):
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(cell, inputs, opts, Rs)
    r_out, r_grads = reference_run(cell, inputs, opts, Rs)
    for name, a in {**k_out, **{k: v for k, v in k_grads.items() if v is not None}}.items():
        assert a.dtype == inputs["W"].dtype, f"{context}: {name} has dtype {a.dtype}"
    assert_all_close(k_out, r_out, out_tol, scaled_error, context + " (outputs)")
    assert_all_close(k_grads, r_grads, grad_tol, gradient_error(Rs), context + " (gradients)")


# A gradient whose every entry a saturated activation made tiny is compared on the scale
# of the loss weights instead of its own: float32 forms 1 - tanh(z)^2 from a rounded
# tanh(z) with relative error ~eps/(1 - tanh(z)^2), 0.6% at |z| = 7.6 (seen at B=T=I=H=1),
# which is float32's limit, not a kernel error.
SATURATION_FLOOR = 1e-3


def gradient_error(Rs):
    floor = SATURATION_FLOOR * max(float(np.max(np.abs(R))) for R in Rs)

    def measure(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)):
            return scaled_error(a, b)
        return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), floor)
    return measure


def assert_same_results(got, want, context):
    """Bitwise equality of two kernel_run results."""
    for part in (0, 1):
        for name, w in want[part].items():
            g = got[part][name]
            if w is None:
                assert g is None, f"{context}: {name}"
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"{context}: {name}")
