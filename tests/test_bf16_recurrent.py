"""The recurrent kernels (LSTM, GRU, SimpleRNN) at precision="bfloat16" against
the float64 reference computed with the kernels' operand rounding.

reference.rnn_rounding decides, as the sequence driver does, which products
take bfloat16 operands (once per product kind, from its whole shape); the
reference then runs in float64 on those rounded operands. Every test here runs
at the bfloat16 level in use in this process, and test_every_level runs the
whole file again in a subprocess for each level this CPU has, forced with
FUSEDLSTM_BF16 ("portable" everywhere, "avx512bf16" where cpuid says so; a
level the CPU lacks is skipped with the reason).

Tolerances. One bfloat16 product matches the reference to 1e-5 of max|b|
(test_bf16_gemm.py): only the float32 summation order differs. A recurrence
rounds values the kernel computed itself: h_{s-1} (each step's product input),
dZ (the backward's), the GRU's q = r ⊙ h. The kernel's float32 value and the
reference's float64 one differ by ~1e-7 relative, and now and then that lands
an element on the other side of a bfloat16 rounding boundary: that operand then
differs by one bfloat16 ulp (2^-8 relative), and over a sequence the difference
spreads through the later steps (each perturbed h_s perturbs more roundings).
So the checks are (figures measured before choosing, on this CPU at both
levels, 25 fresh seeds of every case below):
  * teacher-forced steps (the reference step fed the kernel's own float32 state,
    so both sides round the same float32 operands): each step within
    STEP_TOL = 1e-5 of max|ref|, the single-product rule (measured worst 4e-7
    over 225 sequences of 11 steps);
  * one step (T = 1: the forward's product operands are the caller's arrays,
    only dZ and the GRU's q are the kernel's own): >= 80% of all elements of the
    outputs and gradients within 1e-5 of their array's max|ref| (measured worst
    99.1% over 400 problems; against the unrounded float32 reference 2.5-29%,
    so a kernel that skipped or misplaced a rounding fails), and every array
    within LOOSE_TOL;
  * whole sequences (T = 11; masks, go_backwards, return_sequences=False, ids,
    rec_mask, no bias, initial states): >= 50% of the elements within 1e-5
    (measured worst 69.9% over 900 problems, median 100%; against the unrounded
    reference 1-46%) and every array within LOOSE_TOL = 3e-2 (measured worst
    4.3e-3; the bfloat16 result lies 2e-3 to 1e-2 from the float32 one, so the
    max error alone cannot tell rounded from unrounded over a sequence, the
    share of exact elements can). A batch row's flip perturbs only that row's
    states, which bounds how far the share can fall.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import bf16_level_or_skip, package_parent, require
from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import make_mask, scaled_error

LEVELS = ["portable", "avx512bf16"]
STEP_TOL = 1e-5
ELEMENT_TOL = 1e-5
ONE_STEP_FRACTION = 0.8
SEQ_FRACTION = 0.5
LOOSE_TOL = 3e-2

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
OUT_NAMES = {"lstm": ("y", "hT", "cT"), "gru": ("y", "hT"), "simple_rnn": ("y", "hT")}
GRAD_NAMES = {"lstm": ("dx", "dh0", "dc0", "dW", "dU", "db"), "gru": ("dx", "dh0", "dW", "dU", "db"),
              "simple_rnn": ("dx", "dh0", "dW", "dU", "db")}


@pytest.fixture(autouse=True)
def _needs_ml_dtypes():
    require("ml_dtypes")


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------
# Shapes: odd B, T, I; H not a multiple of 16. B17 H47 makes every per-step
# product pay for bfloat16 (SimpleRNN 17·47·47 >= 32768); B3 leaves the per-step
# products float32 while X·W and the weight gradients (K = T·B) go bfloat16.
MAIN = (17, 11, 37, 47)
SMALL_B = (3, 13, 37, 47)


def _case(cell, shp, **kw):
    name = f"{cell}-B{shp[0]}-T{shp[1]}-I{shp[2]}-H{shp[3]}" + "".join(f"-{k}={v}" for k, v in kw.items())
    return pytest.param((cell, shp, kw), id=name)


FORMS = [("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False}), ("simple_rnn", {})]
OPTIONS = [
    {},
    {"mask": True},
    {"mask": True, "go_backwards": True, "zero_output_for_mask": True},
    {"return_sequences": False, "mask": True},
    {"rec_mask": True},
    {"vocab": 23},
    {"vocab": 23, "mask": True, "rec_mask": True, "go_backwards": True},
    {"bias": False, "go_backwards": True},
]
CASES = [_case(cell, MAIN, **form, **opt) for cell, form in FORMS for opt in OPTIONS]
CASES += [_case(cell, SMALL_B, **form, mask=True) for cell, form in FORMS]


def problem(cell, shp, seed, *, vocab=None, bias=True, mask=False, rec_mask=False, reset_after=None, **opts):
    """(inputs, opts) of one float32 problem: <cell>_forward's arrays and keyword options."""
    rng = np.random.default_rng(seed)
    B, T, I, H = shp
    G = GATES[cell] * H
    f32 = np.float32
    if cell == "gru":
        opts["reset_after"] = True if reset_after is None else reset_after
    if vocab is None:
        x = rng.standard_normal((B, T, I)).astype(f32)
        W = (rng.standard_normal((I, G)) / np.sqrt(I)).astype(f32)
    else:
        x = rng.integers(-1, vocab, size=(B, T)).astype(np.int64)
        W = rng.standard_normal((vocab, G)).astype(f32)
    bshape = (2, G) if cell == "gru" and opts["reset_after"] else (G,)
    inputs = dict(
        x=x, W=W, U=(rng.standard_normal((H, G)) / np.sqrt(H)).astype(f32),
        b=(0.1 * rng.standard_normal(bshape)).astype(f32) if bias else None,
        h0=(0.5 * rng.standard_normal((B, H))).astype(f32),
        c0=(0.5 * rng.standard_normal((B, H))).astype(f32) if cell == "lstm" else None,
        mask=make_mask(rng, B, T) if mask else None,
        rec_mask=((rng.random((B, H)) < 0.75) / 0.75).astype(f32) if rec_mask else None,
    )
    y_shape = (B, T, H) if opts.get("return_sequences", True) else (B, H)
    n_state = 2 if cell == "lstm" else 1
    Rs = [rng.standard_normal(y_shape).astype(f32)] + [rng.standard_normal((B, H)).astype(f32)
                                                        for _ in range(n_state)]
    return inputs, opts, Rs


