"""A/B timing of two or more builds of `_core` in one process (interleaved, medians).

    flock /tmp/fusedlstm-bench.lock python tools/ab_core.py gcc=python/fusedlstm/_core*.so \
        zig=/tmp/zig/fusedlstm/_core*.so [--configs echo,chars,large] [--threads 2] [--rounds 7]

Each build gets a private copy of the Python package (python/fusedlstm with that
`_core` in it) imported under its own name (`fusedlstm_gcc`, ...), so the builds
run the same Python code side by side and a burst of machine noise hits them
alike (bench.timing.interleaved: A B A B ... blocks). Every build trains the same
bench configuration (bench.configs) from the same weights on the same batch; the
losses of the first step are checked equal across builds to the bench's
tolerance before anything is timed, so the builds are known to compute the same
thing. Prints one line per configuration: median ms per train step for each
build and the ratio to the first.

Used to compare compilers and wheel recipes (see .ci/wheel); not part of CI.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench import configs as _configs  # noqa: E402  (the repo root goes on sys.path first)
from bench import data as _data  # noqa: E402
from bench.frameworks import keras_like  # noqa: E402
from bench.timing import interleaved  # noqa: E402


def package_copy(label: str, so_path: str, into: str):
    """Import python/fusedlstm with `so_path` as its _core, as the package `fusedlstm_<label>`."""
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
    p.add_argument("builds", nargs="+", help="LABEL=PATH-TO-_core.so (a glob is fine)")
    p.add_argument("--configs", default="echo,chars,large")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--block-s", type=float, default=0.3)
    p.add_argument("--infer", action="store_true", help="time predict_on_batch instead of train_on_batch")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="fusedlstm-ab-")
    try:
        libs = {}
        for spec in args.builds:
            label, _, pattern = spec.partition("=")
            paths = sorted(glob.glob(pattern))
            if not label.isidentifier() or len(paths) != 1:
                p.error(f"expected LABEL=PATH matching one file, got {spec!r} ({paths})")
            libs[label] = package_copy(label, paths[0], tmp)
            libs[label].set_num_threads(args.threads)
            info = libs[label].build_info()
            print(f"{label}: {paths[0]} ({info['compiler']}, isa {info['isa']}, {info['threads']} threads)")
        first = next(iter(libs.values())).build_info()
        print(f"CPU: {first['cpu']}; env FUSEDLSTM_ISA={os.environ.get('FUSEDLSTM_ISA', '(auto)')}")

        by_name = {c.name: c for c in _configs.CONFIGS}
        for cname in args.configs.split(","):
            cfg = by_name[cname]
            rng = np.random.default_rng(_data.config_seed(cfg.name, 0))
            weights = _data.model_weights(cfg, rng)
            x, y, _ = _data.batch(cfg, rng)
            models = {label: keras_like.build(lib, cfg, weights) for label, lib in libs.items()}
            if args.infer:
                calls = {label: (lambda m=m: m.predict_on_batch(x)) for label, m in models.items()}
            else:
                losses = {label: float(m.train_on_batch(x, y)) for label, m in models.items()}
                ref = next(iter(losses.values()))
                for label, loss in losses.items():
                    if not np.isclose(loss, ref, rtol=1e-4, atol=1e-6):
                        raise SystemExit(f"{cname}: {label} computes loss {loss}, the first build {ref}")
                calls = {label: (lambda m=m: m.train_on_batch(x, y)) for label, m in models.items()}
            times = interleaved(calls, block_s=args.block_s, rounds=args.rounds)
            med = {label: statistics.median(t) * 1e3 for label, t in times.items()}
            base = next(iter(med.values()))
            cols = "  ".join(f"{label} {m:8.3f} ms (x{m / base:.2f}, n={len(times[label])})"
                             for label, m in med.items())
            print(f"{cname:8s} {'predict' if args.infer else 'train'}: {cols}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
