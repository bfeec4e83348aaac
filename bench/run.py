"""The bench's command line: `python -m bench` or `python bench/run.py`.

Usage and what is measured: the docstring of bench/__init__.py (also `--help`).
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench  # noqa: E402
from bench import env as benv  # noqa: E402  (stdlib only: safe before the re-exec)

RUN_PY = os.path.abspath(__file__)
DEFAULT_FRAMEWORKS = "fusedlstm,torch,onnxruntime,keras,keras_tf"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, few repeats, no e2e (CI)")
    p.add_argument("--frameworks", default=DEFAULT_FRAMEWORKS, help=f"comma list (default {DEFAULT_FRAMEWORKS})")
    p.add_argument("--configs", default=None, help="comma list of config names (default: all)")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework and numpy (default 2)")
    p.add_argument("--out", default=None, help="output directory (default bench/results)")
    p.add_argument("--e2e", dest="e2e", action="store_true", default=None,
                   help="run the end-to-end runs (default unless --quick)")
    p.add_argument("--no-e2e", dest="e2e", action="store_false")
    p.add_argument("--e2e-only", action="store_true", help="skip the per-config timings")
    p.add_argument("--no-streaming", dest="streaming", action="store_false",
                   help="skip the streaming section (e.g. a run of a few configs only)")
    p.add_argument("--e2e-seeds", type=int, default=5, help="echo task seeds (default 5)")
    p.add_argument("--e2e-cap", type=int, default=20000, help="max fits per echo run (default 20000)")
    p.add_argument("--chars-windows", type=int, default=None, help="use only the first N windows of the sonnets")
    p.add_argument("--sonnets", default=None, help="path to sonnets.txt (default: searched, see bench/e2e.py)")
    p.add_argument("--block-ms", type=float, default=None, help="min block length (default 200; quick 20)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7; quick 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"),
                   help="float32 (default), or Keras's mixed_bfloat16 policy on every layer of ours and Keras's "
                        "models against torch.autocast(\"cpu\", dtype=torch.bfloat16); ONNX Runtime, the "
                        "streaming section and the end-to-end runs stay float32-only and are skipped")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads: expected a positive integer, got {args.threads}")
    if args.e2e_seeds < 1 or args.e2e_cap < 250:
        p.error(f"--e2e-seeds >= 1 and --e2e-cap >= 250 expected, got {args.e2e_seeds}, {args.e2e_cap}")
    if args.chars_windows is not None and args.chars_windows < 1:
        p.error(f"--chars-windows: expected a positive integer, got {args.chars_windows}")
    if args.precision != "float32":
        if args.e2e or args.e2e_only:
            p.error(f"--e2e/--e2e-only: the end-to-end runs are float32 only, got --precision {args.precision}")
        args.e2e, args.streaming = False, False
    if args.e2e is None:
        args.e2e = not args.quick
    if args.e2e_only:
        args.e2e = True
    args.block_s = (args.block_ms if args.block_ms is not None else (20.0 if args.quick else 200.0)) / 1e3
    if args.rounds is None:
        args.rounds = 2 if args.quick else 7
    if args.block_s <= 0 or args.rounds < 1:
        p.error(f"--block-ms > 0 and --rounds >= 1 expected, got {args.block_ms}, {args.rounds}")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    reexec = benv.ensure_env(args.threads, RUN_PY, argv)
    from bench import frameworks as fwmod

    try:
        args.framework_names = fwmod.parse_names(args.frameworks)
        from bench.configs import get_configs

        args.config_list = get_configs(args.configs.split(",") if args.configs else None, quick=args.quick)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.worker:
        from bench.suite import worker_main

        return worker_main(args)
    from bench.suite import run_all

    return run_all(args, reexec, argv)


if __name__ == "__main__":
    sys.exit(main())
