"""Requests larger than the machine raise MemoryError stating the bytes, before allocating.

Each request runs in a fresh subprocess that reports the exception and how much
its peak virtual size (VmPeak) and peak resident size grew across the call. A
fresh process has a small, known peak, so an allocation of even a fraction of
the request would show; untouched calloc'd inputs are made before the first
reading. Sizes are derived from this machine's limit (RAM, or the cgroup's
memory.max when lower, as csrc/host_memory.cpp reads it), so the requests exceed it
everywhere.

Two kinds of request:
  * the call's own buffers (outputs, LSTM cache) exceed the limit: the library's
    check_memory names the function and the bytes ("needs N bytes");
  * an input is a broadcast view whose C-order copy could never be allocated:
    NumPy's MemoryError must reach Python (it once became a null pointer the
    kernels read through).
"""

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fusedlstm import _core

PACKAGE_PARENT = Path(_core.__file__).resolve().parent.parent
GROWTH_LIMIT = 256 << 20  # bytes a refused request may add to VmPeak (thread stacks, small temporaries)
RSS_GROWTH_LIMIT = 64 << 20


def memory_limit():
    """Physical RAM, or the cgroup v2/v1 memory limit when lower (csrc/host_memory.cpp's rule)."""
    lim = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().split()[0]
        except (OSError, IndexError):
            continue
        if text.isdigit() and 0 < int(text) < lim:
            lim = int(text)
    return lim


LIMIT = memory_limit()

CHILD = textwrap.dedent(r"""
    import json, resource, sys
    import numpy as np
    from fusedlstm import _core

    def vm_peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmPeak in /proc/self/status")

    def rss_peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    f32 = np.float32
    spec = json.loads(sys.argv[1])
    kind, n = spec["kind"], spec["n"]
    if kind == "lstm_training":       # gates (T, B, 4H) alone exceed the limit
        H = spec["H"]
        args = (np.zeros((1, n, 1), f32), np.zeros((1, 4 * H), f32), np.zeros((H, 4 * H), f32), None,
                np.zeros((1, H), f32), np.zeros((1, H), f32))
        call = lambda: _core.lstm_forward(*args, training=True)
    elif kind == "lstm_sequences":    # inference, token ids: y (B, T, H) alone exceeds it
        H = spec["H"]
        args = (np.zeros((1, n), np.int32), np.zeros((3, 4 * H), f32), np.zeros((H, 4 * H), f32), None,
                np.zeros((1, H), f32), np.zeros((1, H), f32))
        call = lambda: _core.lstm_forward(*args, return_sequences=True)
    elif kind == "dense":             # probs (N, C)
        C = spec["C"]
        args = (np.zeros((n, 1), f32), np.zeros((1, C), f32), None, np.zeros(n, np.int32))
        call = lambda: _core.dense_softmax_xent(*args)
    elif kind == "matmul":            # the (M, N) result
        N = spec["N"]
        args = (np.zeros((n, 1), f32), np.zeros((1, N), f32))
        call = lambda: _core.matmul(*args)
    elif kind == "lstm_broadcast_x":  # x (1, T, I): a 2^47-byte view of one float
        I, H = spec["I"], spec["H"]
        x = np.broadcast_to(f32(0.5), (1, n, I))
        args = (x, np.zeros((I, 4 * H), f32), np.zeros((H, 4 * H), f32), None,
                np.zeros((1, H), f32), np.zeros((1, H), f32))
        call = lambda: _core.lstm_forward(*args, return_sequences=False, onehot="never")
    elif kind == "dense_broadcast_x":
        D = spec["D"]
        args = (np.broadcast_to(f32(1.0), (n, D)), np.zeros((D, 1), f32), None, np.zeros(n, np.int32))
        call = lambda: _core.dense_softmax_xent(*args, backward=False)
    elif kind == "matmul_broadcast_a":
        K = spec["K"]
        args = (np.broadcast_to(f32(1.0), (n, K)), np.zeros((K, 1), f32))
        call = lambda: _core.matmul(*args)
    elif kind == "onehot_broadcast_x":
        args = (np.broadcast_to(f32(0.0), (n, n, spec["V"])),)
        call = lambda: _core.onehot_ids(*args)
    else:
        raise ValueError(kind)

    vm0, rss0 = vm_peak(), rss_peak()
    try:
        call()
        result = {"exc": None, "msg": ""}
    except BaseException as exc:  # reported to the parent, which judges it
        result = {"exc": type(exc).__name__, "msg": str(exc)}
    result.update(vm_growth=vm_peak() - vm0, rss_growth=rss_peak() - rss0)
    print(json.dumps(result))
""")


