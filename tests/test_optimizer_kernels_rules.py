"""Keras 3.15.1 optimizer steps (issue 25): the kernels against the float64 reference.

optimizer_steps.FlatStep (one _core.<rule>_step call per step over a flat buffer cut
into variables by offsets) against reference.KerasOptimizer (Keras's apply() on a
list of variables, float64 arithmetic). Before every step the reference takes the
kernel's state, so each step is measured on its own: float32 results must match to
rounding at the scale of their operands, max|got - want| / max(|want|, |before|,
|want - before|) <= 1e-6 per buffer; float64 results to 1e-12. Variables have odd
sizes (scalar tails of every vector width), one is longer than a 64Ki-element run,
and the gradients contain exact zeros.

The float32 cases also run under every other ISA level this CPU has, each level
in a subprocess (the kernel table is chosen at import).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from fusedlstm.optimizer_steps import FlatStep

TOL = {np.float32: 1e-6, np.float64: 1e-12}
STEPS = 6
SHAPES = {
    "one": [(1,)],
    "small": [(7,), (3, 5), (1,)],
    "odd": [(33, 31), (17,), (2, 3, 5), (1,)],
    "large": [(100_003,), (9,)],  # two runs of the first variable
}

# (id, rule, hyperparameters (all of them, as the reference takes them), options)
ADAM = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)
RULE_CASES = [
    ("adam", "adam", ADAM, {}),
    ("adam-amsgrad", "adam", dict(ADAM, amsgrad=True), {}),
    ("adam-b0.8-0.95-eps1e-3", "adam", dict(beta_1=0.8, beta_2=0.95, epsilon=1e-3, amsgrad=False), {}),
    ("adamw", "adam", ADAM, dict(weight_decay=0.004)),
    ("adamw-amsgrad", "adam", dict(ADAM, amsgrad=True), dict(weight_decay=0.1)),
    ("nadam", "nadam", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7), {}),
    ("nadam-b0.7-0.9", "nadam", dict(beta_1=0.7, beta_2=0.9, epsilon=1e-4), {}),
    ("adamax", "adamax", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7), {}),
    ("adamax-b0.5-0.8", "adamax", dict(beta_1=0.5, beta_2=0.8, epsilon=1e-3), {}),
    ("adagrad", "adagrad", dict(initial_accumulator_value=0.1, epsilon=1e-7), {}),
    ("adagrad-acc0", "adagrad", dict(initial_accumulator_value=0.0, epsilon=1e-3), {}),
    ("adadelta", "adadelta", dict(rho=0.95, epsilon=1e-7), {}),
    ("adadelta-rho0.5", "adadelta", dict(rho=0.5, epsilon=1e-3), {}),
    ("lion", "lion", dict(beta_1=0.9, beta_2=0.99), {}),
    ("lion-b1-0.5", "lion", dict(beta_1=1.0, beta_2=0.5), {}),
    ("ftrl", "ftrl", dict(learning_rate_power=-0.5, initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                          l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0, beta=0.0), {}),
    ("ftrl-regularized", "ftrl", dict(learning_rate_power=-0.7, initial_accumulator_value=0.2,
                                      l1_regularization_strength=0.001, l2_regularization_strength=0.02,
                                      l2_shrinkage_regularization_strength=0.03, beta=0.5), {}),
    ("ftrl-power0", "ftrl", dict(learning_rate_power=0.0, initial_accumulator_value=0.1,
                                 l1_regularization_strength=0.0, l2_regularization_strength=0.1,
                                 l2_shrinkage_regularization_strength=0.0, beta=0.0), {}),
    ("rmsprop", "rmsprop", dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False), {}),
    ("rmsprop-momentum", "rmsprop", dict(rho=0.9, momentum=0.9, epsilon=1e-7, centered=False), {}),
    ("rmsprop-centered", "rmsprop", dict(rho=0.8, momentum=0.0, epsilon=1e-3, centered=True), {}),
    ("rmsprop-momentum-centered", "rmsprop", dict(rho=0.9, momentum=0.5, epsilon=1e-3, centered=True), {}),
    ("sgd", "sgd", dict(momentum=0.0, nesterov=False), {}),
    ("sgd-momentum", "sgd", dict(momentum=0.9, nesterov=False), {}),
    ("sgd-nesterov", "sgd", dict(momentum=0.9, nesterov=True), {}),
    ("sgd-weight-decay", "sgd", dict(momentum=0.0, nesterov=False), dict(weight_decay=0.05)),
]
# BaseOptimizer's options, over a few rules.
OPTION_CASES = [
    ("clipnorm", "adam", ADAM, dict(clipnorm=0.5)),
    ("clipnorm-large", "rmsprop", dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False), dict(clipnorm=1e3)),
    ("global-clipnorm", "adam", ADAM, dict(global_clipnorm=0.7)),
    ("global-clipnorm-large", "sgd", dict(momentum=0.9, nesterov=True), dict(global_clipnorm=1e4)),
    ("clipvalue", "nadam", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7), dict(clipvalue=0.05)),
    ("decay-excluded", "adam", ADAM, dict(weight_decay=0.2, exclude_from_weight_decay=(0,))),
    ("ema", "adam", ADAM, dict(use_ema=True, ema_momentum=0.9)),
    ("ema-overwrite", "lion", dict(beta_1=0.9, beta_2=0.99), dict(use_ema=True, ema_momentum=0.8,
                                                                   ema_overwrite_frequency=2)),
    ("accumulate", "adam", ADAM, dict(gradient_accumulation_steps=2)),
    ("accumulate-clipnorm-ema", "nadam", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7),
     dict(gradient_accumulation_steps=3, clipnorm=0.3, use_ema=True, ema_overwrite_frequency=1)),
    ("accumulate-global-decay", "adagrad", dict(initial_accumulator_value=0.1, epsilon=1e-7),
     dict(gradient_accumulation_steps=2, global_clipnorm=0.5, weight_decay=0.01)),
    ("everything", "ftrl", dict(learning_rate_power=-0.5, initial_accumulator_value=0.1,
                                l1_regularization_strength=0.001, l2_regularization_strength=0.01,
                                l2_shrinkage_regularization_strength=0.0, beta=0.1),
     dict(weight_decay=0.01, exclude_from_weight_decay=(1,), clipvalue=0.1, use_ema=True,
          ema_overwrite_frequency=3, gradient_accumulation_steps=2)),
]


def _flat_options(shapes, options):
    """FlatStep's keyword arguments for the reference's options."""
    kw = dict(options)
    excluded = kw.pop("exclude_from_weight_decay", ())
    sizes = [int(np.prod(s)) for s in shapes]
    kw["segments"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if "weight_decay" in kw:
        kw["decay_mask"] = np.array([k not in excluded for k in range(len(shapes))])
    return kw


def _split(flat, shapes):
    out, a = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(flat[a:a + n].reshape(s))
        a += n
    return out


def _flat(arrays):
    return np.concatenate([np.asarray(a).ravel() for a in arrays])


def _sync(opt, kernel, w_flat, shapes):
    """The reference takes the kernel's state (each step is compared on its own)."""
    for k, s in enumerate(opt.slots):
        for name in s:
            s[name] = _split(kernel.slots[name], shapes)[k].copy()
    if opt.accumulators is not None:
        opt.accumulators = [a.copy() for a in _split(kernel.accumulator, shapes)]
    if opt.averages is not None:
        opt.averages = [a.copy() for a in _split(kernel.ema, shapes)]
    opt.u_product = kernel.u_product
    assert opt.iterations == kernel.iterations
    return [a.copy() for a in _split(w_flat, shapes)]


