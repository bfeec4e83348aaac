"""GEMM speed at the LSTM's shapes, float32 against bfloat16, fusedlstm against PyTorch.

    flock /tmp/fusedlstm-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python -m bench.gemm_precision [--threads 2] [--configs large xlarge chars_seq]
        [--peak-f32 GFLOPS --peak-bf16 GFLOPS] [--json out.json]

For each configuration of bench/configs.py the products one training step
makes (see executed_flops there): the input projection X·W, the per-step
h·U (U packed once per call, as the LSTM does) and the backward's dh = dZ·Uᵀ
(packed), dU = Hᵀ·dZ, dW = Xᵀ·dZ, dX = dZ·Wᵀ, each timed in one interleaved
run (bench/timing.py) as
    f32        fusedlstm's float32 GEMM (_core.matmul; where the LSTM packs B once
               per sequence, _core.gemm_packed on a B packed before the timing)
    bf16       fusedlstm's bfloat16 level in use, no size rule (_core.gemm_bf16, or
               gemm_packed on a B packed before the timing, as for f32)
    torch_f32  torch.matmul on float32 tensors
    autocast   torch.matmul on float32 tensors under torch.autocast("cpu", bfloat16)
               (the operands are cast on every call, as ours are rounded as packed)
    torch_bf16 torch.matmul on tensors already in bfloat16 (no cast in the timing)
Reports medians in ms, GFLOP/s, bf16's speed-up over f32 and autocast, and,
the fraction of each precision's peak (given, or measured by bench/peak.py). Before timing,
each product's answers are checked against each other (bfloat16 results within
bfloat16 rounding of float32's), so a row never times a wrong computation.
--quick runs the bench's quick (millisecond) configurations.
"""

import argparse
import json
import statistics
import sys

import numpy as np

from bench import peak as bench_peak
from bench.configs import get_configs
from bench.timing import add_kernel_timing_args, interleaved, kernel_frameworks
from fusedlstm import _core


def products(cfg):
    """(name, M, N, K, trans_a, trans_b, packed) of one training step's big GEMMs."""
    B, H = cfg.batch, cfg.units
    G, TB = 4 * H, cfg.batch * cfg.steps
    out = []
    if cfg.inputs == "dense":
        I = cfg.features
        out.append(("proj X·W", TB, G, I, False, False, False))
    out += [("step h·U", B, G, H, False, False, True),
            ("step dZ·Uᵀ", B, H, G, False, True, True),
            ("dU=Hᵀ·dZ", H, G, TB, True, False, False)]
    if cfg.inputs == "dense":
        out += [("dW=Xᵀ·dZ", cfg.features, G, TB, True, False, False),
                ("dX=dZ·Wᵀ", TB, cfg.features, G, False, True, False)]
    if cfg.head == "sequence":  # TimeDistributed(Dense(C)) on every step's h
        C = cfg.classes
        out += [("head h·Wd", TB, C, H, False, False, False),
                ("head dz·Wdᵀ", TB, H, C, False, True, False),
                ("head dWd", H, C, TB, True, False, False)]
    return out


