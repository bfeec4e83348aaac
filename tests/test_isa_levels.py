"""Every ISA level the CPU has, forced with FUSEDLSTM_ISA, passes a compact kernel suite.

The float kernel table is chosen once at import, so each level runs in its own
subprocess. The subset: LSTM forward/backward (dense and ids, with a mask and
go_backwards), dense_softmax_xent, the three optimizers and matmul, each
against the float64 reference with the same tolerances as the main suites.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusedlstm import _core

LEVELS = ["generic", "neon", "avx2", "avx512"]  # best last within an architecture
TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_PARENT = Path(_core.__file__).resolve().parent.parent

SUITE = r"""
import json, sys
import numpy as np
from fusedlstm import _core, reference as ref
from gradcheck import kernel_run, loss_weights, lstm_problem, reference_run, scaled_error

seed = int(sys.argv[1])
rng = np.random.default_rng(seed)
errors = {}

def record(name, got, want):
    errors[name] = max(errors.get(name, 0.0), scaled_error(got, want))

for label, shp, kw in [
    ("lstm", (5, 17, 7, 33), dict(mask=True, go_backwards=True)),
    ("lstm", (3, 9, 1, 150), dict(rec_mask=True, return_sequences=False)),
    ("lstm_ids", (4, 11, 1, 25), dict(vocab=13, mask=True, zero_output_for_mask=True)),
    ("lstm_act", (4, 6, 3, 17), dict(activation="relu", recurrent_activation="hard_sigmoid",
                                   x_scale=3.0)),
]:
    inputs, opts = lstm_problem(rng, *shp, np.float32, **kw)
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(inputs, opts, Rs)
    r_out, r_grads = reference_run(inputs, opts, Rs)
    for n in k_out:
        record(f"{label}.out", k_out[n], r_out[n])
    for n in k_grads:
        if r_grads[n] is not None:
            record(f"{label}.grad", k_grads[n], r_grads[n])

x = rng.standard_normal((37, 19)).astype(np.float32)
W = (rng.standard_normal((19, 11)) / 4).astype(np.float32)
b = rng.standard_normal(11).astype(np.float32)
labels = rng.integers(0, 11, 37)
for from_logits in (False, True):
    k = _core.dense_softmax_xent(x, W, b, labels, from_logits=from_logits)
    r = ref.dense_softmax_xent(x, W, b, labels, from_logits=from_logits)
    record("dense.out", np.array(k[0]), np.array(r[0]))
    record("dense.out", k[1], r[1])
    for g, h in zip(k[2:], r[2:]):
        record("dense.grad", g, h)

record("matmul", _core.matmul(x, W), x.astype(np.float64) @ W)
record("matmul", _core.matmul(x, x, trans_a=True), x.T.astype(np.float64) @ x)
Wt = rng.standard_normal((41, 19)).astype(np.float32)  # B transposed: packed through register tiles
record("matmul", _core.matmul(x, Wt, trans_b=True), x.astype(np.float64) @ Wt.T)

from fusedlstm.optimizer_steps import FlatStep
n = 1003
for name, hyper in (("adam", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)),
                    ("sgd", dict(momentum=0.9, nesterov=True)),
                    ("rmsprop", dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False))):
    kernel = FlatStep(name, n, **hyper)
    opt = ref.KerasOptimizer(name, [(n,)], np.float32, learning_rate=0.01, **hyper)
    w = rng.standard_normal(n).astype(np.float32)
    for step in range(4):
        g = rng.standard_normal(n).astype(np.float32)
        for key in opt.slots[0]:  # each step from the kernel's state: no drift is measured
            opt.slots[0][key] = kernel.slots[key].copy()
        want = opt.apply([g], [w.copy()])[0]
        kernel.apply(w, g, 0.01)
        record(f"optim.{name}", w, want)
        for key in opt.slots[0]:
            record(f"optim.{name}", kernel.slots[key], opt.slots[0][key])

print(json.dumps({"isa": _core.build_info()["isa"], "errors": errors}))
"""

TOLERANCES = {".out": 1e-5, ".grad": 1e-4, "matmul": 1e-5, "optim.": 1e-6}


def _tolerance(name):
    for key, tol in TOLERANCES.items():
        if key in name:
            return tol
    raise KeyError(name)


def _run(level, code, *args):
    env = dict(os.environ, FUSEDLSTM_ISA=level)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), str(TESTS_DIR),
                                         env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("level", LEVELS)
def test_forced_level_passes_the_kernel_suite(level, seed):
    available = _core.build_info()["isa_available"]
    if level not in available:
        pytest.skip(f"this CPU/build lacks {level} (available: {available})")
    proc = _run(level, SUITE, str(seed))
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={level} seed={seed}:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["isa"] == level, f"FUSEDLSTM_ISA={level} but build_info()['isa'] = {result['isa']!r}"
    failures = {k: e for k, e in result["errors"].items() if not e <= _tolerance(k)}
    assert not failures, (f"FUSEDLSTM_ISA={level} seed={seed}: errors over tolerance {failures} "
                          f"(all: {result['errors']})")


@pytest.mark.parametrize("level", LEVELS)
def test_unavailable_level_fails_at_import(level):
    available = _core.build_info()["isa_available"]
    if level in available:
        pytest.skip(f"{level} is available here")
    proc = _run(level, "import fusedlstm._core")
    assert proc.returncode != 0, f"forcing missing level {level} must fail at import"
    assert "FUSEDLSTM_ISA" in proc.stderr and level in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("value", ["sse9", "avx-512"])
def test_unknown_level_fails_at_import_naming_the_variable(value):
    proc = _run(value, "import fusedlstm._core")
    assert proc.returncode != 0, f"FUSEDLSTM_ISA={value!r} must fail at import"
    assert "FUSEDLSTM_ISA" in proc.stderr, proc.stderr[-2000:]
    assert value.strip() in proc.stderr, f"the message should quote the value: {proc.stderr[-2000:]}"


def test_build_info_lists_levels_best_last():
    info = _core.build_info()
    for key in ("version", "isa", "isa_available", "threads", "default_threads", "compiler", "cpu"):
        assert key in info, key
    avail = info["isa_available"]
    assert avail[0] == "generic" and avail == sorted(avail, key=LEVELS.index), avail
    assert info["isa"] in avail
    if "FUSEDLSTM_ISA" not in os.environ:
        assert info["isa"] == avail[-1], "without FUSEDLSTM_ISA the best level is used"
