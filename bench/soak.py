"""Soak: a long training run whose memory and open files must stay flat.

    python -m bench.soak                      # 30 minutes, results in bench/results/soak-<cpu>.{csv,md}
    python -m bench.soak --minutes 5 --out /tmp/soak

One `fit` call trains a character-level LSTM (the chars task's shape: one-hot
windows -> LSTM -> softmax) for as long as asked, with what a real run uses:
validation every epoch, a ModelCheckpoint rewriting its file every epoch, a CSV
log. A callback samples the process every `--every` batches: resident memory
(RSS), open file descriptors, threads and the kernels' buffer cache (psutil when
installed, else /proc/self).

Flat means: after the warm-up (the first quarter of the samples: buffer caches
filled, the allocator's heap settled, which shows as a step or two of up to a
MiB), RSS grows by less than 1% to the end (the largest sample of the last 10%
against the median of the first fifth after the warm-up: a leak of r per step
shows as at least half of its total, a one-off step early on does not) and the
open-file and thread counts do not change. tests/test_soak.py runs a short
version (20,000 steps of a small model) in the normal suite.
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

RSS_GROWTH_LIMIT = 0.01  # fraction of the RSS after warm-up
WARMUP = 0.25            # fraction of the samples


# ---------------------------------------------------------------------------
# Process measurements
# ---------------------------------------------------------------------------

def _psutil_process():
    try:
        import psutil  # optional: /proc serves when it is missing
    except ImportError:
        return None
    return psutil.Process()


_PROC = _psutil_process()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    if _PROC is not None:
        return int(_PROC.memory_info().rss)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def open_files() -> int:
    """Open file descriptors of this process (sockets and pipes included)."""
    if _PROC is not None:
        return int(_PROC.num_fds())
    return len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own descriptor


def thread_count() -> int:
    if _PROC is not None:
        return int(_PROC.num_threads())
    return len(os.listdir("/proc/self/task"))


@dataclass
class Sample:
    step: int
    seconds: float
    rss_mib: float
    open_files: int
    threads: int
    buffer_cache_mib: float
    loss: float


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def _sampler(every: int, samples: List[Sample], t0: float, stop_after_steps: Optional[int],
             stop_after_seconds: Optional[float]):
    from fusedlstm import _core
    from fusedlstm.callbacks import Callback

    class ResourceSampler(Callback):
        """Samples the process every `every` batches; stops fit when the run is long enough."""

        def __init__(self):
            super().__init__()
            self.step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % every:
                return
            logs = logs or {}
            samples.append(Sample(self.step, round(time.perf_counter() - t0, 3), rss_bytes() / 2**20,
                                  open_files(), thread_count(),
                                  _core.build_info()["buffer_cache_bytes"] / 2**20,
                                  float(logs.get("loss", float("nan")))))
            done_steps = stop_after_steps is not None and self.step >= stop_after_steps
            done_time = stop_after_seconds is not None and time.perf_counter() - t0 >= stop_after_seconds
            if done_steps or done_time:
                self.model.stop_training = True

    return ResourceSampler()


def chars_like_model(T: int, V: int, units: int):
    from fusedlstm.layers import LSTM, Dense, Input
    from fusedlstm.models import Sequential
    return Sequential([Input((T, V)), LSTM(units), Dense(V, activation="softmax")])


def run(*, steps: Optional[int] = None, seconds: Optional[float] = None, every: int = 500,
        T: int = 40, V: int = 60, units: int = 128, batch_size: int = 64, n_train: int = 8192,
        files: bool = True, seed: int = 0) -> List[Sample]:
    """Trains until `steps` batches or `seconds` have passed; returns the samples."""
    if steps is None and seconds is None:
        raise ValueError("run: give steps or seconds")
    from fusedlstm.callbacks import CSVLogger, ModelCheckpoint
    from fusedlstm.optimizers import Adam
    from fusedlstm.utils import set_random_seed

    set_random_seed(seed)
    rng = np.random.default_rng(seed)
    # Text-like data: windows of a random walk over V symbols, next symbol as target.
    walk = np.cumsum(rng.integers(-2, 3, n_train + T + 512)) % V
    windows = np.lib.stride_tricks.sliding_window_view(walk, T + 1)
    eye = np.eye(V, dtype="float32")
    x, y = eye[windows[:n_train, :T]], windows[:n_train, T]
    xv, yv = eye[windows[n_train:n_train + 512, :T]], windows[n_train:n_train + 512, T]

    model = chars_like_model(T, V, units)
    model.compile(Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    samples: List[Sample] = []
    t0 = time.perf_counter()
    callbacks = [_sampler(every, samples, t0, steps, seconds)]
    with tempfile.TemporaryDirectory(prefix="fusedlstm-soak-") as tmp:
        if files:
            callbacks += [ModelCheckpoint(os.path.join(tmp, "ckpt.weights.npz"), save_weights_only=True),
                          CSVLogger(os.path.join(tmp, "log.csv"))]
        model.fit(x, y, batch_size=batch_size, epochs=10**9, validation_data=(xv, yv),
                  callbacks=callbacks, verbose=0)
    return samples


# ---------------------------------------------------------------------------
# Verdict and report
# ---------------------------------------------------------------------------

@dataclass
class Verdict:
    flat: bool
    rss_after_warmup_mib: float
    rss_end_mib: float
    rss_growth: float          # fraction
    rss_slope_mib_per_hour: float
    open_files: List[int]      # distinct counts after warm-up
    threads: List[int]
    reasons: List[str]


def verdict(samples: List[Sample], growth_limit: float = RSS_GROWTH_LIMIT) -> Verdict:
    if len(samples) < 10:
        raise ValueError(f"verdict: needs at least 10 samples, got {len(samples)}")
    k = max(1, int(len(samples) * WARMUP))
    post = samples[k:]
    tail = post[-max(1, len(post) // 10):]
    base = float(np.median([s.rss_mib for s in post[:max(1, len(post) // 5)]]))
    end = max(s.rss_mib for s in tail)
    growth = (end - base) / base
    hours = np.array([s.seconds for s in post]) / 3600
    slope = float(np.polyfit(hours, [s.rss_mib for s in post], 1)[0]) if hours[-1] > hours[0] else 0.0
    fds = sorted({s.open_files for s in post})
    threads = sorted({s.threads for s in post})
    reasons = []
    if growth >= growth_limit:
        reasons.append(f"RSS grew {growth:.2%} after warm-up ({base:.1f} -> {end:.1f} MiB), limit {growth_limit:.0%}")
    if len(fds) > 1:
        reasons.append(f"open files changed after warm-up: {fds}")
    if len(threads) > 1:
        reasons.append(f"thread count changed after warm-up: {threads}")
    return Verdict(not reasons, base, end, growth, slope, fds, threads, reasons)


def write_report(samples: List[Sample], v: Verdict, out_prefix: str, config: dict) -> None:
    with open(out_prefix + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        w.writeheader()
        for s in samples:
            w.writerow(asdict(s))
    from fusedlstm import build_info
    info = build_info()
    last = samples[-1]
    lines = [
        "# Soak run",
        "",
        f"CPU: {info['cpu']} ({info['isa']}, {info['threads']} threads), fusedlstm {info['version']} "
        f"({info['compiler']}), {time.strftime('%Y-%m-%d')}.",
        f"Run: {config}; {last.step} steps in {last.seconds / 60:.1f} min, "
        f"sampled every {samples[1].step - samples[0].step} steps ({len(samples)} samples).",
        "",
        "| | after warm-up | end | change |",
        "|---|---|---|---|",
        f"| RSS (MiB) | {v.rss_after_warmup_mib:.1f} | {v.rss_end_mib:.1f} | {v.rss_growth:+.2%} "
        f"(slope {v.rss_slope_mib_per_hour:+.2f} MiB/h) |",
        f"| open files | {v.open_files[0]} | {v.open_files[-1]} | {v.open_files[-1] - v.open_files[0]:+d} |",
        f"| threads | {v.threads[0]} | {v.threads[-1]} | {v.threads[-1] - v.threads[0]:+d} |",
        f"| kernels' buffer cache (MiB) | {samples[int(len(samples) * WARMUP)].buffer_cache_mib:.1f} | "
        f"{last.buffer_cache_mib:.1f} | |",
        f"| training loss | {samples[0].loss:.4f} (first sample) | {last.loss:.4f} | |",
        "",
        f"Verdict: {'FLAT' if v.flat else 'NOT FLAT: ' + '; '.join(v.reasons)} "
        f"(RSS growth limit {RSS_GROWTH_LIMIT:.0%}, first {WARMUP:.0%} of samples are warm-up).",
        "",
    ]
    with open(out_prefix + ".md", "w") as f:
        f.write("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=int, default=500, help="sample every N training steps")
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--out", default=None, help="output prefix (default bench/results/soak-<cpu>)")
    args = p.parse_args(argv)
    from fusedlstm import build_info
    cpu = "".join(c if c.isalnum() else "-" for c in build_info()["cpu"].lower()).strip("-")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"soak-{cpu}")
    config = {"minutes": args.minutes, "units": args.units, "T": 40, "V": 60, "batch_size": 64}
    samples = run(seconds=args.minutes * 60, every=args.every, units=args.units)
    v = verdict(samples)
    write_report(samples, v, out, config)
    print(open(out + ".md").read())
    return 0 if v.flat else 1


if __name__ == "__main__":
    sys.exit(main())