def _error(got, want, before, operand=None):
    got, want, before = (np.asarray(a, np.float64) for a in (got, want, before))
    if got.size == 0:
        return 0.0
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(np.max(np.abs(want)), np.max(np.abs(before)), np.max(np.abs(want - before)), 1e-30)
    if operand is not None:
        scale = max(scale, float(np.max(np.abs(operand))))
    return float(np.max(np.abs(got - want))) / scale


def _ftrl_operands(opt, before, want, lr):
    """Ftrl's updates subtract large terms: z += ĝ - ((s'^p - s^p)/lr)·w rounds at the scale
    of s'^p/lr·w, and w = (clip(z) - z)/q at that of z/q."""
    if opt.rule != "ftrl":
        return {}
    h = opt.hyper
    p = -h["learning_rate_power"]
    s_new = np.asarray(want["accumulator"], np.float64)
    q = s_new ** p / lr + 2 * (h["l2_regularization_strength"] + h["beta"] / (2 * lr))
    return {"linear": s_new ** p / lr * np.asarray(before["w"], np.float64),
            "w": np.asarray(want["linear"], np.float64) / q}


def _lion_sign_ties(opt, kernel, g, shapes, dtype):
    """Elements where Lion's c = β1·m + (1-β1)·g is within float32 rounding of 0: there the
    sign (hence w) may differ between a float32 kernel and a float64 reference."""
    if opt.rule != "lion" or dtype != np.float32:
        return None
    b1 = opt.hyper["beta_1"]
    m = np.asarray(kernel.slots["m"], np.float64)
    gg = np.asarray(g, np.float64)
    c = b1 * m + (1 - b1) * gg
    return (np.abs(c) <= 1e-6 * (np.abs(b1 * m) + np.abs((1 - b1) * gg))) & (c != 0)


