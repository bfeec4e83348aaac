"""Kernel-level timings: one recurrent layer (or Conv1D) forward + backward, fusedlstm vs PyTorch.

    flock /tmp/fusedlstm-bench.lock python -m bench.kernels [--only lstm,gru,conv1d] [--rounds 7]

What is timed, per call (both sides on the same number of threads, 2 by default):
  * fusedlstm: `_core.<cell>_forward(..., training=True)` then `_core.<cell>_backward`
    with need_dx=False (the recurrent layer is the model's first layer in every
    bench config, so nothing upstream needs dx) and the weight gradients;
  * PyTorch: `nn.LSTM` / `nn.GRU` (batch_first) forward, `(y * R).sum().backward()`,
    parameter gradients set to None between calls; x does not require grad.
Inputs follow bench/configs.py: echo feeds one-hot rows (fusedlstm detects them and
takes its row-lookup path; PyTorch multiplies the one-hot matrix), chars and
chars_seq feed token ids to fusedlstm's lookup path with a (V, G) table (what an
Embedding -> RNN pair runs after the layer folds E·W, which is not timed here) and
the (B, T, 64) embedded floats to PyTorch, and also time fusedlstm on those same
dense floats ("chars_dense" rows) for a like-for-like product count.
Conv1D: `_core.conv1d_forward` + `conv1d_backward` (dx, dW, db) vs `nn.Conv1d` on
the (B, C, L) transpose (made once, outside the timing) with x requiring grad.
Medians of interleaved blocks (bench/timing.py); ratio = PyTorch / fusedlstm.
"""

import argparse
import json
import platform
import sys

import numpy as np

from bench.timing import add_kernel_timing_args, interleaved, kernel_frameworks, summary_ms

# name: (B, T, input kind, I or V, H, return_sequences)
RNN_SHAPES = {
    "echo": (1, 50, "onehot", 100, 25, False),
    "chars": (128, 40, "ids", 27, 64, False),
    "chars_dense": (128, 40, "dense", 64, 64, False),
    "chars_seq": (128, 40, "ids", 27, 256, True),
    "chars_seq_dense": (128, 40, "dense", 64, 256, True),
    "large": (64, 100, "dense", 512, 512, False),
}
EMBED = 64  # PyTorch's input width for the ids configs (the Embedding's output)
GATES = {"lstm": 4, "gru": 3}
CONV_SHAPES = {"cnn_lstm": (64, 100, 64, 64, 5)}  # B, L, C_in, filters, kernel_size


def rnn_inputs(shape, rng, cell):
    """(x, W, U, h0, dy) of one recurrent layer at a shape (B, T, kind, I or V, H, seq), float32."""
    B, T, kind, I, H, seq = shape
    G = GATES[cell] * H
    f32 = np.float32
    if kind == "ids":
        x = rng.integers(0, I, (B, T))
    elif kind == "onehot":
        x = np.eye(I, dtype=f32)[rng.integers(0, I, (B, T))]
    else:
        x = rng.standard_normal((B, T, I)).astype(f32)
    W = (rng.standard_normal((I, G)) / np.sqrt(I)).astype(f32)
    U = (rng.standard_normal((H, G)) / np.sqrt(H)).astype(f32)
    h0 = np.zeros((B, H), f32)
    dy = rng.standard_normal((B, T, H) if seq else (B, H)).astype(f32)
    return x, W, U, h0, dy


def torch_rnn_inputs(torch, cell, shape, rng):
    """(nn.LSTM/nn.GRU, x tensor, loss weights R) for the same shape (ids: the Embedding's output width)."""
    B, T, kind, I, H, seq = shape
    width = EMBED if kind == "ids" else I
    if kind == "onehot":
        x = np.eye(I, dtype=np.float32)[rng.integers(0, I, (B, T))]
    else:
        x = rng.standard_normal((B, T, width)).astype(np.float32)
    layer = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(width, H, batch_first=True)
    R = torch.from_numpy(rng.standard_normal((B, T, H) if seq else (B, H)).astype(np.float32))
    return layer, torch.from_numpy(x), R


