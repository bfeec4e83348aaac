"""A/B speed of two or more builds of `_core` (e.g. the g++ build vs the wheel's).

    flock /tmp/fusedlstm-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python tools/ab_builds.py gcc=python/fusedlstm/_core*.so wheel=/tmp/w/fusedlstm/_core*.so \
        [--configs echo,chars,large] [--threads 2] [--rounds 7]

    # one build, a fixed number of steps (for valgrind --tool=callgrind):
    python tools/ab_builds.py zig=/tmp/w/_core*.so --configs echo --steps 20

Each build gets a private copy of python/fusedlstm with that `_core` in it,
imported as `fusedlstm_<label>`, so all builds run the same Python code in one
process, timed in interleaved blocks (bench.timing.interleaved) so a burst of
machine noise hits them alike. Every build trains the same bench configuration
(bench.configs) from the same weights on the same batch, and the first step's
losses must agree across builds before anything is timed: the builds are known
to compute the same thing. Prints the median ms per train step of each build and
its ratio to the first build. Used to check .ci/wheel's compiler recipe; not CI.
"""

import argparse
import glob
import importlib
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import configs as _configs  # noqa: E402  (the repo root goes on sys.path first)
from bench import data as _data  # noqa: E402
from bench.frameworks import keras_like  # noqa: E402
from bench.timing import interleaved  # noqa: E402


def import_build(label: str, so_path: str, into: str):
    """python/fusedlstm with `so_path` as its _core, imported as `fusedlstm_<label>`."""
    name = f"fusedlstm_{label}"
    dest = os.path.join(into, name)
    shutil.copytree(os.path.join(ROOT, "python", "fusedlstm"), dest,
                    ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    shutil.copy(so_path, os.path.join(dest, os.path.basename(so_path)))
    if into not in sys.path:
        sys.path.insert(0, into)
    return importlib.import_module(name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("builds", nargs="+", help="LABEL=PATH-TO-_core.so (a glob matching one file)")
    p.add_argument("--configs", default="echo,chars,large")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--block-s", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=0,
                   help="run this many train steps per build and configuration, untimed (for callgrind)")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="fusedlstm-ab-")
    try:
        libs = {}
        for spec in args.builds:
            label, _, pattern = spec.partition("=")
            paths = sorted(glob.glob(pattern))
            if not label.isidentifier() or len(paths) != 1:
                p.error(f"expected LABEL=PATH matching one file, got {spec!r} ({paths})")
            libs[label] = import_build(label, paths[0], tmp)
            libs[label].set_num_threads(args.threads)
            info = libs[label].build_info()
            print(f"{label}: {paths[0]} ({info['compiler']}, isa {info['isa']}, {info['threads']} threads)")
        print(f"CPU: {next(iter(libs.values())).build_info()['cpu']}")

        by_name = {c.name: c for c in _configs.CONFIGS}
        for cname in args.configs.split(","):
            cfg = by_name[cname]
            rng = np.random.default_rng(_data.config_seed(cfg.name, 0))
            weights = _data.model_weights(cfg, rng)
            x, y, _ = _data.batch(cfg, rng)
            models = {label: keras_like.build(lib, cfg, weights) for label, lib in libs.items()}
            losses = {label: float(m.train_on_batch(x, y)) for label, m in models.items()}
            ref = next(iter(losses.values()))
            for label, loss in losses.items():
                if not np.isclose(loss, ref, rtol=1e-4, atol=1e-6):
                    raise SystemExit(f"{cname}: {label} computes loss {loss}, the first build {ref}")
            if args.steps:
                for m in models.values():
                    for _ in range(args.steps):
                        m.train_on_batch(x, y)
                print(f"{cname}: {args.steps} steps per build")
                continue
            calls = {label: (lambda m=m: m.train_on_batch(x, y)) for label, m in models.items()}
            times = interleaved(calls, block_s=args.block_s, rounds=args.rounds)
            med = {label: statistics.median(t) * 1e3 for label, t in times.items()}
            base = next(iter(med.values()))
            cols = "  ".join(f"{label} {m:8.3f} ms (x{m / base:.2f}, n={len(times[label])})"
                             for label, m in med.items())
            print(f"{cname:8s} train step: {cols}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
