"""Kernel-level timings of one recurrent layer at float32 and at bfloat16 products, fusedlstm vs PyTorch.

    flock /tmp/fusedlstm-bench.lock python -m bench.recurrent_precision [--cell lstm] [--rounds 5]

Rows (bench/kernels.py's shapes plus xlarge), each timed in one interleaved run:
  * train: `_core.<cell>_forward(..., training=True)` + `_core.<cell>_backward`
    (need_dx=False: the layer is the model's first, as in bench/kernels.py), at
    precision="float32" and precision="bfloat16";
  * infer: `_core.<cell>_forward(..., training=False)` at both precisions;
  * PyTorch nn.LSTM / nn.GRU (batch_first) the same way, in float32 and under
    torch.autocast("cpu", dtype=torch.bfloat16) (inference under no_grad).
Before timing, each fusedlstm bfloat16 call is checked against its float32
twin: the outputs must be close (max|a-b|/max|b| < 5e-2) and, where the size
rule (build_info()['bf16_rule']) gives some product bfloat16, not identical.
Medians of interleaved blocks (bench/timing.py); "bf16 gain" = float32 / bfloat16
time of fusedlstm; "vs autocast" = PyTorch autocast / fusedlstm bfloat16.
"""

import argparse
import json
import os
import platform
import sys

import numpy as np

from bench.kernels import GATES, RNN_SHAPES, rnn_inputs, torch_rnn_inputs
from bench.timing import add_kernel_timing_args, interleaved, kernel_frameworks, summary_ms

# name: (B, T, input kind, I or V, H, return_sequences): bench/kernels.py's rows, plus xlarge.
SHAPES = {**{n: RNN_SHAPES[n] for n in ("echo", "chars", "chars_seq", "large")},
          "xlarge": (32, 200, "dense", 1024, 1024, False)}

def fused_calls(core, cell, shape, rng, precision):
    """(train, infer) callables of fusedlstm at `precision`; each returns its arrays."""
    x, W, U, h0, dy = rnn_inputs(shape, rng, cell)
    seq = shape[5]
    G = W.shape[1]
    if cell == "lstm":
        b = np.zeros(G, np.float32)

        def fwd(training):
            return core.lstm_forward(x, W, U, b, h0, h0, return_sequences=seq, training=training,
                                     precision=precision)

        def train():
            out = fwd(True)
            return (out[0],) + core.lstm_backward(out[3], dy, need_dx=False)
    else:
        b = np.zeros((2, G), np.float32)

        def fwd(training):
            return core.gru_forward(x, W, U, b, h0, return_sequences=seq, training=training, precision=precision)

        def train():
            out = fwd(True)
            return (out[0],) + core.gru_backward(out[2], dy, need_dx=False)

    def infer():
        return fwd(False)[:1]
    return train, infer


def torch_calls(torch, cell, shape, rng, autocast):
    seq = shape[5]
    layer, xt, R = torch_rnn_inputs(torch, cell, shape, rng)

    def ctx():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)

    def train():
        for p in layer.parameters():
            p.grad = None
        with ctx():
            y, _ = layer(xt)
            out = y if seq else y[:, -1]
            loss = (out.float() * R).sum()
        loss.backward()

    def infer():
        with torch.no_grad(), ctx():
            return layer(xt)[0]
    return train, infer


def _rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def check_answers(core, cell, name, shape, f32_calls, bf16_calls):
    """bfloat16 results close to float32's, and not identical where some product pays."""
    B, T, kind, I, H, seq = shape
    G = GATES[cell] * H
    from fusedlstm import reference as ref
    # one-hot rows take the lookup path as ids do: no X·W, no dW product
    dense = kind == "dense"
    infer_pays = ref.bf16_pays(B, G, H) or (dense and ref.bf16_pays(B * T, G, I))
    train_pays = (infer_pays or ref.bf16_pays(B, H, G) or ref.bf16_pays(H, G, B * T)
                  or (dense and ref.bf16_pays(I, G, B * T)))
    for which, a_call, b_call, pays in (("train", f32_calls[0], bf16_calls[0], train_pays),
                                        ("infer", f32_calls[1], bf16_calls[1], infer_pays)):
        a, b = a_call(), b_call()
        worst = max(_rel(y, x) for x, y in zip(a, b) if x is not None)
        same = all(np.array_equal(x, y) for x, y in zip(a, b) if x is not None)
        if worst > 5e-2:
            raise SystemExit(f"{cell} {name} {which}: bfloat16 differs from float32 by {worst:.3g}")
        if pays and same:
            raise SystemExit(f"{cell} {name} {which}: bfloat16 gave float32's bits though products pay")
        if not pays and not same:
            raise SystemExit(f"{cell} {name} {which}: no product pays for bfloat16 yet the bits differ")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", choices=sorted(GATES))
    ap.add_argument("--configs", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    add_kernel_timing_args(ap, rounds=5, block_s=0.3)
    args = ap.parse_args(argv)
    _core, torch = kernel_frameworks(args)
    load_before = os.getloadavg()
    rows = {}
    for name in args.configs.split(","):
        shape = SHAPES[name]
        rng = np.random.default_rng(0)
        f32 = fused_calls(_core, args.cell, shape, rng, "float32")
        bf16 = fused_calls(_core, args.cell, shape, np.random.default_rng(0), "bfloat16")
        check_answers(_core, args.cell, name, shape, f32, bf16)
        for i, mode in enumerate(("train", "infer")):
            calls = {"f32": f32[i], "bf16": bf16[i]}
            if torch is not None:
                calls["torch_f32"] = torch_calls(torch, args.cell, shape, np.random.default_rng(1), False)[i]
                calls["torch_autocast"] = torch_calls(torch, args.cell, shape, np.random.default_rng(1), True)[i]
            times = interleaved(calls, block_s=args.block_s, rounds=args.rounds)
            rows[f"{name} {mode}"] = {k: summary_ms(v)["median"] for k, v in times.items()}
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    load_after = os.getloadavg()

    info = _core.build_info()
    print(f"cpu: {info['cpu']}  isa: {info['isa']}  bf16 level: {info['bf16_level']}  threads: {args.threads}  "
          f"cell: {args.cell}  python {platform.python_version()}")
    print(f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")
    print(f"rule: {info['bf16_rule']}")
    hdr = f"{'row':18s} {'f32 ms':>10s} {'bf16 ms':>10s} {'bf16 gain':>9s}"
    if torch is not None:
        hdr += f" {'torch f32':>10s} {'autocast':>10s} {'vs f32':>7s} {'vs autocast':>11s}"
    print(hdr)
    for label, r in rows.items():
        line = f"{label:18s} {r['f32']:10.3f} {r['bf16']:10.3f} {r['f32'] / r['bf16']:9.2f}"
        if torch is not None:
            line += (f" {r['torch_f32']:10.3f} {r['torch_autocast']:10.3f} {r['torch_f32'] / r['f32']:7.2f}"
                     f" {r['torch_autocast'] / r['bf16']:11.2f}")
        print(line)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cpu": info["cpu"], "bf16_level": info["bf16_level"], "threads": args.threads,
                       "cell": args.cell, "load_before": load_before, "load_after": load_after, "rows": rows},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
