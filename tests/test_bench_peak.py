"""bench/peak.py: the CPU's measured arithmetic peak, the ceiling the bench reports
for inference ratios. Its figures must be those of the instructions it names."""

import os
import platform
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `bench` lives at the repo root, beside tests/

from bench import env, peak  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not shutil.which("g++"),
                                reason="bench/peak.cpp is x86-64 code built with the system's g++")


def test_peak_is_measured_for_the_instructions_the_cpu_has(monkeypatch):
    monkeypatch.setattr(peak, "ITERS", 2_000_000)
    one = peak.measure(1, repeats=1)
    assert one["threads"] == 1 and one["float32"] > 1.0
    if "avx512_bf16" in env.cpu_flags():
        # VDPBF16PS does twice an FMA's multiply-adds per lane at the same issue rate
        # where it exists at all: never less than the float32 rate.
        assert one["bfloat16"] > one["float32"]
    else:
        assert one["bfloat16"] is None


def test_rate_sums_each_threads_own_cpu_time(monkeypatch, tmp_path):
    # Two threads of which one was time-sliced to half speed: the rate counts the
    # cycles each ran, not the wall time.
    fake = tmp_path / "peak"
    fake.write_text("#!/bin/sh\nprintf '0.5 1.0e9\\n1.0 1.0e9\\nwall 1.0\\n'\n")
    fake.chmod(0o755)
    assert peak._rate(fake, "fma512", 2) == pytest.approx(2.0 + 1.0)
