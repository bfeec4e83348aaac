"""Error measures, finite differences and random LSTM problems shared by the kernel tests.

The scalar loss behind every gradient check is L = Σ_k Σ out_k ⊙ R_k for fixed
random R_k, so dL/d(out_k) = R_k is what the backward pass is fed.

Finite differences contract the *difference* of the outputs with R
(Σ (out⁺ - out⁻) ⊙ R / 2h) instead of subtracting two large sums L⁺ - L⁻: the
outputs differ by ~h·grad element by element, so the rounding error of the
check stays near ε·|out|/h per element instead of ε·Σ|L terms|/h.
"""

import json
import os

import numpy as np

from fusedlstm import _core
from fusedlstm import reference as ref

FD_STEP = 1e-6


def rel_error(a, b):
    """max |a-b| / max(1, |a|, |b|) elementwise (the float64 gradcheck measure)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))))


def scaled_error(a, b):
    """max |a-b| / max |b| over the array (float32 kernel vs float64 reference)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    if scale == 0.0:
        return diff  # an all-zero reference: report the absolute error
    return diff / scale


def log_errors(context, errors):
    """FUSEDLSTM_ERRLOG=<file>: append every measured error (to find the margins)."""
    path = os.environ.get("FUSEDLSTM_ERRLOG")
    if path and errors:
        with open(path, "a") as fh:
            fh.write(json.dumps({"context": context, "errors": errors}) + "\n")


def assert_all_close(got, want, tol, measure, context):
    """Compare dicts name -> array with one measure; one message lists every failure.

    `got`/`want` map names ("y", "dW", ...) to arrays (None must match None).
    """
    failures = []
    errors = {}
    for name, w in want.items():
        g = got[name]
        if w is None or g is None:
            if (w is None) != (g is None):
                failures.append(f"{name}: got {type(g).__name__}, expected "
                                f"{'None' if w is None else 'an array'}")
            continue
        g = np.asarray(g)
        w = np.asarray(w)
        if g.shape != w.shape:
            failures.append(f"{name}: shape {g.shape}, expected {w.shape}")
            continue
        err = measure(g, w)
        errors[name] = err
        if not err <= tol:  # NaN fails too
            where = np.unravel_index(np.argmax(np.abs(g.astype(np.float64) - w)), w.shape) \
                if w.size else ()
            failures.append(f"{name}: error {err:.3g} > {tol:g} (worst at {tuple(int(i) for i in where)}: "
                            f"got {g[where]!r}, expected {w[where]!r})")
    log_errors(context, errors)
    if failures:
        raise AssertionError(f"{context}\n  " + "\n  ".join(failures))
    return errors


def contract(outs_plus, outs_minus, Rs, h):
    """Σ_k Σ (out⁺_k - out⁻_k) ⊙ R_k / 2h."""
    total = 0.0
    for op, om, r in zip(outs_plus, outs_minus, Rs):
        d = np.asarray(op, dtype=np.float64) - np.asarray(om, dtype=np.float64)
        total += float(np.sum(d * r))
    return total / (2.0 * h)


def fd_gradient(f, arr, Rs, h=FD_STEP):
    """Central-difference dL/d(arr), every element; `f()` returns the outputs.

    arr is perturbed in place (and restored), so f must read it at each call.
    """
    grad = np.zeros(arr.shape)
    flat = arr.reshape(-1)  # a view: arr must be contiguous
    if not np.shares_memory(flat, arr):
        raise ValueError("fd_gradient needs a contiguous array")
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        plus = f()
        step = flat[k]
        flat[k] = old - h
        minus = f()
        step -= flat[k]  # the step actually taken, after rounding
        flat[k] = old
        grad.reshape(-1)[k] = contract(plus, minus, Rs, step / 2.0)
    return grad


def fd_directional(f, arrays, directions, Rs, h=FD_STEP):
    """Central-difference derivative of L along (d_1, d_2, ...) over arrays at once."""
    originals = [a.copy() for a in arrays]
    try:
        for a, a0, d in zip(arrays, originals, directions):
            a[...] = a0 + h * d
        plus = f()
        for a, a0, d in zip(arrays, originals, directions):
            a[...] = a0 - h * d
        minus = f()
    finally:
        for a, a0 in zip(arrays, originals):
            a[...] = a0
    return contract(plus, minus, Rs, h)


def directional(grads, directions):
    """Σ_k grads_k · d_k for analytic gradients."""
    return float(sum(np.sum(np.asarray(g, dtype=np.float64) * d) for g, d in zip(grads, directions)))


# ---------------------------------------------------------------------------
# Random LSTM problems
#
# A problem is (inputs, opts): inputs are the arrays lstm_forward takes, opts
# its keyword options. Weights are scaled like Glorot/orthogonal inits so that
# 200 steps neither explode nor vanish. Piecewise-linear activations have
# kinks (hard sigmoids at ±3 / ±2.5, relu at 0) where neither a finite
# difference nor a float32-vs-float64 comparison is meaningful, so problems are
# redrawn until every pre-activation is at least KINK_MARGIN away from one.
# ---------------------------------------------------------------------------

GRAD_NAMES = ("dx", "dh0", "dc0", "dW", "dU", "db")  # lstm_backward's results, in order
KINK_MARGIN = 1e-4
KINKS = {"tanh": (), "sigmoid": (), "linear": (), "relu": (0.0,),
         "hard_sigmoid": (-3.0, 3.0), "hard_sigmoid_k2": (-2.5, 2.5)}


