"""How closely mixed_bfloat16 training tracks float32, for fusedlstm and for Keras (issue 22).

    KERAS_BACKEND=torch python tools/mixed_tracking.py [--epochs 3] [--units 64] [--windows N] [--libs fusedlstm,keras]

The bench's chars model (Embedding(27, 64) -> LSTM(units) -> Dense(27, softmax), sparse
categorical cross-entropy, Keras's Adam) is built four times from the same Keras-initialised
weights: by each library at float32 and under Keras's mixed_bfloat16 policy on every layer
(bench/frameworks/keras_like.build, the code both libraries run). Each trains with
`fit(shuffle=False)` on the same sonnet windows, so the four runs see the same batches in the
same order; the table gives every epoch's loss and how far the mixed run lands from its own
library's float32 run (relative difference). Keras computes whole layers in bfloat16; fusedlstm
rounds only the GEMM operands. Not CI: a few minutes (Keras's share dominates).
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "torch")

from bench import data  # noqa: E402
from bench.e2e import CHARS, char_windows, find_sonnets  # noqa: E402
from bench.env import cpu_model  # noqa: E402
from bench.frameworks import keras_like  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def load_lib(name, threads):
    if name == "keras":
        import keras
        import torch

        torch.set_num_threads(threads)
        return keras
    import fusedlstm
    import fusedlstm.layers  # noqa: F401
    import fusedlstm.models  # noqa: F401
    import fusedlstm.optimizers  # noqa: F401

    fusedlstm.set_num_threads(threads)
    return fusedlstm


def train(lib, cfg, weights, x, y, epochs, precision):
    model = keras_like.build(lib, cfg, weights, precision)
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=cfg.batch, epochs=epochs, shuffle=False, verbose=0)
    return [float(v) for v in hist.history["loss"]], time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--units", type=int, default=CHARS.units)
    p.add_argument("--windows", type=int, default=None, help="the first N sonnet windows (default: all)")
    p.add_argument("--libs", default="fusedlstm,keras")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = find_sonnets(None)
    if path is None:
        p.error("the sonnets text was not found (FUSEDLSTM_SONNETS=path)")
    with open(path, encoding="utf-8") as f:
        x, y = char_windows(f.read(), CHARS.steps)
    if args.windows:
        x, y = x[:args.windows], y[:args.windows]
    cfg = dataclasses.replace(CHARS, units=args.units)
    weights = data.model_weights(cfg, np.random.default_rng(args.seed))
    print(f"chars model LSTM({cfg.units}), {len(x)} windows of {cfg.steps}, batch {cfg.batch}, "
          f"{args.epochs} epochs; {cpu_model()}, {args.threads} threads")
    rows = []
    for name in args.libs.split(","):
        lib = load_lib(name, args.threads)
        losses = {}
        for precision in PRECISIONS:
            losses[precision], secs = train(lib, cfg, weights, x, y, args.epochs, precision)
            print(f"{name:9s} {precision:15s} {secs:7.1f} s  " + "  ".join(f"{v:.4f}" for v in losses[precision]),
                  flush=True)
        rel = [abs(m - f) / f for m, f in zip(losses["mixed_bfloat16"], losses["float32"])]
        rows.append((name, losses, rel))
    print("\n| library | epoch | float32 loss | mixed_bfloat16 loss | relative difference |\n|---|---|---|---|---|")
    for name, losses, rel in rows:
        for e, (f, m, r) in enumerate(zip(losses["float32"], losses["mixed_bfloat16"], rel), 1):
            print(f"| {name} | {e} | {f:.4f} | {m:.4f} | {100 * r:.2f}% |")


if __name__ == "__main__":
    main()
