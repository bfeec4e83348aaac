"""How an inference forward shares its time loop among threads (recurrent_schedule):
the unit split (a thread owns units with all their gate columns), row blocks (a
thread owns batch rows; on the token-id path each step's Z rows are gathered by
the thread that reads them) and the column-split product. Every choice must give
the same bits as every other, as the training forward (which never splits units)
and at every thread count, and match the float64 reference.

The shapes are picked so that each path really runs: each test first asks
recurrent_schedule for the kind it means to exercise at that thread count.
"""

import numpy as np
import pytest

from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import scaled_error

F32_OUT_TOL = 1e-5


@pytest.fixture
def restore_threads():
    n = _core.get_num_threads()
    yield
    _core.set_num_threads(n)


def _problem(rng, cell, B, T, I, H, dtype, vocab=None, mask=False):
    g = 4 if cell == "lstm" else 1
    if vocab is None:
        x = rng.standard_normal((B, T, I)).astype(dtype)
        W = (rng.standard_normal((I, g * H)) / np.sqrt(I)).astype(dtype)
    else:
        x = rng.integers(-1, vocab, size=(B, T)).astype(np.int32)
        W = rng.standard_normal((vocab, g * H)).astype(dtype)
    p = dict(x=x, W=W, U=(rng.standard_normal((H, g * H)) / np.sqrt(H)).astype(dtype),
             b=(0.1 * rng.standard_normal(g * H)).astype(dtype),
             h0=(0.5 * rng.standard_normal((B, H))).astype(dtype),
             mask=(rng.random((B, T)) > 0.3) if mask else None)
    if cell == "lstm":
        p["c0"] = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    return p


def _kernel(cell, p, training=False, **opts):
    if cell == "lstm":
        out = _core.lstm_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], p["c0"], mask=p["mask"],
                                 training=training, **opts)
        return out[:3]
    out = _core.simple_rnn_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], mask=p["mask"], training=training,
                                   **opts)
    return out[:2]


def _reference(cell, p, **opts):
    if cell == "lstm":
        return ref.lstm_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], p["c0"], mask=p["mask"], **opts)[:3]
    return ref.simple_rnn_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], mask=p["mask"], **opts)[:2]


def param(case_id, cell, B, T, I, H, schedule, **kw):
    return pytest.param(cell, (B, T, I, H), schedule, kw, id=case_id)


# schedule: the kind recurrent_schedule must give for (1, 2, 3) threads.
CASES = [
    param("lstm-units-dense", "lstm", 32, 4, 5, 512, ("gemm", "units", "units")),
    param("lstm-units-ids-mask-backwards-last", "lstm", 32, 4, 9, 512, ("gemm", "units", "units"), vocab=9,
          mask=True, go_backwards=True, return_sequences=False),
    # H = 390: parts of 192 and 198 units, not multiples of the vector width; 3 threads: too small a part
    param("lstm-units-odd-H", "lstm", 33, 3, 7, 390, ("gemm", "units", "gemm"), mask=True),
    param("lstm-rows-ids-mask", "lstm", 67, 9, 11, 150, ("gemm", "rows", "rows"), vocab=11, mask=True),
    param("lstm-rows-ids-zero_output", "lstm", 23, 7, 5, 33, ("gemm", "rows", "rows"), vocab=5, mask=True,
          zero_output_for_mask=True),
    param("simple_rnn-units", "simple_rnn", 32, 2, 3, 1024, ("gemm", "units", "units"), mask=True),
    param("simple_rnn-rows-ids", "simple_rnn", 40, 6, 7, 70, ("gemm", "rows", "rows"), vocab=7),
]


