"""The process environment the bench runs in: BLAS variables (re-exec), CPU, memory.

NumPy's OpenBLAS reads its thread count and core-type overrides once, when
numpy is first imported, so they can only be fixed by re-executing the bench
with a corrected environment before numpy is imported. Import nothing heavy
here.
"""

import ctypes
import gc
import json
import os
import re
import sys
from typing import Dict, List, Optional

REEXEC_MARK = "FUSEDLSTM_BENCH_REEXEC"
# Overrides that pin OpenBLAS to another CPU's kernels or cache size: the
# sgemm yardstick must be numpy at its best on this CPU.
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def wanted_env(threads: int) -> Dict[str, Optional[str]]:
    """name -> value the bench needs (None: must be unset)."""
    want: Dict[str, Optional[str]] = {k: None for k in BLAS_OVERRIDES}
    want.update({k: str(threads) for k in THREAD_VARS})
    return want


def ensure_env(threads: int, script: str, argv: List[str]) -> dict:
    """Re-exec `script argv` once if the environment differs from wanted_env.

    Returns what the re-exec changed ({} when none was needed), as the child
    sees it, for the report. Must run before numpy is imported.
    """
    if REEXEC_MARK in os.environ:
        return json.loads(os.environ[REEXEC_MARK])
    changes = {k: {"was": os.environ.get(k), "now": v}
               for k, v in wanted_env(threads).items() if os.environ.get(k) != v}
    if not changes:
        return {}
    env = dict(os.environ)
    for k, c in changes.items():
        if c["now"] is None:
            env.pop(k, None)
        else:
            env[k] = c["now"]
    env[REEXEC_MARK] = json.dumps(changes)
    print(f"bench: re-executing with {describe_reexec(changes)}", flush=True)
    os.execve(sys.executable, [sys.executable, script, *argv], env)
    raise AssertionError("unreachable")  # execve does not return


def describe_reexec(changes: dict) -> str:
    parts = []
    for k, c in changes.items():
        parts.append(f"{k} unset (was {c['was']})" if c["now"] is None else f"{k}={c['now']}")
    return ", ".join(parts) if parts else "no changes"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_flags() -> frozenset:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown-cpu"


# --- memory ------------------------------------------------------------------

def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    # Hand freed heap pages back to the OS, so memory an earlier framework
    # freed does not hide this one's growth in a recycled arena.
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_mib(fn) -> Optional[float]:
    """Peak RSS growth (MiB) while fn() runs: VmHWM after minus VmRSS before, with
    the high-water mark reset through /proc/self/clear_refs. None where Linux's
    /proc does not allow that."""
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    hwm = _status_kib("VmHWM")
    if before is None or hwm is None:
        return None
    return max(0, hwm - before) / 1024.0