def run_child(spec):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE_PARENT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (f"{spec}: the child died with exit code {proc.returncode} "
                                  f"(a crash instead of an exception?)\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def elements_over(limit_bytes, per_element):
    """n such that n·per_element bytes are at least twice `limit_bytes`."""
    return math.ceil(2 * limit_bytes / per_element)


# (spec, the bytes the request needs at the least: the one buffer the comment names)
def own_buffer_cases():
    H = 2048
    n_lstm = elements_over(LIMIT, 4 * H * 4)  # T with T·4H floats = 2 × the limit
    N = 2 ** 15
    n_rows = elements_over(LIMIT, N * 4)
    return [
        pytest.param({"kind": "lstm_training", "n": n_lstm, "H": H}, n_lstm * 4 * H * 4, id="lstm_forward-training"),
        pytest.param({"kind": "lstm_sequences", "n": elements_over(LIMIT, H * 4), "H": H},
                     elements_over(LIMIT, H * 4) * H * 4, id="lstm_forward-ids-sequences"),
        pytest.param({"kind": "dense", "n": n_rows, "C": N}, n_rows * N * 4, id="dense_softmax_xent"),
        pytest.param({"kind": "matmul", "n": n_rows, "N": N}, n_rows * N * 4, id="matmul"),
    ]


@pytest.mark.parametrize("spec, least_bytes", own_buffer_cases())
def test_request_beyond_ram_raises_before_allocating(spec, least_bytes):
    assert least_bytes > LIMIT, "set-up: the request must exceed the machine"
    r = run_child(spec)
    assert r["exc"] == "MemoryError", f"{spec}: expected MemoryError, got {r}"
    m = re.search(r"needs (\d+) bytes", r["msg"])
    assert m, f"{spec}: the message must state the bytes needed: {r['msg']!r}"
    stated = int(m.group(1))
    fn = "lstm_forward" if spec["kind"].startswith("lstm") else \
        "dense_softmax_xent" if spec["kind"] == "dense" else "matmul"
    assert r["msg"].startswith(fn + ":"), f"the message must name the function: {r['msg']!r}"
    # at least the one buffer named above; at most a few times it (the other buffers of the call)
    assert least_bytes <= stated <= 4 * least_bytes, (spec, stated, least_bytes)
    assert str(LIMIT) in r["msg"], f"the message should state the machine's limit {LIMIT}: {r['msg']!r}"
    assert r["vm_growth"] < GROWTH_LIMIT, f"{spec}: VmPeak grew by {r['vm_growth']} bytes before refusing"
    assert r["rss_growth"] < RSS_GROWTH_LIMIT, f"{spec}: peak RSS grew by {r['rss_growth']} bytes"


# Views of a single float whose C-order copy needs >= 2^47 bytes: beyond the
# address space of any x86-64 process, so no overcommit setting can grant it and
# the test never depends on the machine's RAM. The other arrays and the call's
# own buffers stay small enough that only the copy can fail.
COPY_BYTES = 2 ** 47


def broadcast_cases():
    return [
        # I = 2^18, H = 256: per-chunk buffers ~1 GiB, W (I, 4H) a 1 GiB untouched calloc
        pytest.param({"kind": "lstm_broadcast_x", "n": 2 ** 27, "I": 2 ** 18, "H": 256}, 4 << 30,
                     id="lstm_forward-x"),
        pytest.param({"kind": "dense_broadcast_x", "n": 2 ** 22, "D": 2 ** 23}, 1 << 30,
                     id="dense_softmax_xent-x"),
        pytest.param({"kind": "matmul_broadcast_a", "n": 2 ** 24, "K": 2 ** 21}, 1 << 30, id="matmul-a"),
        pytest.param({"kind": "onehot_broadcast_x", "n": 2 ** 13, "V": 2 ** 19}, 1 << 30, id="onehot_ids-x"),
    ]


@pytest.mark.parametrize("spec, needs_limit", broadcast_cases())
def test_uncopyable_broadcast_input_raises_memory_error(spec, needs_limit):
    if LIMIT < needs_limit:
        pytest.skip(f"the call's own buffers need ~{needs_limit} bytes; this machine allows {LIMIT}")
    r = run_child(spec)
    assert r["exc"] == "MemoryError", f"{spec}: expected MemoryError, got {r}"
    # NumPy states the size in units ("Unable to allocate 512. TiB for an array with shape ...")
    m = re.search(r"(\d+(?:\.\d*)?) ?(bytes|KiB|MiB|GiB|TiB|PiB|EiB)", r["msg"])
    assert m, f"{spec}: the message must state the size: {r['msg']!r}"
    unit = {"bytes": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40, "PiB": 50, "EiB": 60}[m.group(2)]
    assert float(m.group(1)) * 2 ** unit >= COPY_BYTES * 0.99, r["msg"]
    assert r["vm_growth"] < GROWTH_LIMIT, f"{spec}: VmPeak grew by {r['vm_growth']} bytes"
    assert r["rss_growth"] < RSS_GROWTH_LIMIT, f"{spec}: peak RSS grew by {r['rss_growth']} bytes"


def test_broadcast_inputs_that_fit_still_work():
    """The same views, small: copied and computed like their materialised arrays."""
    rng = np.random.default_rng(0)
    x_row = rng.standard_normal(5).astype(np.float32)
    x = np.broadcast_to(x_row, (3, 4, 5))
    W, U = rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((2, 8)).astype(np.float32)
    h0 = np.zeros((3, 2), np.float32)
    got = _core.lstm_forward(x, W, U, None, h0, h0)
    want = _core.lstm_forward(np.ascontiguousarray(x), W, U, None, h0, h0)
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(g, w)
    a = np.broadcast_to(np.float32(2.0), (3, 4))
    np.testing.assert_array_equal(_core.matmul(a, W[:4]), np.ascontiguousarray(a) @ W[:4])
