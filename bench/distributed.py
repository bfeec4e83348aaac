"""Data-parallel training: measured throughput here, and a paper model across machines.

    PYTHONPATH=python python bench/distributed.py [--steps 20] [--json FILE]

Not part of `python -m bench`: it needs the `mpi` extra and launches `mpirun`.

Measured on this machine (chars models, their classic batch of 128):
  * 1 process  x 2 kernel threads  (plain python, set_num_threads(2))
  * 2 MPI ranks x 1 kernel thread  (mpirun -n 2: each rank trains on 64 of the 128)
  * 1 process  x 1 thread          (the per-core reference)
and the time of one gradient Allreduce between the 2 local ranks.

Paper model (synchronous data parallelism, one machine per rank, weak scaling: every
machine trains on the classic batch, the global batch is N times larger). A step
costs t_c (the measured single-machine step, 2 threads) plus a ring Allreduce of the
4·P-byte gradient buffer that we do not overlap with compute:

    T_ar(N) = 2(N-1)/N · 4P / bandwidth + 2(N-1) · latency

    efficiency(N) = t_c / (t_c + T_ar(N)) >= 0.8   <=>   T_ar(N) <= t_c / 4

with latency 15 µs per message at 10 Gb/s (TCP over Ethernet) and 3 µs at 100 Gb/s
(RDMA). The script prints the largest N meeting 80% for every classic model that
can be trained data-parallel (stateful ones cannot).

It runs briefly (about a minute: a few dozen steps per configuration): the machine
is shared, so treat the numbers as indicative, and rerun on an idle machine.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

LINKS = {"10 Gb/s": (10e9 / 8, 15e-6), "100 Gb/s": (100e9 / 8, 3e-6)}
EFFICIENCY = 0.8
CHARS = ("chars", "chars-seq")
# name -> classic batch size (tasks/*.py); stateful tasks are listed apart.
CLASSIC = {"echo": 1, "echo-long": 64, "digitsum": 32, "addition": 10, "chars": 128, "chars-seq": 128}
STATEFUL = ("echo-sequence", "seq2seq", "seq2seq-4")


def build(name, rng):
    """(model, x, y) of a classic task's architecture with random data of its shapes."""
    from fusedlstm import layers as L
    from fusedlstm import models

    def onehot(n, t, c):
        return np.eye(c, dtype=np.float32)[rng.integers(0, c, size=(n, t))]

    n = 4096
    if name in ("echo", "echo-long"):
        t, c, u = (5, 10, 25) if name == "echo" else (50, 100, 25)
        model = models.Sequential([L.Input(shape=(t, c)), L.LSTM(u), L.Dense(c, activation="softmax")])
        x, y = onehot(n, t, c), onehot(n, 1, c)[:, 0]
        loss = "categorical_crossentropy"
    elif name == "digitsum":
        model = models.Sequential([L.Input(shape=(3, 10)), L.LSTM(64), L.Dense(10, activation="softmax")])
        x, y = onehot(n, 3, 10), rng.integers(0, 10, size=n)
        loss = "sparse_categorical_crossentropy"
    elif name == "addition":
        model = models.Sequential([L.Input(shape=(5, 12)), L.LSTM(100), L.RepeatVector(2),
                                   L.LSTM(50, return_sequences=True),
                                   L.TimeDistributed(L.Dense(12, activation="softmax"))])
        x, y = onehot(n, 5, 12), onehot(n, 2, 12)
        loss = "categorical_crossentropy"
    elif name in CHARS:
        units = 64 if name == "chars" else 256
        body = [L.LSTM(units)] if name == "chars" else [L.LSTM(units, return_sequences=True)]
        head = L.Dense(27, activation="softmax")
        model = models.Sequential([L.Input(shape=(40,), dtype="int32"), L.Embedding(27, 64), *body,
                                   head if name == "chars" else L.TimeDistributed(head)])
        x = rng.integers(0, 27, size=(n, 40)).astype(np.int32)
        y = rng.integers(0, 27, size=n if name == "chars" else (n, 40))
        loss = "sparse_categorical_crossentropy"
    else:
        raise ValueError(f"unknown model {name!r}")
    return model, x, y, loss