def make_mask(rng, B, T):
    """(B, T) bool: random, with rows that are all masked, first-step masked,
    last-step masked, cycling over the batch (row 0 is all masked when B > 1)."""
    m = rng.random((B, T)) < 0.7
    for b in range(B):
        kind = b % 4 if B > 1 else 3
        if kind == 0:
            m[b] = False
        elif kind == 1:
            m[b, 0] = False
        elif kind == 2:
            m[b, -1] = False
    return m


def _kink_distance(cache, activation, recurrent_activation):
    """Smallest distance of a pre-activation (z, or c for `activation`) to a kink.

    c = f⊙c_prev + i⊙g is exempt from relu's kink at 0 when its two terms do not
    have opposite signs: then c keeps the sign of its terms, and those cannot flip
    without z itself crossing a kink (checked here too). Without this exemption a
    cell decaying towards 0 (g = 0, c = f⊙c_prev) would count as "near the kink".
    """
    H = cache["H"]
    worst = np.inf
    for _, m_t, s in cache["steps"]:
        rows = m_t[:, 0]
        z, c = s["z"][rows], s["c"][rows]
        cancelling = ((s["f"] * s["c_prev"]) * (s["i"] * s["g"]) < 0)[rows]
        pieces = [(z[:, :2 * H], recurrent_activation, None), (z[:, 3 * H:], recurrent_activation, None),
                  (z[:, 2 * H:3 * H], activation, None), (c, activation, cancelling)]
        for vals, act, at_risk_at_zero in pieces:
            for k in KINKS[act]:
                v = vals[at_risk_at_zero] if (k == 0.0 and at_risk_at_zero is not None) else vals
                if v.size:
                    worst = min(worst, float(np.min(np.abs(v - k))))
    return worst


def lstm_problem(rng, B, T, I, H, dtype=np.float64, *, vocab=None, bias=True, mask=False,
                 rec_mask=False, x_scale=1.0, **opts):
    """(inputs, opts) for lstm_forward; `vocab` makes x (B, T) ids in [-1, vocab)."""
    act = opts.get("activation", "tanh")
    rec_act = opts.get("recurrent_activation", "sigmoid")
    for _ in range(50):
        if vocab is None:
            x = (x_scale * rng.standard_normal((B, T, I))).astype(dtype)
            W = (rng.standard_normal((I, 4 * H)) / np.sqrt(I)).astype(dtype)
        else:
            x = rng.integers(-1, vocab, size=(B, T)).astype(np.int64)
            W = (x_scale * rng.standard_normal((vocab, 4 * H))).astype(dtype)
        inputs = dict(
            x=x, W=W,
            U=(rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype),
            b=(0.1 * rng.standard_normal(4 * H)).astype(dtype) if bias else None,
            h0=(0.5 * rng.standard_normal((B, H))).astype(dtype),
            c0=(0.5 * rng.standard_normal((B, H))).astype(dtype),
            mask=make_mask(rng, B, T) if mask else None,
            rec_mask=((rng.random((B, H)) < 0.75) / 0.75).astype(dtype) if rec_mask else None,
        )
        if not (KINKS[act] or KINKS[rec_act]):
            return inputs, opts
        cache = reference_forward(inputs, opts)[3]
        if _kink_distance(cache, act, rec_act) >= KINK_MARGIN:
            return inputs, opts
    raise RuntimeError("could not draw an LSTM problem away from the activation kinks")


def reference_forward(inputs, opts):
    return ref.lstm_forward(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"],
                            inputs["c0"], mask=inputs["mask"], rec_mask=inputs["rec_mask"], **opts)


def reference_run(inputs, opts, Rs):
    """float64 reference: ({y, hT, cT}, {dx, dh0, dc0, dW, dU, db}) for dL/d(outputs) = Rs."""
    y, hT, cT, cache = reference_forward(inputs, opts)
    grads = ref.lstm_backward(cache, *Rs)
    return dict(y=y, hT=hT, cT=cT), dict(zip(GRAD_NAMES, grads))


def kernel_forward(inputs, opts, training=False, **extra):
    return _core.lstm_forward(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"],
                              inputs["c0"], mask=inputs["mask"], rec_mask=inputs["rec_mask"],
                              training=training, **opts, **extra)


def kernel_run(inputs, opts, Rs, **extra):
    """The C++ kernels: ({y, hT, cT}, {dx, dh0, dc0, dW, dU, db}) for dL/d(outputs) = Rs."""
    y, hT, cT, cache = kernel_forward(inputs, opts, training=True, **extra)
    grads = _core.lstm_backward(cache, *Rs)
    return dict(y=y, hT=hT, cT=cT), dict(zip(GRAD_NAMES, grads))


def loss_weights(rng, inputs, opts):
    """Random R for y, hT, cT (the upstream gradients of the test loss), in W's dtype."""
    B, H = inputs["h0"].shape
    T = inputs["x"].shape[1]
    y_shape = (B, T, H) if opts.get("return_sequences", True) else (B, H)
    dt = inputs["W"].dtype
    return [rng.standard_normal(s).astype(dt) for s in (y_shape, (B, H), (B, H))]


def differentiable(inputs):
    """name -> array for every input the LSTM is differentiable in (dL/d name)."""
    names = {"dW": "W", "dU": "U", "db": "b", "dh0": "h0", "dc0": "c0"}
    if inputs["x"].dtype.kind == "f":
        names["dx"] = "x"
    return {g: inputs[a] for g, a in names.items() if inputs[a] is not None}
