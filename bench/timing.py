"""Interleaved timing: A B C A B C ..., each block at least `block_s` long.

Machine noise (another process waking up, frequency changes, a neighbour VM)
comes in bursts longer than one step; running the frameworks in alternating
blocks makes a burst hit all of them alike instead of whichever ran at that
moment. Every call is timed on its own, so the report's min, median and max are
per step, not per block.
"""

import gc
import math
import statistics
import time
from typing import Callable, Dict, List


def _blocks_for(seconds_per_call: float, block_s: float, max_calls: int) -> int:
    return int(min(max_calls, max(1, math.ceil(block_s / max(seconds_per_call, 1e-9)))))


def interleaved(
    calls: Dict[str, Callable[[], object]],
    *,
    block_s: float = 0.2,
    rounds: int = 5,
    warmup: int = 3,
    warmup_s: float = 2.0,
    max_calls_per_block: int = 100_000,
) -> Dict[str, List[float]]:
    """Time each callable in `rounds` interleaved blocks; returns seconds per call.

    Every callable runs `warmup` times first (caches, lazy initialisation,
    Keras's function tracing), or twice when that already took `warmup_s`. A block's call count comes from the median so
    far, re-estimated after every round, so a block lasts about `block_s`
    whatever the warm-up calls cost.
    """
    if block_s <= 0 or rounds < 1 or warmup < 1:
        raise ValueError(f"block_s > 0, rounds >= 1, warmup >= 1 expected, got {block_s}, {rounds}, {warmup}")
    times: Dict[str, List[float]] = {name: [] for name in calls}
    estimate: Dict[str, float] = {}
    for name, fn in calls.items():
        spent = last = 0.0
        for i in range(warmup):
            t0 = time.perf_counter()
            fn()
            last = time.perf_counter() - t0
            spent += last
            if i >= 1 and spent >= warmup_s:
                break
        estimate[name] = last
    gc.collect()
    perf = time.perf_counter
    for _ in range(rounds):
        for name, fn in calls.items():
            out = times[name]
            for _ in range(_blocks_for(estimate[name], block_s, max_calls_per_block)):
                t0 = perf()
                fn()
                out.append(perf() - t0)
            estimate[name] = statistics.median(out)
    return times


def summary_ms(seconds: List[float]) -> Dict[str, float]:
    ms = [s * 1e3 for s in seconds]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "n": len(ms)}


def add_kernel_timing_args(parser, rounds: int, block_s: float) -> None:
    """The options the kernel-level benches (kernels, recurrent_precision, gemm_precision) share."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--block-s", type=float, default=block_s)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write the results here")


def kernel_frameworks(args):
    """(fusedlstm._core, torch or None) with both pinned to args.threads (torch skipped by --no-torch)."""
    from fusedlstm import _core

    _core.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
    return _core, torch
