"""A short soak (bench/soak.py's 30-minute run in small): 20,000 training steps whose
memory and open files stay flat after the warm-up."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench import soak  # noqa: E402

STEPS = 20_000


@pytest.mark.slow
def test_rss_and_open_files_flat_over_20000_steps():
    """A small model (one-hot T=8, V=12 -> LSTM(16) -> softmax, batch 16) for 20,000
    steps, with validation, a checkpoint rewritten and a CSV log appended every epoch
    (256 steps). RSS growth after warm-up < 1%, open files and threads constant."""
    samples = soak.run(steps=STEPS, every=200, T=8, V=12, units=16, batch_size=16, n_train=4096)
    assert samples[-1].step >= STEPS
    v = soak.verdict(samples)
    assert v.flat, f"{'; '.join(v.reasons)}; RSS samples (MiB): {[round(s.rss_mib, 1) for s in samples]}"


def test_verdict_sees_growth_and_leaked_files():
    """The criterion itself: a steady 2% climb or one more open file is not flat."""
    def samples(rss, fds):
        return [soak.Sample(i * 100, i * 1.0, r, f, 3, 0.0, 1.0) for i, (r, f) in enumerate(zip(rss, fds))]
    n = 50
    flat = samples([100.0 + 0.1 * (i % 3) for i in range(n)], [7] * n)
    assert soak.verdict(flat).flat
    climbing = samples([100.0 + 2.0 * i / n for i in range(n)], [7] * n)
    v = soak.verdict(climbing)
    assert not v.flat and "RSS grew" in v.reasons[0]
    leaking = samples([100.0] * n, [7] * (n - 5) + [8] * 5)
    v = soak.verdict(leaking)
    assert not v.flat and "open files" in v.reasons[0]
    warmup_only = samples([60.0 if i < 10 else 100.0 for i in range(n)], [7] * n)
    assert soak.verdict(warmup_only).flat, "growth inside the warm-up is not counted"
