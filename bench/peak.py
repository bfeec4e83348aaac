"""This CPU's arithmetic peak on the bench's threads, measured: the ceiling that
ratio targets meet once both sides run their GEMMs near it.

bench/peak.cpp (a register-only loop of independent multiply-adds per thread) is
compiled with the system's C++ compiler into a cache folder and run for about a
quarter of a second per instruction. Each thread's rate is taken over its own CPU
time, so a busy machine that time-slices the threads still gives the rate of the
cycles they ran; the peak is the sum over the threads.

    python -m bench.peak [--threads 2]

float32 is the faster of 256- and 512-bit FMAs (Zen 4 issues two 256-bit FMAs or
one 512-bit FMA per cycle); bfloat16 is VDPBF16PS where the CPU has AVX512-BF16.
x86-64 only; elsewhere, or without a compiler, measure() returns None.
"""

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from bench import env as benv

SOURCE = Path(__file__).with_name("peak.cpp")
ITERS = 30_000_000  # loop iterations per thread: ~0.25 s at 4 GHz for 16 chains


def _binary() -> Optional[Path]:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    tag = hashlib.sha256(SOURCE.read_bytes() + cxx.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"fusedlstm-peak-{tag}"
    if not out.exists():
        tmp = out.with_name(out.name + f".{os.getpid()}")
        r = subprocess.run([cxx, "-O2", "-std=c++17", "-pthread", str(SOURCE), "-o", str(tmp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"bench.peak: could not compile {SOURCE.name}: {r.stderr.strip()[:400]}")
            return None
        os.replace(tmp, out)  # atomic: concurrent benches never run a half-written binary
    return out


def _rate(binary: Path, kind: str, threads: int) -> float:
    """GFLOP/s summed over `threads` threads, each over its own CPU time."""
    r = subprocess.run([str(binary), kind, str(threads), str(ITERS)], capture_output=True, text=True, check=True)
    total = 0.0
    for line in r.stdout.splitlines():
        if line.startswith("wall"):
            continue
        cpu_s, flops = (float(v) for v in line.split())
        total += flops / cpu_s
    return total / 1e9


def measure(threads: int, repeats: int = 3) -> Optional[dict]:
    """{"float32": GFLOP/s, "bfloat16": GFLOP/s or None, "threads": n} (best of `repeats`), or None."""
    binary = _binary()
    if binary is None:
        return None
    flags = benv.cpu_flags()
    kinds = {"float32": [k for k, f in (("fma256", "fma"), ("fma512", "avx512f")) if f in flags],
             "bfloat16": ["dpbf16"] if "avx512_bf16" in flags else []}
    out = {"threads": threads, "source": f"bench/{SOURCE.name}"}
    for precision, ks in kinds.items():
        rates = [_rate(binary, k, threads) for k in ks for _ in range(repeats)]
        out[precision] = max(rates) if rates else None
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.peak", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    peak = measure(args.threads)
    if peak is None:
        print("bench.peak: not measured (needs an x86-64 CPU and a C++ compiler)")
        return
    bf16 = f"{peak['bfloat16']:.1f}" if peak["bfloat16"] else "– (no AVX512-BF16)"
    print(f"{benv.cpu_model()}, {args.threads} threads: float32 {peak['float32']:.1f} GFLOP/s, bfloat16 {bf16} GFLOP/s")


if __name__ == "__main__":
    main()