def _state_args(cell, inputs):
    return (inputs["h0"], inputs["c0"]) if cell == "lstm" else (inputs["h0"],)


def kernel_run(cell, inputs, opts, Rs, precision="bfloat16"):
    """{name: array} of the kernel's forward (training) and backward."""
    fwd = getattr(_core, f"{cell}_forward")
    out = fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], *_state_args(cell, inputs), mask=inputs["mask"],
              rec_mask=inputs["rec_mask"], training=True, precision=precision, **opts)
    cache = out[-1]
    assert cache.precision == precision
    grads = getattr(_core, f"{cell}_backward")(cache, *Rs)
    return dict(zip(OUT_NAMES[cell], out[:-1])), dict(zip(GRAD_NAMES[cell], grads))


def reference_run(cell, inputs, opts, Rs, precision="bfloat16"):
    fwd = getattr(ref, f"{cell}_forward")
    out = fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], *_state_args(cell, inputs), mask=inputs["mask"],
              rec_mask=inputs["rec_mask"], precision=precision, **opts)
    grads = getattr(ref, f"{cell}_backward")(out[-1], *Rs)
    return dict(zip(OUT_NAMES[cell], out[:-1])), dict(zip(GRAD_NAMES[cell], grads))


def errors(got, want):
    """({name: max|a-b|/max|b|}, fraction of all elements within ELEMENT_TOL of their array's max|b|)."""
    errs, within = {}, []
    for part_got, part_want in zip(got, want):
        for name, w in part_want.items():
            g = part_got[name]
            assert (g is None) == (w is None), f"{name}: got {type(g)}, want {type(w)}"
            if w is None:
                continue
            assert g.dtype == np.float32 and g.shape == w.shape, f"{name}: {g.dtype} {g.shape}, want {w.shape}"
            errs[name] = scaled_error(g, w)
            scale = float(np.max(np.abs(w))) or 1.0
            within.append((np.abs(g.astype(np.float64) - w) <= ELEMENT_TOL * scale).ravel())
    return errs, float(np.concatenate(within).mean())


