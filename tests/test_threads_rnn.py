"""The GRU, SimpleRNN and Conv1D kernels from several Python threads at once, and the GIL
released while they run — test_threads_core.py's machinery and checks applied to them.
"""

import numpy as np
import pytest

import test_threads_core as tc
from fusedlstm import _core
from rnn_problems import kernel_run, loss_weights, rnn_problem
from test_threads_core import restore_threads  # noqa: F401  (a fixture used below)

F32 = np.float32


def rnn_job(rng, cell, shp, dtype=F32, **kw):
    inputs, opts = rnn_problem(cell, rng, *shp, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    return lambda: kernel_run(cell, inputs, opts, Rs)


def conv_job(rng, B, L, C, F, K, dtype=F32, **opts):
    x = rng.standard_normal((B, L, C)).astype(dtype)
    W = (rng.standard_normal((K, C // opts.get("groups", 1), F)) / 8).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)

    def job():
        y = _core.conv1d_forward(x, W, b, **opts)
        return (y,) + _core.conv1d_backward(np.ones_like(y), x, W, **opts)
    return job


def jobs(rng):
    return [
        rnn_job(rng, "gru", (17, 40, 7, 33), mask=True),
        rnn_job(rng, "gru", (9, 30, 1, 25), vocab=20, go_backwards=True, rec_mask=True, reset_after=False),
        rnn_job(rng, "simple_rnn", (33, 12, 5, 150), np.float64, return_sequences=False, mask=True),
        conv_job(rng, 16, 100, 32, 48, 5, padding="same"),
        conv_job(rng, 4, 77, 12, 12, 3, np.float64, groups=3, padding="causal", dilation_rate=2),
    ]


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_concurrent_calls_match_sequential(nthreads, rng, seed, restore_threads):  # noqa: F811
    _core.set_num_threads(nthreads)
    js = jobs(rng)
    sequential = [job() for job in js]
    results = tc.run_threads(js)
    for k, want in enumerate(sequential):
        for rep in range(tc.REPEATS):
            tc.assert_same_bits(results[k][rep], want, f"job {k} repeat {rep} (threads={nthreads}, seed={seed})")


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_concurrent_backward_on_one_cache(cell, rng, seed):
    inputs, opts = rnn_problem(cell, rng, 7, 30, 5, 21, F32, mask=True, rec_mask=True)
    Rs = loss_weights(rng, inputs, opts)
    fwd, bwd = getattr(_core, f"{cell}_forward"), getattr(_core, f"{cell}_backward")
    cache = fwd(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"], mask=inputs["mask"],
                rec_mask=inputs["rec_mask"], training=True, **opts)[2]
    want = bwd(cache, *Rs)
    for k, reps in enumerate(tc.run_threads([lambda: bwd(cache, *Rs)] * 4)):
        for rep, got in enumerate(reps):
            tc.assert_same_bits(got, want, f"thread {k} repeat {rep} seed={seed}")


def gil_cases(rng):
    """One call per GIL-releasing function added for GRU, SimpleRNN and Conv1D."""
    x = rng.standard_normal((32, 100, 32)).astype(F32)
    h0 = np.zeros((32, 64), F32)
    Wg, Ug = (rng.standard_normal((32, 192)) / 6).astype(F32), (rng.standard_normal((64, 192)) / 8).astype(F32)
    Ws, Us = (rng.standard_normal((32, 64)) / 6).astype(F32), (rng.standard_normal((64, 64)) / 8).astype(F32)
    y, _, gcache = _core.gru_forward(x, Wg, Ug, None, h0, training=True)
    ys, _, scache = _core.simple_rnn_forward(x, Ws, Us, None, h0, training=True)
    Wc = (rng.standard_normal((5, 32, 64)) / 12).astype(F32)
    yc = _core.conv1d_forward(x, Wc, None, padding="same")
    return {
        "gru_forward": lambda: _core.gru_forward(x, Wg, Ug, None, h0),
        "gru_backward": lambda: _core.gru_backward(gcache, np.ones_like(y)),
        "simple_rnn_forward": lambda: [_core.simple_rnn_forward(x, Ws, Us, None, h0) for _ in range(3)],
        "simple_rnn_backward": lambda: [_core.simple_rnn_backward(scache, np.ones_like(ys)) for _ in range(3)],
        "conv1d_forward": lambda: _core.conv1d_forward(x, Wc, None, padding="same"),
        "conv1d_backward": lambda: _core.conv1d_backward(np.ones_like(yc), x, Wc, use_bias=False, padding="same"),
    }


def test_gil_is_released_during_rnn_and_conv_kernels(rng, restore_threads, monkeypatch):  # noqa: F811
    """test_threads_core's GIL check (see its docstring), run over these kernels' calls."""
    monkeypatch.setattr(tc, "gil_cases", gil_cases)
    tc.test_gil_is_released_during_kernels(rng, None)
