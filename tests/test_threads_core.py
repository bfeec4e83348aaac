"""_core under several Python threads: same bits as sequential, the GIL released, fork-safe.

The kernels release the GIL, share one worker pool (a second caller runs its
work alone), and promise results independent of the thread count. So calls
made at the same time from several Python threads, whichever of them gets the
pool, must give bitwise the results of the same calls made one after another:
on different data, on shared weight arrays, and on one shared LstmCache.
"""

import os
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from fusedlstm import _core
from gradcheck import kernel_run, loss_weights, lstm_problem

F32 = np.float32
REPEATS = 4


@pytest.fixture
def restore_threads():
    before = _core.get_num_threads()
    yield
    _core.set_num_threads(before)


def run_threads(jobs, repeats=REPEATS):
    """Runs every job `repeats` times, all jobs at once (one Python thread each).

    Returns results[k][rep]; an exception in any thread fails the caller.
    """
    results = [[None] * repeats for _ in jobs]
    errors = []
    start = threading.Barrier(len(jobs))

    def work(k):
        try:
            start.wait()
            for rep in range(repeats):
                results[k][rep] = jobs[k]()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append((k, exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def assert_same_bits(got, want, what):
    """Nested tuples/dicts of arrays and floats, compared bitwise."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), what
        for k in want:
            assert_same_bits(got[k], want[k], f"{what}.{k}")
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_bits(g, w, f"{what}[{i}]")
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, what
        assert got.tobytes() == want.tobytes(), f"{what}: not bitwise equal to the sequential run"
    elif isinstance(want, float):
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), f"{what}: {got!r} != {want!r}"
    else:
        assert (got is None) == (want is None), what


# ---------------------------------------------------------------------------
# Jobs: each returns everything its calls produced
# ---------------------------------------------------------------------------

def lstm_job(rng, shp, dtype=F32, **kw):
    inputs, opts = lstm_problem(rng, *shp, dtype, **kw)
    Rs = loss_weights(rng, inputs, opts)
    return lambda: kernel_run(inputs, opts, Rs)


def dense_job(rng, N, D, C, dtype=F32, from_logits=False):
    x = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((D, C)) / np.sqrt(D)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    labels = rng.integers(0, C, N)
    w = rng.random(N).astype(dtype)
    return lambda: _core.dense_softmax_xent(x, W, b, labels, w, from_logits=from_logits)


def matmul_job(rng, M, N, K):
    a, b = rng.standard_normal((K, M)).astype(F32), rng.standard_normal((K, N)).astype(F32)
    return lambda: _core.matmul(a, b, trans_a=True)


def adam_job(rng, n):
    """Adam steps from a fixed start: each call copies the state, so every repeat is the same."""
    w0, g = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)

    def job():
        w, m, v = w0.copy(), np.zeros(n, F32), np.zeros(n, F32)
        for step in range(1, 4):
            _core.adam_step(w, g, m, v, alpha=1e-2 * step)
        return w, m, v
    return job


def mixed_jobs(rng):
    return [
        lstm_job(rng, (17, 40, 7, 33), mask=True),
        lstm_job(rng, (9, 30, 1, 25), vocab=20, go_backwards=True, rec_mask=True),
        lstm_job(rng, (33, 12, 5, 150), np.float64, return_sequences=False),
        dense_job(rng, 300, 40, 17),
        dense_job(rng, 64, 9, 1000, from_logits=True),
        matmul_job(rng, 129, 70, 200),
        adam_job(rng, 200_003),
    ]


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_concurrent_calls_on_different_data_match_sequential(nthreads, rng, seed, restore_threads):
    _core.set_num_threads(nthreads)
    jobs = mixed_jobs(rng)
    sequential = [job() for job in jobs]
    results = run_threads(jobs)
    for k, want in enumerate(sequential):
        for rep in range(REPEATS):
            assert_same_bits(results[k][rep], want, f"job {k} repeat {rep} (threads={nthreads}, seed={seed})")


def test_concurrent_calls_sharing_weight_arrays(rng, seed):
    """Threads reading the same W, U, b (different x and states), and identical calls."""
    B, T, I, H = 8, 25, 6, 40
    W = (rng.standard_normal((I, 4 * H)) / np.sqrt(I)).astype(F32)
    U = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(F32)
    b = rng.standard_normal(4 * H).astype(F32)
    Wd = (rng.standard_normal((H, 11)) / np.sqrt(H)).astype(F32)
    shared = [a.copy() for a in (W, U, b, Wd)]

    def make(x, h0, labels):
        def job():
            y, hT, cT, cache = _core.lstm_forward(x, W, U, b, h0, h0, training=True)
            dy = np.ones_like(y)
            grads = _core.lstm_backward(cache, dy, None, None)
            out = _core.dense_softmax_xent(hT, Wd, None, labels)
            return (y, hT, cT) + grads + out
        return job

    inputs = [(rng.standard_normal((B, T, I)).astype(F32), rng.standard_normal((B, H)).astype(F32),
               rng.integers(0, 11, B)) for _ in range(3)]
    jobs = [make(*inp) for inp in inputs] + [make(*inputs[0])]  # the last repeats the first
    sequential = [job() for job in jobs]
    results = run_threads(jobs)
    assert_same_bits(sequential[3], sequential[0], "the same call twice, sequentially")
    for k, want in enumerate(sequential):
        for rep in range(REPEATS):
            assert_same_bits(results[k][rep], want, f"job {k} repeat {rep} seed={seed}")
    for a, before in zip((W, U, b, Wd), shared):
        assert a.tobytes() == before.tobytes(), "shared weights were modified"


@pytest.mark.parametrize("dtype", [F32, np.float64])
def test_concurrent_backward_on_one_cache(dtype, rng, seed):
    inputs, opts = lstm_problem(rng, 7, 30, 5, 21, dtype, mask=True, rec_mask=True)
    Rs = loss_weights(rng, inputs, opts)
    cache = _core.lstm_forward(inputs["x"], inputs["W"], inputs["U"], inputs["b"], inputs["h0"],
                               inputs["c0"], mask=inputs["mask"], rec_mask=inputs["rec_mask"],
                               training=True, **opts)[3]
    want = _core.lstm_backward(cache, *Rs)
    results = run_threads([lambda: _core.lstm_backward(cache, *Rs)] * 4)
    for k, reps in enumerate(results):
        for rep, got in enumerate(reps):
            assert_same_bits(got, want, f"thread {k} repeat {rep} seed={seed}")


def test_thread_count_changing_while_kernels_run(rng, seed, restore_threads):
    """set_num_threads from another thread mid-call: results never depend on the count."""
    jobs = mixed_jobs(rng)[:4]
    sequential = [job() for job in jobs]
    stop = threading.Event()

    def toggle():
        n = 0
        while not stop.is_set():
            _core.set_num_threads(1 + n % 3)
            n += 1
            time.sleep(0.0005)

    t = threading.Thread(target=toggle)
    t.start()
    try:
        results = run_threads(jobs)
    finally:
        stop.set()
        t.join()
    for k, want in enumerate(sequential):
        for rep in range(REPEATS):
            assert_same_bits(results[k][rep], want, f"job {k} repeat {rep} seed={seed}")


def test_errors_in_one_thread_leave_the_others_alone(rng, seed):
    """Bad calls raising in some threads while good calls run in others."""
    good = mixed_jobs(rng)[:3]
    sequential = [job() for job in good]
    ids = np.full((4, 6), 3, np.int64)
    ids[2, 4] = 99  # out of range: found by the kernel-side scan, with the GIL released
    W, U = np.zeros((10, 8), F32), np.zeros((2, 8), F32)
    h0 = np.zeros((4, 2), F32)

    def bad():
        with pytest.raises(ValueError, match=r"x\[2, 4\] = 99"):
            _core.lstm_forward(ids, W, U, None, h0, h0, training=True)
        with pytest.raises(ValueError, match=r"labels\[1\] = 7"):
            _core.dense_softmax_xent(np.ones((3, 2), F32), np.ones((2, 5), F32), None, np.array([0, 7, 1]))
        return "raised"

    results = run_threads(good + [bad, bad])
    for k, want in enumerate(sequential):
        for rep in range(REPEATS):
            assert_same_bits(results[k][rep], want, f"job {k} repeat {rep} seed={seed}")
    assert all(r == "raised" for k in (-1, -2) for r in results[k])


# ---------------------------------------------------------------------------
# The GIL is released while kernels run
# ---------------------------------------------------------------------------

def gil_cases(rng):
    """One call per GIL-releasing function, each a few ms or more (any length works: see below)."""
    x = rng.standard_normal((32, 100, 32)).astype(F32)
    W = (rng.standard_normal((32, 256)) / 6).astype(F32)
    U = (rng.standard_normal((64, 256)) / 8).astype(F32)
    h0 = np.zeros((32, 64), F32)
    y, _, _, cache = _core.lstm_forward(x, W, U, None, h0, h0, training=True)
    dy = np.ones_like(y)
    a = rng.standard_normal((600, 600)).astype(F32)
    xd = rng.standard_normal((5000, 64)).astype(F32)
    Wd = rng.standard_normal((64, 200)).astype(F32)
    labels = rng.integers(0, 200, 5000)
    n = 2_000_000
    w, g, m, v = (np.zeros(n, F32) for _ in range(4))
    onehot = np.eye(50, dtype=F32)[rng.integers(0, 50, (200, 100))]

    def repeat(call, times):  # the short kernels: more releases of the GIL to be seen in
        return lambda: [call() for _ in range(times)]
    return {
        "lstm_forward": lambda: _core.lstm_forward(x, W, U, None, h0, h0),
        "lstm_backward": lambda: _core.lstm_backward(cache, dy),
        "dense_softmax_xent": lambda: _core.dense_softmax_xent(xd, Wd, None, labels),
        "matmul": lambda: _core.matmul(a, a),
        "adam_step": repeat(lambda: _core.adam_step(w, g, m, v, alpha=0.1), 5),
        "sgd_step": repeat(lambda: _core.sgd_step(w, g, m, lr=0.1, momentum=0.9, nesterov=True), 5),
        "rmsprop_step": repeat(lambda: _core.rmsprop_step(w, g, v, lr=0.1), 5),
        "onehot_ids": repeat(lambda: _core.onehot_ids(onehot), 10),
    }


def test_gil_is_released_during_kernels(rng, restore_threads):
    """A Python thread runs while the main thread is inside a kernel.

    With the switch interval set far beyond the test's length, the interpreter
    never takes the GIL from the main thread: the counting thread can run only
    when the main thread gives the GIL up itself, and between reading the
    counter before and after a call the only place that can happen is inside
    the kernel. The counting thread sleeps 0.1 ms per step, which hands the GIL
    back as soon as the kernel returns. (Without the long interval the check
    proves nothing: the interpreter would switch to the counting thread right
    after the call returns, before the counter is read.) The counting thread
    still needs a core within the kernel's few ms, which a loaded machine may
    not give at once: up to ten tries per kernel; a kernel holding the GIL
    fails every one.
    """
    _core.set_num_threads(1)  # leave a core for the counting thread
    cases = gil_cases(rng)
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0.0001)

    def pure_python_control():
        # C code that keeps the GIL: the method must see no progress here
        return sum(range(3_000_000))

    interval = sys.getswitchinterval()
    t = threading.Thread(target=count)
    advanced = {}
    sys.setswitchinterval(1000.0)
    try:
        t.start()
        time.sleep(0.01)
        for name, call in [("control", pure_python_control)] + list(cases.items()):
            for _ in range(10):
                before = counter[0]
                call()
                after = counter[0]
                advanced[name] = max(advanced.get(name, 0), after - before)
                if after > before:
                    break
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        t.join()
    assert advanced.pop("control") == 0, "set-up: the counting thread ran while the GIL was held"
    held = [name for name, d in advanced.items() if d == 0]
    assert not held, f"no Python thread ran while these kernels ran (GIL held?): {held}; {advanced}"


# ---------------------------------------------------------------------------
# fork(): the child gets a fresh pool
# ---------------------------------------------------------------------------

def run_in_child(fn, timeout=90):
    """fn() in a forked child; True when it returned True. A hung child fails the test."""
    rfd, wfd = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns on fork() in a multi-threaded process; the pool's
        # workers are what these tests are about.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: report and leave without running any pytest teardown
        ok = 0
        try:
            ok = 1 if fn() is True else 0
        except BaseException as exc:  # the parent sees only the verdict: say why here
            os.write(2, f"forked child: {exc!r}\n".encode())
        finally:
            os.write(wfd, bytes([ok]))
            os._exit(0)
    os.close(wfd)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            pytest.fail("the forked child hung (waiting for a lock or a thread of the parent?)")
        time.sleep(0.02)
    verdict = os.read(rfd, 1)
    os.close(rfd)
    return os.WIFEXITED(status) and verdict == b"\x01"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kernels_work_in_a_forked_child(rng, seed, restore_threads):
    """After fork() the parent's pool threads do not exist; the child must not wait on them."""
    _core.set_num_threads(2)
    job = lstm_job(rng, (33, 20, 7, 150), mask=True)
    want = job()  # the parent's pool is up and has run

    def child():
        assert_same_bits(job(), want, "child")
        return True

    assert run_in_child(child), f"the child's kernels failed or differed (seed={seed})"


def test_large_buffers_are_reused_and_can_be_released(rng, seed):
    """The cache of the LSTM's large buffers: results identical on reused (dirty)
    memory, the cache bounded and emptied by release_memory()."""
    import fusedlstm
    inputs, opts = lstm_problem(rng, 16, 40, 33, 130, F32, mask=True)
    Rs = loss_weights(rng, inputs, opts)
    fusedlstm.release_memory()
    first = kernel_run(inputs, opts, Rs)
    held = _core.build_info()["buffer_cache_bytes"]
    assert held > 0, "the training forward and backward buffers (> 256 KiB) should be kept for reuse"
    for _ in range(3):  # the same requests again: served from the cache, which must not grow
        again = kernel_run(inputs, opts, Rs)
        assert _core.build_info()["buffer_cache_bytes"] == held
        for part in (0, 1):
            for name in first[part]:
                if first[part][name] is not None:
                    np.testing.assert_array_equal(again[part][name], first[part][name], err_msg=name)
    assert fusedlstm.release_memory() == held
    assert _core.build_info()["buffer_cache_bytes"] == 0