def check(cell, inputs, opts, Rs, fraction, context):
    got = kernel_run(cell, inputs, opts, Rs)
    errs, frac = errors(got, reference_run(cell, inputs, opts, Rs))
    bad = {n: e for n, e in errs.items() if e > LOOSE_TOL}
    assert not bad, f"{context}: errors above {LOOSE_TOL}: {bad} (all: {errs})"
    if frac < fraction:
        _, frac32 = errors(got, reference_run(cell, inputs, opts, Rs, precision="float32"))
        pytest.fail(f"{context}: only {frac:.1%} of the elements are within {ELEMENT_TOL} of the rounded "
                    f"reference (need {fraction:.0%}; {frac32:.1%} are within it of the unrounded one); "
                    f"errors {errs}")


def level_context(seed):
    return f"bf16 level {_core.build_info()['bf16_level']} seed={seed}"


# ---------------------------------------------------------------------------
# Whole sequences, one step, teacher-forced steps
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_sequence_matches_rounded_reference(case, seed):
    cell, shp, kw = case
    inputs, opts, Rs = problem(cell, shp, seed, **kw)
    check(cell, inputs, opts, Rs, SEQ_FRACTION, f"{level_context(seed)}: {cell} {shp} {kw}")


# (5, 1, 230, 29): X·W and dZ·Wᵀ pay for bfloat16 (M·N·K >= 5·29·230), h·U, dZ·Uᵀ
# (<= 5·116·29) and the weight gradients (K = T·B = 5) stay float32: the rule
# is applied per product kind.
MIXED = (5, 1, 230, 29)
ONE_STEP = [_case(cell, shp, **form, **opt) for cell, form in FORMS
            for shp, opt in [((17, 1, 37, 47), {}), ((17, 1, 37, 47), {"rec_mask": True}),
                             ((17, 1, 37, 47), {"vocab": 23}), (MIXED, {})]]


@pytest.mark.parametrize("case", ONE_STEP)
def test_one_step_matches_rounded_reference(case, seed):
    cell, shp, kw = case
    inputs, opts, Rs = problem(cell, shp, seed, **kw)
    check(cell, inputs, opts, Rs, ONE_STEP_FRACTION, f"{level_context(seed)}: {cell} {shp} {kw}")


def _segments(cell, H, opts):
    if cell == "gru":
        return [3 * H] if opts["reset_after"] else [2 * H, H]
    return [GATES[cell] * H]


@pytest.mark.parametrize("cell,form", [("lstm", {}), ("gru", {"reset_after": True}), ("simple_rnn", {})])
@pytest.mark.parametrize("kw", [{}, {"rec_mask": True}, {"go_backwards": True}], ids=["plain", "rec_mask", "back"])
def test_teacher_forced_steps(cell, form, kw, seed):
    """Each step of the kernel's sequence against the reference step fed the
    kernel's own state: the same float32 operands are rounded on both sides.
    (The GRU without reset_after rounds q = r ⊙ h, r computed on each side, so
    it has no teacher-forced form; the checks above cover it.)"""
    B, T, I, H = MAIN
    inputs, opts, _ = problem(cell, MAIN, seed, **form, **kw)
    rd = ref.rnn_rounding("bfloat16", B, T, I, H, _segments(cell, H, opts))
    W, U = inputs["W"].astype(np.float64), inputs["U"].astype(np.float64)
    b = inputs["b"].astype(np.float64)
    r = inputs["rec_mask"]
    back = opts.get("go_backwards", False)
    x = inputs["x"][:, ::-1] if back else inputs["x"]  # processing order
    context = f"{level_context(seed)}: {cell} {form} {kw}"
    if cell == "lstm":
        # The kernel's c_s is not an output: chain one-step calls (B, I, H keep
        # every product's decision that of the whole sequence).
        h, c = inputs["h0"], inputs["c0"]
        for s in range(T):
            y, hT, cT, _ = _core.lstm_forward(x[:, s:s + 1], inputs["W"], inputs["U"], inputs["b"], h, c,
                                             rec_mask=r, precision="bfloat16")
            want_h, want_c, _ = ref.lstm_step_forward(x[:, s].astype(np.float64), h.astype(np.float64),
                                                      c.astype(np.float64), W, U, b, r, rounding=rd)
            err = max(scaled_error(hT, want_h), scaled_error(cT, want_c))
            assert err <= STEP_TOL, f"{context}: step {s}: {err:.3g}"
            h, c = hT, cT
        return
    fwd = getattr(_core, f"{cell}_forward")
    y = fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"], rec_mask=r, precision="bfloat16",
            **opts)[0]
    for s in range(T):
        h_prev = (inputs["h0"] if s == 0 else y[:, s - 1]).astype(np.float64)
        if cell == "gru":
            want, _ = ref.gru_step_forward(x[:, s].astype(np.float64), h_prev, W, U, b, r, rounding=rd)
        else:
            want, _ = ref.simple_rnn_step_forward(x[:, s].astype(np.float64), h_prev, W, U, b, r, rounding=rd)
        err = scaled_error(y[:, s], want)
        assert err <= STEP_TOL, f"{context}: step {s}: {err:.3g}"


