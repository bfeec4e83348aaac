"""The ISA-specific kernels of every level the CPU has, each forced with FUSEDLSTM_ISA.

The float table is chosen once at import, so each level runs in a subprocess.
Covered here: the GEMM on odd shapes (edges of every register tile), all four
transpose combinations, accumulate on/off, shapes that cross the cache blocks
(K > KC, M > MC, N > NC); bitwise equality across thread counts; and the
vectorised exp/sigmoid/tanh through the LSTM cell and softmax through
dense_softmax_xent, including saturation at |x| = 100; the NaN/Inf scan and the
one-hot scan.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusedlstm import _core

LEVELS = ["generic", "neon", "avx2", "avx512"]  # best last within an architecture
PACKAGE_PARENT = Path(_core.__file__).resolve().parent.parent

# One subprocess per level: prints {"isa", "errors": {case: scaled error}, "bad": [...]}.
SUITE = r"""
import json, sys
import numpy as np
from fusedlstm import _core

seed = int(sys.argv[1])
rng = np.random.default_rng(seed)
errors, bad = {}, []

def scaled(got, want):
    want = np.asarray(want, np.float64)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale if want.size else 0.0

def check_matmul(m, k, n, ta, tb, acc):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = (a64.T if ta else a64) @ (b64.T if tb else b64)
    name = f"matmul m={m} k={k} n={n} ta={ta} tb={tb} acc={acc}"
    if acc:
        out = rng.standard_normal((m, n)).astype(np.float32)
        want = want + out
        got = _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out, accumulate=True)
        if got is not out and not np.shares_memory(got, out):
            bad.append(name + ": accumulate did not write into out")
        got = out
    else:
        out = np.full((m, n), np.nan, np.float32)  # beta = 0 must not read C
        got = _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
        got = out
    if got.shape != (m, n) or got.dtype != np.float32:
        bad.append(f"{name}: got {got.shape} {got.dtype}")
        return
    errors[name] = scaled(got, want)

odd = [1, 3, 7, 17, 33, 65, 129, 150]
for m in odd:
    for n in odd:
        k = int(rng.choice(odd))
        ta, tb, acc = (bool(v) for v in rng.integers(0, 2, 3))
        check_matmul(m, k, n, ta, tb, acc)
for ta in (False, True):
    for tb in (False, True):
        for acc in (False, True):
            check_matmul(33, 65, 17, ta, tb, acc)
            check_matmul(1, 25, 100, ta, tb, acc)
# Across the cache blocks: K > KC (384/256), M > MC (~1000), N > NC (480/256).
check_matmul(1030, 400, 530, False, False, False)
check_matmul(70, 900, 1500, True, True, True)
check_matmul(129, 1100, 97, False, True, True)

# K = 0: C = 0 (or unchanged when accumulating).
z = _core.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32))
if z.shape != (4, 5) or np.any(z != 0):
    bad.append(f"K=0 must give zeros, got {z!r}")

# Same bits for every thread count (threads split M or N, never K).
a = rng.standard_normal((300, 700)).astype(np.float32)
b = rng.standard_normal((700, 260)).astype(np.float32)
results = []
for nt in (1, 2, 3):
    _core.set_num_threads(nt)
    results.append(_core.matmul(a, b))
    results.append(_core.matmul(b, a, trans_a=True, trans_b=True))
for i in range(2, len(results)):
    if not np.array_equal(results[i], results[i % 2]):
        bad.append(f"matmul differs between 1 and {i // 2 + 1} threads")

# Elementary functions through the LSTM cell, one step with z = x:
# W = I (4H x 4H), U = 0, h0 = c0 = 0, so c_T = i * g.
#   activation='linear', recurrent='sigmoid', x_g = 1 -> c_T = sigmoid(x_i)
#   activation='tanh',  recurrent='linear',  x_i = 1 -> c_T = tanh(x_g)
x = np.concatenate([np.linspace(-100, 100, 2001), [-88.5, -87.5, 87.5, 88.5, 1e-6, -1e-4, 0.6249, 0.6251]])
H = x.size
W = np.eye(4 * H, dtype=np.float32)
U = np.zeros((H, 4 * H), np.float32)
zeros = np.zeros((1, H), np.float32)
xin = np.zeros((1, 1, 4 * H), np.float32)
xin[0, 0, :H] = x
xin[0, 0, 2 * H:3 * H] = 1.0
_, _, c, _ = _core.lstm_forward(xin, W, U, None, zeros, zeros, activation="linear",
                                recurrent_activation="sigmoid", onehot="never")
sig = 1.0 / (1.0 + np.exp(-x.astype(np.float32).astype(np.float64)))
errors["sigmoid rel"] = float(np.max(np.abs(c[0] - sig) / np.maximum(sig, 1e-30) * (sig > 1e-37)))
if not (np.all(np.isfinite(c)) and c[0, 0] < 1e-37 and c[0, 2000] == 1.0):
    bad.append(f"sigmoid(-100) = {c[0, 0]!r}, sigmoid(100) = {c[0, 2000]!r}")
xin[0, 0, :H] = 1.0
xin[0, 0, 2 * H:3 * H] = x
_, _, c, _ = _core.lstm_forward(xin, W, U, None, zeros, zeros, activation="tanh",
                                recurrent_activation="linear", onehot="never")
