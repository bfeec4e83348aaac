"""Every ISA level the CPU has, forced with FUSEDLSTM_ISA, runs the GRU, SimpleRNN and Conv1D kernels
against the float64 reference (as tests/test_isa_levels.py does for the LSTM and the rest).

The float kernel table is chosen once at import, so each level runs in its own
subprocess (test_isa_levels.LEVELS and its runner). Unit counts are odd and sit
on both sides of every vector width (4, 8, 16 floats): partial vectors (H < L),
the overlapping tail vector (H % L != 0) and whole vectors. Tolerances as the
main suites: 1e-5 of max|ref| on outputs, 1e-4 on gradients.
"""

import json

import pytest

import test_isa_levels as levels
from fusedlstm import _core

SUITE = r"""
import json, sys
import numpy as np
from fusedlstm import _core, reference as ref
from gradcheck import scaled_error
from rnn_problems import kernel_run, loss_weights, reference_run, rnn_problem

rng = np.random.default_rng(int(sys.argv[1]))
errors = {}

def record(name, got, want):
    errors[name] = max(errors.get(name, 0.0), scaled_error(got, want))

cases = [
    ("gru", (5, 11, 7, 3), dict(mask=True, go_backwards=True)),
    ("gru", (3, 9, 1, 17), dict(rec_mask=True, return_sequences=False)),
    ("gru", (4, 8, 5, 33), dict(reset_after=False, mask=True, rec_mask=True)),
    ("gru", (2, 6, 3, 16), dict(reset_after=False, activation="relu", recurrent_activation="hard_sigmoid",
                                x_scale=3.0)),
    ("gru", (4, 11, 1, 25), dict(vocab=13, mask=True, zero_output_for_mask=True)),
    ("simple_rnn", (5, 13, 7, 3), dict(mask=True, rec_mask=True)),
    ("simple_rnn", (3, 9, 4, 33), dict(vocab=9, go_backwards=True)),
    ("simple_rnn", (2, 7, 3, 23), dict(activation="hard_sigmoid", x_scale=3.0, return_sequences=False)),
]
for cell, shp, kw in cases:
    inputs, opts = rnn_problem(cell, rng, *shp, np.float32, **kw)
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(cell, inputs, opts, Rs)
    r_out, r_grads = reference_run(cell, inputs, opts, Rs)
    for n in k_out:
        record(f"{cell}.out", k_out[n], r_out[n])
    for n in k_grads:
        if r_grads[n] is not None:
            record(f"{cell}.grad", k_grads[n], r_grads[n])

for B, L, C, F, K, kw in [(3, 19, 5, 7, 4, dict(padding="same", strides=2)),
                          (2, 33, 17, 33, 3, dict(padding="causal", dilation_rate=2)),
                          (4, 12, 6, 9, 3, dict(groups=3))]:
    x = rng.standard_normal((B, L, C)).astype(np.float32)
    W = (rng.standard_normal((K, C // kw.get("groups", 1), F)) / 4).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    y = _core.conv1d_forward(x, W, b, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    record("conv1d.out", y, ref.conv1d_forward(x, W, b, **kw))
    for g, r in zip(_core.conv1d_backward(dy, x, W, **kw), ref.conv1d_backward(dy, x, W, True, **kw)):
        record("conv1d.grad", g, r)

print(json.dumps({"isa": _core.build_info()["isa"], "errors": errors}))
"""

TOLERANCES = {".out": 1e-5, ".grad": 1e-4}


@pytest.mark.parametrize("level", levels.LEVELS)
def test_forced_level_passes_the_rnn_and_conv_suite(level, seed):
    available = _core.build_info()["isa_available"]
    if level not in available:
        pytest.skip(f"this CPU/build lacks {level} (available: {available})")
    proc = levels._run(level, SUITE, str(seed))
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={level} seed={seed}:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["isa"] == level
    assert set(result["errors"]) == {f"{c}{p}" for c in ("gru", "simple_rnn", "conv1d") for p in TOLERANCES}
    failures = {k: e for k, e in result["errors"].items()
                if not e <= next(t for s, t in TOLERANCES.items() if k.endswith(s))}
    assert not failures, f"FUSEDLSTM_ISA={level} seed={seed}: over tolerance {failures} (all: {result['errors']})"