def run_case(rule, hyper, options, shapes, dtype, rng, context):
    dtype = np.dtype(dtype).type
    opt = ref.KerasOptimizer(rule, shapes, dtype, learning_rate=0.0, **options, **hyper)
    flat_hyper = {k: v for k, v in hyper.items()}
    kernel = FlatStep(rule, sum(int(np.prod(s)) for s in shapes), dtype, **_flat_options(shapes, options),
                      **flat_hyper)
    w = _flat([rng.standard_normal(s) for s in shapes]).astype(dtype)
    tol = TOL[dtype]
    worst = 0.0
    for step in range(STEPS):
        lr = [0.01, 0.1, 0.003][step % 3]  # a learning rate that changes, as a schedule's does
        opt.learning_rate = lr
        grads = [(rng.standard_normal(s) * rng.choice([0.01, 0.3, 2.0])).astype(dtype) for s in shapes]
        for gr in grads:
            gr.reshape(-1)[1::5] = 0.0
        g = _flat(grads)
        g_before = g.copy()
        ties = _lion_sign_ties(opt, kernel, g, shapes, dtype) if not kernel.accumulation_steps else None
        before = {"w": w.copy(), **{k: v.copy() for k, v in kernel.slots.items() if v is not None}}
        if kernel.accumulator is not None:
            before["acc"] = kernel.accumulator.copy()
        if kernel.ema is not None:
            before["ema"] = kernel.ema.copy()
        ws = _sync(opt, kernel, w, shapes)
        want_w = _flat(opt.apply(grads, ws))
        kernel.apply(w, g, lr)
        np.testing.assert_array_equal(g, g_before, err_msg=f"{context}: the step must not change g")
        got = {"w": w, **{k: v for k, v in kernel.slots.items() if v is not None}}
        want = {"w": want_w, **{name: _flat([s[name] for s in opt.slots]) for name in opt.slots[0]}}
        if kernel.accumulator is not None:
            got["acc"], want["acc"] = kernel.accumulator, _flat(opt.accumulators)
        if kernel.ema is not None:
            got["ema"], want["ema"] = kernel.ema, _flat(opt.averages)
        assert set(got) == set(want), f"{context}: state {sorted(got)} vs reference {sorted(want)}"
        operands = _ftrl_operands(opt, before, want, lr)
        if "w" in operands:  # w's rounding reaches the average, and w itself after an overwrite
            operands["ema"] = operands["w"] = np.maximum(np.abs(operands["w"]), np.abs(before["w"]))
        elif "ema" in got:
            # The average takes in the new w, whose rounding is at the scale of the old w (a step
            # that nearly cancels it, -0.00974 + 0.01, leaves 6e-8·|w|/|w'| = 2.8e-6 relative).
            operands["ema"] = np.abs(before["w"])
        for name in got:
            a, b = got[name], want[name]
            assert a.dtype == dtype, f"{context}: {name} dtype {a.dtype}"
            keep = slice(None)
            if ties is not None and name in ("w", "ema") and ties.any():
                keep = ~ties
            op = operands.get(name)
            err = _error(a[keep], b[keep], before[name][keep], None if op is None else op[keep])
            worst = max(worst, err)
            assert err <= tol, f"{context} step {step}: {name} error {err:.3g} > {tol:g}"
    return worst


CASES = [pytest.param(r, h, o, id=i) for i, r, h, o in RULE_CASES + OPTION_CASES]


@pytest.mark.parametrize("shapes", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("rule, hyper, options", CASES)
def test_float32_step_matches_reference(rule, hyper, options, shapes, rng, seed):
    run_case(rule, hyper, options, shapes, np.float32, rng, f"{rule} {options} {shapes} seed={seed}")


@pytest.mark.parametrize("rule, hyper, options", CASES)
def test_float64_step_matches_reference_exactly(rule, hyper, options, rng, seed):
    """In float64 the kernels compute what the reference computes, to 1e-12: a wrong formula
    cannot hide behind float32 rounding."""
    run_case(rule, hyper, options, SHAPES["odd"], np.float64, rng, f"{rule} {options} float64 seed={seed}")


def test_results_do_not_depend_on_the_thread_count(rng, seed):
    shapes = [(150_001,), (70_000,), (3,)]
    n = sum(int(np.prod(s)) for s in shapes)
    options = dict(weight_decay=0.01, clipnorm=0.5, use_ema=True, gradient_accumulation_steps=2)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    w0 = rng.standard_normal(n).astype(np.float32)
    results = []
    saved = _core.get_num_threads()
    try:
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            w = w0.copy()
            k = FlatStep("nadam", n, **_flat_options(shapes, options))
            for g in grads:
                k.apply(w, g, 0.01)
            results.append((w, k.slots["m"].copy(), k.slots["v"].copy(), k.ema.copy()))
    finally:
        _core.set_num_threads(saved)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b, err_msg=f"seed={seed}")