@pytest.mark.parametrize("cell, shp, schedule, kw", CASES)
def test_inference_schedules_give_the_same_bits(cell, shp, schedule, kw, rng, seed, restore_threads):
    B, T, I, H = shp
    kw = dict(kw)
    p = _problem(rng, cell, B, T, I, H, np.float32, vocab=kw.pop("vocab", None), mask=kw.pop("mask", False))
    for n, kind in zip((1, 2, 3), schedule):
        got = _core.recurrent_schedule(cell, B, T, H, n)["kind"]
        assert got == kind, f"{cell} B={B} T={T} H={H} on {n} threads: schedule {got}, the test wants {kind}"
        assert _core.recurrent_schedule(cell, B, T, H, n, training=True)["kind"] != "units"
    want = _reference(cell, p, **kw)
    _core.set_num_threads(1)
    first = _kernel(cell, p, **kw)
    for name, a, w in zip(("y", "hT", "cT"), first, want):
        err = scaled_error(a, w)
        assert err <= F32_OUT_TOL, f"{name} vs float64 reference: {err:.3g}, seed={seed}"
    for n in (1, 2, 3):
        _core.set_num_threads(n)
        runs = {"inference": _kernel(cell, p, **kw), "training": _kernel(cell, p, training=True, **kw)}
        for what, outs in runs.items():
            for name, a, b in zip(("y", "hT", "cT"), outs, first):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: {what} on {n} threads vs inference on 1, "
                                                            f"seed={seed}")


@pytest.mark.parametrize("packed_at, run_at", [(2, 2), (2, 1), (1, 2), (3, 2)])
def test_packed_kernel_from_another_thread_count_gives_the_same_bits(packed_at, run_at, rng, seed,
                                                                     restore_threads):
    """A kernel packed once per model (in the split layout at one thread count) serves a call
    that splits the same way and is repacked by one that does not: the bits never change."""
    B, T, I, H = 32, 3, 6, 512
    p = _problem(rng, "lstm", B, T, I, H, np.float32, mask=True)
    _core.set_num_threads(1)
    want = _kernel("lstm", p)
    _core.set_num_threads(packed_at)
    packed = _core.pack_recurrent_kernel(p["U"], "lstm", batch=B)
    _core.set_num_threads(run_at)
    for rep in range(2):
        got = _kernel("lstm", p, packed_U=packed)
        for name, a, b in zip(("y", "hT", "cT"), got, want):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: packed on {packed_at} threads, run on {run_at} "
                                                        f"(call {rep}), seed={seed}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_units_are_split_only_where_it_is_exact(dtype, rng, seed, restore_threads):
    """Float64, bfloat16 and a recurrent-dropout mask keep the natural layout (row blocks or
    the column-split product) at a shape the float32 inference splits by units."""
    assert _core.recurrent_schedule("lstm", 32, 3, 512, 2)["kind"] == "units"
    assert _core.recurrent_schedule("lstm", 32, 3, 512, 2, rec_mask=True)["kind"] == "gemm"
    assert _core.recurrent_schedule("gru", 32, 3, 512, 2)["kind"] == "gemm"
    B, T, I, H = 32, 3, 5, 512
    p = _problem(rng, "lstm", B, T, I, H, dtype)
    r = np.where(rng.random((B, H)) < 0.2, 0.0, 1.25).astype(dtype)
    outs = {}
    for n in (1, 2):
        _core.set_num_threads(n)
        outs[n] = (_core.lstm_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], p["c0"])[:3],
                   _core.lstm_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], p["c0"], rec_mask=r)[:3])
    for k in range(2):
        for name, a, b in zip(("y", "hT", "cT"), outs[2][k], outs[1][k]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} ({'rec_mask' if k else 'plain'}) 2 vs 1 "
                                                        f"threads, seed={seed}")
    want = ref.lstm_forward(p["x"], p["W"], p["U"], p["b"], p["h0"], p["c0"], rec_mask=r)[:3]
    tol = 1e-10 if dtype == np.float64 else F32_OUT_TOL
    for name, a, w in zip(("y", "hT", "cT"), outs[2][1], want):
        assert scaled_error(a, w) <= tol, f"{name} with rec_mask vs reference, seed={seed}"


def test_recurrent_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell must be"):
        _core.recurrent_schedule("rnn", 4, 4, 4, 2)
    with pytest.raises(ValueError, match="must be >= 1"):
        _core.recurrent_schedule("lstm", 0, 4, 4, 2)
    s = _core.recurrent_schedule("lstm", 32, 200, 1024, 2)
    assert s == {"kind": "units", "parts": 2, "bounds": [0, 512, 1024]}
    s = _core.recurrent_schedule("lstm", 128, 40, 256, 2)
    assert s == {"kind": "rows", "parts": 2, "bounds": [0, 64, 128]}