th = np.tanh(x.astype(np.float32).astype(np.float64))
nz = th != 0
errors["tanh rel"] = float(np.max(np.abs(c[0] - th)[nz] / np.abs(th[nz])))
if c[0, 1000] != 0.0:
    bad.append(f"tanh(0) = {c[0, 1000]!r}")
if not (np.all(np.isfinite(c)) and c[0, 0] == -1.0 and c[0, 2000] == 1.0):
    bad.append(f"tanh(-100) = {c[0, 0]!r}, tanh(100) = {c[0, 2000]!r}")

# exp through softmax: probs of z = x·I, rows with spreads up to 200. In float32
# z - max(z) itself is rounded (relative 6e-8), which exp turns into a relative
# error of 6e-8·|z - max|: the error is measured in units of (1 + |z - max|).
for C in (1, 5, 16, 37, 100):
    zs = rng.uniform(-100, 100, (7, C)).astype(np.float32)
    probs = _core.dense_softmax_xent(zs, np.eye(C, dtype=np.float32), None,
                                     np.zeros(7, np.int64), backward=False)[1]
    z64 = zs.astype(np.float64)
    e = np.exp(z64 - z64.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    big = want > 1e-30
    spread = 1.0 + np.abs(z64 - z64.max(axis=1, keepdims=True))
    errors[f"softmax rel C={C}"] = float(np.max((np.abs(probs - want) / spread)[big] / want[big]))
    if not np.all(np.isfinite(probs)):
        bad.append(f"softmax C={C} gave non-finite values")

# first_nonfinite: the first NaN/±Inf of a flat array, around the 1024-element
# blocks of its scan; denormals and the largest finite values are finite.
for dtype in (np.float32, np.float64):
    info = np.finfo(dtype)
    for n in (1, 15, 16, 17, 1023, 1024, 1025, 5000):
        a = rng.standard_normal(n).astype(dtype)
        a[rng.integers(0, n, max(1, n // 7))] = rng.choice([info.max, -info.max, info.tiny / 4, 0.0])
        if _core.first_nonfinite(a) != -1:
            bad.append(f"first_nonfinite on finite {dtype.__name__}[{n}] = {_core.first_nonfinite(a)}")
        for v in (np.nan, np.inf, -np.inf):
            b = a.copy()
            pos = np.sort(rng.choice(n, size=min(n, 3), replace=False))
            b[pos] = v
            got = _core.first_nonfinite(b.reshape(-1, 1) if n % 2 else b)
            if got != pos[0]:
                bad.append(f"first_nonfinite {dtype.__name__}[{n}] with {v} at {list(pos)} gave {got}")

# One-hot detection: exact one-hot rows (and all-zero rows) give ids through the
# lookup path; any other value in any row must keep the dense GEMM, whose
# result then differs from the lookup of that row.
for V in (1, 7, 16, 17, 100):
    ids = rng.integers(-1, V, (3, 41))
    oh = np.zeros((3, 41, V), np.float32)
    rows = ids >= 0
    oh[rows, ids[rows]] = 1.0
    got = _core.onehot_ids(oh)
    if got is None or not np.array_equal(got, ids):
        bad.append(f"onehot_ids V={V}: {got!r} for ids {ids!r}")
    for v in (0.5, 2.0, -1.0, np.float32(1.0) + np.float32(1e-7)):
        o2 = oh.copy()
        o2[2, 40, rng.integers(0, V)] = v
        if _core.onehot_ids(o2) is not None:
            bad.append(f"onehot_ids V={V} took a row holding {v!r} as one-hot")
    if V > 1:
        o2 = oh.copy()
        o2[1, 5, :2] = 1.0  # two ones
        if _core.onehot_ids(o2) is not None:
            bad.append(f"onehot_ids V={V} took a row with two ones as one-hot")

print(json.dumps({"isa": _core.build_info()["isa"], "errors": errors, "bad": bad}))
"""

TOLERANCES = {"matmul": 1e-5, "sigmoid": 1e-6, "tanh": 1e-6, "softmax": 1e-6}


def _tolerance(name):
    return TOLERANCES[name.split()[0]]


def _run(level, *args):
    env = dict(os.environ, FUSEDLSTM_ISA=level)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", SUITE, *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("level", LEVELS)
def test_level_kernels_match_float64(level, seed):
    available = _core.build_info()["isa_available"]
    if level not in available:
        pytest.skip(f"this CPU/build lacks {level} (available: {available})")
    proc = _run(level, str(seed))
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={level} seed={seed}:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["isa"] == level, f"FUSEDLSTM_ISA={level} but the module uses {result['isa']!r}"
    assert not result["bad"], f"FUSEDLSTM_ISA={level} seed={seed}: {result['bad']}"
    over = {k: e for k, e in result["errors"].items() if not e <= _tolerance(k)}
    worst = max(result["errors"].items(), key=lambda kv: kv[1] / _tolerance(kv[0]))
    assert not over, f"FUSEDLSTM_ISA={level} seed={seed}: over tolerance {over} (worst {worst})"


def test_matmul_float64_uses_the_exact_generic_path(rng, seed):
    a = rng.standard_normal((19, 23))
    b = rng.standard_normal((23, 29))
    got = _core.matmul(a, b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12, err_msg=f"seed={seed}")