def test_global_clipnorm_of_non_finite_gradients_is_nan_as_in_keras():
    """clip_by_global_norm: scale = c·min(1/norm, 1/c) + (norm - norm) is NaN for an infinite norm."""
    w = np.ones(4, np.float32)
    g = np.array([1.0, np.inf, 0.0, 1.0], np.float32)
    _core.sgd_step(w, g, lr=0.1, global_clipnorm=1.0)
    assert np.all(np.isnan(w))


def test_clipnorm_of_a_zero_gradient_leaves_it_zero():
    w = np.ones(5, np.float32)
    _core.sgd_step(w, np.zeros(5, np.float32), lr=0.1, clipnorm=1.0, segments=np.array([0, 2, 5]))
    np.testing.assert_array_equal(w, np.ones(5, np.float32))


def test_accumulate_step_adds_and_keeps_weights():
    w = np.ones(3, np.float32)
    acc = np.array([1, 2, 3], np.float32)
    _core.accumulate_step(w, np.array([0.5, 0.5, 0.5], np.float32), acc)
    np.testing.assert_array_equal(acc, [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(w, [1, 1, 1])


def test_empty_buffers_and_empty_variables_are_no_ops():
    e = np.zeros(0, np.float32)
    _core.adam_step(e, e.copy(), e.copy(), e.copy(), alpha=0.1, clipnorm=1.0, segments=np.array([0]))
    w = np.ones(3, np.float32)
    _core.sgd_step(w, np.ones(3, np.float32), lr=0.5, segments=np.array([0, 0, 3, 3]), clipnorm=1.0)
    c = np.float32(1.0) / np.float32(np.sqrt(3.0))
    np.testing.assert_allclose(w, 1 - 0.5 * c, rtol=1e-6)


# ---- every other ISA level -------------------------------------------------------

LEVELS = ["generic", "neon", "avx2", "avx512"]


@pytest.mark.parametrize("level", LEVELS)
def test_other_isa_levels(level, seed):
    """This file's float32 cases under FUSEDLSTM_ISA=level (the level in use here ran above)."""
    info = _core.build_info()
    if level not in info["isa_available"]:
        pytest.skip(f"this CPU/build lacks {level} (available: {info['isa_available']})")
    if level == info["isa"]:
        pytest.skip(f"{level} is the level this process uses: the tests above ran on it")
    here = Path(__file__).resolve()
    env = dict(os.environ, FUSEDLSTM_ISA=level, FUSEDLSTM_TEST_SEED=str(seed))
    parent = Path(_core.__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(parent), str(here.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here),
                           "-k", "float32 and not other_isa_levels"], env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(here.parent.parent))
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={level} seed={seed}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout, proc.stdout[-2000:]


# ---- FlatStep's own checks -------------------------------------------------------------

def test_flat_step_rejects_unknown_rules_and_hyperparameters():
    with pytest.raises(ValueError, match="Unknown optimizer rule 'adamw'"):
        FlatStep("adamw", 3)
    with pytest.raises(TypeError, match=r"unexpected hyperparameter\(s\) \['beta_3'\]"):
        FlatStep("adam", 3, beta_3=0.5)


def test_a_refused_step_changes_no_state():
    k = FlatStep("nadam", 4, segments=np.array([0, 2, 4]))
    w = np.ones(4, np.float32)
    k.apply(w, np.ones(4, np.float32), 0.01)
    state = (k.iterations, k.u_product, k.slots["m"].copy(), w.copy())
    with pytest.raises(ValueError, match="g must have shape"):
        k.apply(w, np.ones(5, np.float32), 0.01)
    assert (k.iterations, k.u_product) == state[:2]
    np.testing.assert_array_equal(k.slots["m"], state[2])
    np.testing.assert_array_equal(w, state[3])


def test_zero_or_negative_clip_values_mean_no_clipping_as_in_keras(rng):
    g = (rng.standard_normal(9) * 10).astype(np.float32)
    plain, zero = (np.zeros(9, np.float32) for _ in range(2))
    FlatStep("sgd", 9).apply(plain, g, 0.1)
    FlatStep("sgd", 9, clipnorm=0.0, clipvalue=-1.0).apply(zero, g, 0.1)
    np.testing.assert_array_equal(plain, zero)