# ---------------------------------------------------------------------------
# The size rule, threads, the float32 default, the lookup path
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell,form", FORMS, ids=[f"{c}{f}" for c, f in FORMS])
def test_products_below_the_rule_are_float32_bit_for_bit(cell, form, seed):
    shp = (3, 5, 7, 9)
    B, T, I, H = shp
    inputs, opts, Rs = problem(cell, shp, seed, mask=True, **form)
    rd = ref.rnn_rounding("bfloat16", B, T, I, H, _segments(cell, H, opts))
    assert all(f is rd["xw"] for f in rd.values()) and not ref.bf16_pays(B * T, GATES[cell] * H, I), (
        "the shape must be below the rule for every product")
    got = kernel_run(cell, inputs, opts, Rs)
    want = kernel_run(cell, inputs, opts, Rs, precision="float32")
    for part_got, part_want in zip(got, want):
        for name, w in part_want.items():
            if w is not None:
                np.testing.assert_array_equal(part_got[name], w, err_msg=f"{cell} {form}: {name}")


@pytest.mark.parametrize("cell,form", FORMS, ids=[f"{c}{f}" for c, f in FORMS])
def test_thread_count_does_not_change_a_bit(cell, form, seed):
    inputs, opts, Rs = problem(cell, (40, 9, 37, 47), seed, mask=True, rec_mask=True, **form)
    saved = _core.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            _core.set_num_threads(n)
            results.append(kernel_run(cell, inputs, opts, Rs))
    finally:
        _core.set_num_threads(saved)
    for other in results[1:]:
        for part_got, part_want in zip(other, results[0]):
            for name, w in part_want.items():
                if w is not None:
                    np.testing.assert_array_equal(part_got[name], w, err_msg=f"{cell} {form}: {name}")