def worker(args):
    """Time `steps` training steps per model; rank 0 prints one JSON line."""
    import fusedlstm
    from fusedlstm import optimizers, utils

    strategy = None
    if args.mpi:
        from fusedlstm.distributed import MPIStrategy

        strategy = MPIStrategy()
    else:
        fusedlstm.set_num_threads(args.threads)
    out = {"threads": fusedlstm.get_num_threads(), "ranks": 1 if strategy is None else strategy.size, "models": {}}
    for name in args.models.split(","):
        utils.set_random_seed(0)
        model, x, y, loss = build(name, np.random.default_rng(0))
        batch = CLASSIC[name]
        model.compile(optimizer=optimizers.Adam(1e-3), loss=loss, distribute=strategy if strategy else None)
        warm = 3 * batch
        model.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        times = []
        for i in range(args.steps):
            a = (i * batch) % (len(x) - batch)
            t0 = time.perf_counter()
            model.train_on_batch(x[a:a + batch], y[a:a + batch])
            times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        entry = {"batch": batch, "params": model.count_params(), "step_s": step, "samples_per_s": batch / step}
        if strategy is not None:
            buf = np.zeros(model.count_params() + 16, np.float32)
            ar = []
            for _ in range(max(10, args.steps)):
                t0 = time.perf_counter()
                strategy._comm.allreduce_sum(buf, "the benchmark Allreduce")
                ar.append(time.perf_counter() - t0)
            entry["allreduce_s"] = statistics.median(ar)
        out["models"][name] = entry
    if strategy is None or strategy.is_root:
        print("RESULT " + json.dumps(out), flush=True)


def _launch(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def ring_allreduce_s(params, n, link):
    bandwidth, latency = LINKS[link]
    return 2 * (n - 1) / n * 4 * params / bandwidth + 2 * (n - 1) * latency


def max_machines(step_s, params, link, limit=1 << 20):
    """Largest N with efficiency >= 80% (1 when even 2 machines fall below)."""
    budget = step_s * (1 - EFFICIENCY) / EFFICIENCY
    n = 1
    while n < limit and ring_allreduce_s(params, n + 1, link) <= budget:
        n += 1
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps per model and configuration")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--models", default=",".join(CHARS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps expects a positive integer, got {args.steps}")
    if args.worker:
        worker(args)
        return 0
    here = os.path.dirname(sys.executable)
    mpirun = shutil.which("mpirun", path=here) or shutil.which("mpirun")
    if mpirun is None:
        raise SystemExit("bench/distributed.py: no mpirun next to this Python or on PATH (pip install 'fusedlstm[mpi]')")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps)]
    runs = {
        "1 process x 2 threads": _launch(me + ["--threads", "2"], env),
        "2 ranks x 1 thread": _launch([mpirun, "-n", "2"] + me + ["--mpi"], env),
        "1 process x 1 thread": _launch(me + ["--threads", "1"], env),
    }
    classic = _launch(me + ["--threads", "2", "--models", ",".join(CLASSIC)], env)["models"]

    print("## Measured on this machine (median step, classic batch 128)\n")
    print("| model | params | " + " | ".join(f"{k}: samples/s" for k in runs) + " | 2-rank Allreduce |")
    print("|---|---:|" + "---:|" * (len(runs) + 1))
    for name in CHARS:
        cells = [f"{runs[k]['models'][name]['samples_per_s']:.0f}" for k in runs]
        ar = runs["2 ranks x 1 thread"]["models"][name]["allreduce_s"]
        print(f"| {name} | {runs['1 process x 1 thread']['models'][name]['params']} | " + " | ".join(cells)
              + f" | {ar * 1e3:.2f} ms |")
    print(f"\nthreads per rank under mpirun: {runs['2 ranks x 1 thread']['threads']}")
    print("\n## Paper model: machines at >= 80% efficiency (weak scaling, classic batch per machine)\n")
    print("| model | batch | params | bytes/step | step (1 machine) | " +
          " | ".join(f"T_ar(N=8) {k}" for k in LINKS) + " | " + " | ".join(f"max N @ {k}" for k in LINKS) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (2 * len(LINKS)))
    table = {}
    for name, m in classic.items():
        nmax = {k: max_machines(m["step_s"], m["params"], k) for k in LINKS}
        t8 = {k: ring_allreduce_s(m["params"], 8, k) for k in LINKS}
        table[name] = dict(m, max_machines=nmax, allreduce_8_s=t8)
        print(f"| {name} | {m['batch']} | {m['params']} | {4 * m['params']} | {m['step_s'] * 1e3:.2f} ms | "
              + " | ".join(f"{t8[k] * 1e3:.3f} ms" for k in LINKS) + " | "
              + " | ".join(_n(nmax[k]) for k in LINKS) + " |")
    for name in STATEFUL:
        print(f"| {name} | - | - | - | - | " + " | ".join("-" for _ in LINKS) + " | "
              + " | ".join("stateful: n/a" for _ in LINKS) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"measured": runs, "classic": table, "links": LINKS}, f, indent=1)
    return 0


def _n(n):
    return "< 2" if n < 2 else ("> 10^6" if n >= 1 << 20 else str(n))


if __name__ == "__main__":
    sys.exit(main())