def fused_rnn_call(core, cell, shape, rng):
    x, W, U, h0, dy = rnn_inputs(shape, rng, cell)
    seq, G, f32 = shape[5], W.shape[1], np.float32
    if cell == "lstm":
        b = np.zeros(G, f32)

        def run():
            cache = core.lstm_forward(x, W, U, b, h0, h0, return_sequences=seq, training=True)[3]
            return core.lstm_backward(cache, dy, need_dx=False)
    else:
        b = np.zeros((2, G), f32)

        def run():
            cache = core.gru_forward(x, W, U, b, h0, return_sequences=seq, training=True)[2]
            return core.gru_backward(cache, dy, need_dx=False)
    return run


def torch_rnn_call(torch, cell, shape, rng):
    seq = shape[5]
    layer, xt, R = torch_rnn_inputs(torch, cell, shape, rng)

    def run():
        for p in layer.parameters():
            p.grad = None
        y, _ = layer(xt)
        out = y if seq else y[:, -1]
        (out * R).sum().backward()
    return run


def fused_conv_call(core, shape, rng):
    B, L, C, F, K = shape
    x = rng.standard_normal((B, L, C)).astype(np.float32)
    W = (rng.standard_normal((K, C, F)) / np.sqrt(K * C)).astype(np.float32)
    b = np.zeros(F, np.float32)
    dy = rng.standard_normal((B, L, F)).astype(np.float32)

    def run():
        y = core.conv1d_forward(x, W, b, padding="same")
        return y, core.conv1d_backward(dy, x, W, use_bias=True, padding="same")
    return run


def torch_conv_call(torch, shape, rng):
    B, L, C, F, K = shape
    conv = torch.nn.Conv1d(C, F, K, padding="same")
    x = torch.from_numpy(rng.standard_normal((B, C, L)).astype(np.float32)).requires_grad_(True)
    R = torch.from_numpy(rng.standard_normal((B, F, L)).astype(np.float32))

    def run():
        x.grad = None
        for p in conv.parameters():
            p.grad = None
        (conv(x) * R).sum().backward()
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="lstm,gru,conv1d", help="comma list of lstm, gru, conv1d")
    ap.add_argument("--configs", default=",".join(RNN_SHAPES), help="comma list of RNN shapes")
    add_kernel_timing_args(ap, rounds=7, block_s=0.3)
    args = ap.parse_args(argv)
    _core, torch = kernel_frameworks(args)
    only = args.only.split(",")
    rng = np.random.default_rng(0)
    rows = []
    for cell in ("lstm", "gru"):
        if cell not in only:
            continue
        for name in args.configs.split(","):
            shape = RNN_SHAPES[name]
            calls = {"fusedlstm": fused_rnn_call(_core, cell, shape, rng)}
            if torch is not None:
                calls["torch"] = torch_rnn_call(torch, cell, shape, rng)
            rows.append((f"{cell} {name}", interleaved(calls, block_s=args.block_s, rounds=args.rounds)))
    if "conv1d" in only:
        for name, shape in CONV_SHAPES.items():
            calls = {"fusedlstm": fused_conv_call(_core, shape, rng)}
            if torch is not None:
                calls["torch"] = torch_conv_call(torch, shape, rng)
            rows.append((f"conv1d {name}", interleaved(calls, block_s=args.block_s, rounds=args.rounds)))

    info = _core.build_info()
    print(f"cpu: {info['cpu']}  isa: {info['isa']}  threads: {args.threads}  python {platform.python_version()}")
    print(f"{'row':24s} {'fusedlstm ms':>14s} {'torch ms':>10s} {'ratio':>7s}")
    out = {}
    for label, times in rows:
        f = summary_ms(times["fusedlstm"])["median"]
        t = summary_ms(times["torch"])["median"] if "torch" in times else float("nan")
        out[label] = {"fusedlstm_ms": f, "torch_ms": t}
        print(f"{label:24s} {f:14.3f} {t:10.3f} {t / f:7.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cpu": info["cpu"], "isa": info["isa"], "threads": args.threads, "rows": out}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