def test_float32_is_the_default_and_backward_follows_the_forward(seed):
    inputs, opts, Rs = problem("lstm", MAIN, seed, mask=True)
    args = (inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"], inputs["c0"])
    default = _core.lstm_forward(*args, mask=inputs["mask"], training=True)
    explicit = _core.lstm_forward(*args, mask=inputs["mask"], training=True, precision="float32")
    assert default[3].precision == "float32"
    for a, b in zip(default[:3] + _core.lstm_backward(default[3], *Rs), explicit[:3] + _core.lstm_backward(
            explicit[3], *Rs, precision="float32")):
        if b is not None:
            np.testing.assert_array_equal(a, b)
    bf = _core.lstm_forward(*args, mask=inputs["mask"], training=True, precision="bfloat16")
    assert bf[3].precision == "bfloat16" and "precision=bfloat16" in repr(bf[3])
    follows = _core.lstm_backward(bf[3], *Rs)
    chosen = _core.lstm_backward(bf[3], *Rs, precision="bfloat16")
    for a, b in zip(follows, chosen):
        if b is not None:
            np.testing.assert_array_equal(a, b)
    # precision= on the backward is honoured: float32 products give other gradients.
    f32 = _core.lstm_backward(bf[3], *Rs, precision="float32")
    assert not np.array_equal(f32[4], follows[4])


@pytest.mark.parametrize("cell,form", FORMS, ids=[f"{c}{f}" for c, f in FORMS])
def test_inference_in_chunks_matches_training_bit_for_bit(cell, form, seed):
    """Inference projects x·W a few MiB of steps at a time (here 3 chunks), training
    all at once: the level is chosen once for all T·B rows, so both agree."""
    inputs, opts, _ = problem(cell, (64, 20, 100, 512), seed, mask=True, **form)
    fwd = getattr(_core, f"{cell}_forward")
    args = (inputs["x"], inputs["W"], inputs["U"], inputs["b"], *_state_args(cell, inputs))
    infer = fwd(*args, mask=inputs["mask"], precision="bfloat16", **opts)
    train = fwd(*args, mask=inputs["mask"], precision="bfloat16", training=True, **opts)
    for a, b in zip(infer[:-1], train[:-1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_token_ids_are_looked_up_exactly(cell, seed):
    """Ids (and one-hot float x, onehot='auto') read W's rows: no product, so
    bfloat16 leaves the forward's first step input exact; the table gradient is
    a float32 scatter-add of dZ rows."""
    shp = MAIN
    inputs, opts, Rs = problem(cell, shp, seed, vocab=23)
    ids = inputs["x"]
    got = kernel_run(cell, inputs, opts, Rs)
    onehot = dict(inputs, x=ref.ids_to_onehot(ids, 23).astype(np.float32))
    dense = kernel_run(cell, onehot, opts, Rs)
    for name in OUT_NAMES[cell]:
        np.testing.assert_array_equal(dense[0][name], got[0][name], err_msg=name)
    for name in GRAD_NAMES[cell]:
        if name != "dx":
            np.testing.assert_array_equal(dense[1][name], got[1][name], err_msg=name)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def _call(cell, inputs, **kw):
    return getattr(_core, f"{cell}_forward")(inputs["x"], inputs["W"], inputs["U"], inputs["b"],
                                             *_state_args(cell, inputs), **kw)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_bfloat16_refuses_float64(cell, seed):
    inputs, _, _ = problem(cell, (3, 4, 5, 6), seed)
    f64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else v)
           for k, v in inputs.items()}
    with pytest.raises(TypeError, match=rf"{cell}_forward: precision='bfloat16' needs float32 arrays, got float64"):
        _call(cell, f64, precision="bfloat16")
    cache = _call(cell, f64, training=True)[-1]
    with pytest.raises(TypeError, match=rf"{cell}_backward: precision='bfloat16' needs float32 arrays, got float64"):
        getattr(_core, f"{cell}_backward")(cache, None, precision="bfloat16")


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("bad", ["bf16", "float16", "mixed_bfloat16", "", "BFLOAT16"])
def test_bad_precision_is_named(cell, bad):
    inputs, _, _ = problem(cell, (3, 4, 5, 6), 0)
    msg = rf"{cell}_forward: precision must be 'float32' or 'bfloat16', got '{bad}'"
    with pytest.raises(ValueError, match=msg):
        _call(cell, inputs, precision=bad)
    cache = _call(cell, inputs, training=True)[-1]
    with pytest.raises(ValueError, match=msg.replace("forward", "backward")):
        getattr(_core, f"{cell}_backward")(cache, None, precision=bad)
    with pytest.raises(TypeError, match=rf"{cell}_backward: precision must be None \(the forward's\), "
                                        r"'float32' or 'bfloat16', got int"):
        getattr(_core, f"{cell}_backward")(cache, None, precision=16)


# ---------------------------------------------------------------------------
# Every bfloat16 level this CPU has: this file again, in a subprocess
# ---------------------------------------------------------------------------

@pytest.fixture(params=LEVELS)
def level(request):
    return bf16_level_or_skip(request.param)


def test_forced_level_is_in_use():
    forced = os.environ.get("FUSEDLSTM_BF16")
    if not forced:
        pytest.skip("FUSEDLSTM_BF16 is not set (test_every_level sets it)")
    assert _core.build_info()["bf16_level"] == forced


def test_every_level(level, seed):
    if os.environ.get("FUSEDLSTM_BF16"):
        pytest.skip("already the run of one forced level")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FUSEDLSTM_BF16=level, FUSEDLSTM_TEST_SEED=str(seed))
    env["PYTHONPATH"] = os.pathsep.join([package_parent(), here, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", __file__],
                          cwd=os.path.dirname(here), env=env, capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"FUSEDLSTM_BF16={level} FUSEDLSTM_TEST_SEED={seed}:\n{tail}"
    assert " passed" in proc.stdout and "failed" not in proc.stdout, tail