def operands(rng, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    return a, b


# bfloat16 operands carry 8 significant bits: a product of K terms lands within
# ~2^-8 of float32's, relative to the largest entry (sums of random signs cancel
# far below that).
ANSWER_TOL = 2e-2


def check_answers(name, calls):
    """Every callable's result against float32's: the timed code computes the product."""
    want = np.array(calls["f32"](), np.float64, copy=True)
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    for k, fn in calls.items():
        got = fn()
        got = np.asarray(got.float().numpy() if hasattr(got, "float") else got, np.float64)
        err = float(np.max(np.abs(got - want), initial=0.0)) / scale
        if not err <= ANSWER_TOL:
            raise AssertionError(f"{name}: {k} is {err:.3g} (relative) away from float32's product")


def bench_product(torch, rng, M, N, K, ta, tb, packed, args, name):
    a, b = operands(rng, M, N, K, ta, tb)
    out = np.empty((M, N), np.float32)
    if packed:  # the per-step products: U packed once per sequence, outside the timing
        p32, p16 = _core.pack_b(b, trans_b=tb, level="float32"), _core.pack_b(b, trans_b=tb)
        calls = {"f32": lambda: _core.gemm_packed(a, p32, trans_a=ta, out=out),
                 "bf16": lambda: _core.gemm_packed(a, p16, trans_a=ta, out=out)}
    else:
        calls = {"f32": lambda: _core.matmul(a, b, trans_a=ta, trans_b=tb, out=out),
                 "bf16": lambda: _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, out=out)}
    if torch is not None:
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        opa = (lambda x: x.t()) if ta else (lambda x: x)
        opb = (lambda x: x.t()) if tb else (lambda x: x)
        a16, b16 = ta_.to(torch.bfloat16), tb_.to(torch.bfloat16)

        def autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return torch.matmul(opa(ta_), opb(tb_))

        calls["torch_f32"] = lambda: torch.matmul(opa(ta_), opb(tb_))
        calls["autocast"] = autocast
        calls["torch_bf16"] = lambda: torch.matmul(opa(a16), opb(b16))
    check_answers(name, calls)
    times = interleaved(calls, block_s=args.block_s, rounds=args.rounds)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["large", "xlarge", "chars_seq"])
    p.add_argument("--quick", action="store_true", help="the configurations' quick sizes (a smoke run)")
    add_kernel_timing_args(p, rounds=5, block_s=0.2)
    p.add_argument("--peak-f32", type=float,
                   help="float32 peak GFLOP/s of the threads used (for the fractions; default: bench/peak.py's)")
    p.add_argument("--peak-bf16", type=float, help="bfloat16 peak GFLOP/s of the threads used (default: measured)")
    args = p.parse_args(argv)
    if args.peak_f32 is None or args.peak_bf16 is None:
        measured = bench_peak.measure(args.threads) or {}
        args.peak_f32 = args.peak_f32 or measured.get("float32")
        args.peak_bf16 = args.peak_bf16 or measured.get("bfloat16")
    _, torch = kernel_frameworks(args)
    info = _core.build_info()
    print(f"# {info['cpu']}, {args.threads} threads, isa {info['isa']}, bf16 level {info['bf16_level']}"
          + (f", torch {torch.__version__}" if torch else ""))
    rng = np.random.default_rng(0)
    rows = []
    for cfg in get_configs(args.configs, quick=args.quick):
        for name, M, N, K, ta, tb, packed in products(cfg):
            med = bench_product(torch, rng, M, N, K, ta, tb, packed, args, f"{cfg.name} {name}")
            flops = 2.0 * M * N * K
            row = {"config": cfg.name, "product": name, "M": M, "N": N, "K": K, "ms": {k: v * 1e3 for k, v in med.items()},
                   "gflops": {k: flops / v / 1e9 for k, v in med.items()}}
            rows.append(row)
            g = row["gflops"]
            line = (f"{cfg.name:9s} {name:13s} {M:5d}x{N:5d}x{K:5d}  "
                    + "  ".join(f"{k} {row['ms'][k]:8.3f} ms {g[k]:6.1f} GF/s" for k in med)
                    + f"  bf16/f32 {med['f32'] / med['bf16']:.2f}x")
            if "autocast" in med:
                line += f"  bf16/autocast {med['autocast'] / med['bf16']:.2f}x"
            if args.peak_f32:
                line += f"  f32 {g['f32'] / args.peak_f32:.0%} of peak"
            if args.peak_bf16:
                line += f"  bf16 {g['bf16'] / args.peak_bf16:.0%} of peak"
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": info, "threads": args.threads, "peak": {"float32": args.peak_f32,
                       "bfloat16": args.peak_bf16}, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
