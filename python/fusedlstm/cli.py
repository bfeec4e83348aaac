"""The `fusedlstm` command: run the classic LSTM tasks, print build info.

    fusedlstm run echo [--units 25 --examples 10000 ...]
    fusedlstm run all --quick
    fusedlstm run chars --cell gru      (chars, chars-seq, seq2seq, seq2seq-4; `run all --cell gru` runs those)
    fusedlstm list
    fusedlstm info

Bad flags, missing files and missing optional extras end with one line on
stderr and exit code 2; a task that fails while running ends with one line and
exit code 1 (FUSEDLSTM_DEBUG=1 shows the traceback). `run` exits 1 when a task
misses its target.
"""

import argparse
import os
import sys

from . import _core
from .distributed.cli import DISTRIBUTE_CHOICES, DISTRIBUTE_HELP, setup_run
from .tasks import registry
from .tasks.engine import EngineUnavailable, load_engine
from .tasks import plotting
from .tasks.runall import run_all

__all__ = ["main"]

# flag -> (type, help); each task accepts the flags whose key is in its config.
TASK_FLAGS = {
    "length": (int, "sequence length"),
    "features": (int, "number of distinct values (one-hot width)"),
    "index": (int, "echo: the index to echo"),
    "window": (int, "window length"),
    "n-out": (int, "seq2seq: values to echo per window"),
    "cell": (str, "chars, chars-seq, seq2seq(-4): the recurrent layer, lstm (default) or gru (GRU(units) in "
                  "place of each LSTM(units), same sizes and training)"),
    "units": (int, "LSTM units (the first LSTM's)"),
    "units2": (int, "addition: units of the decoder LSTM"),
    "embed": (int, "chars: embedding width"),
    "epochs": (int, "epochs"),
    "examples": (int, "echo: most fits (fewer once the validation check passes); addition: problems per epoch"),
    "sequences": (int, "sequences to train on (one fit each)"),
    "batch-size": (int, "batch size"),
    "lr": (float, "Adam learning rate"),
    "eval": (int, "fresh examples/sequences to evaluate on"),
    "check-every": (int, "fits/epochs between validation checks; training stops at the first that passes "
                         "(0 = no checks: the whole budget)"),
    "val": (int, "fresh examples/sequences in the validation check (drawn before training)"),
    "val-passes": (int, "echo: perfect validation checks in a row that stop training"),
    "time-budget": (float, "echo-long: seconds of training"),
    "max-steps": (int, "echo-long: stop after this many steps too (0 = the time budget only)"),
    "clipnorm": (float, "echo-long: Adam's clipnorm, each gradient's norm limit (0 = no clipping)"),
    "chunk": (int, "echo-long: batches per fit call"),
    "reverse": (int, "echo-long: 1 = read the sequence backwards (go_backwards)"),
    "curriculum": (int, "echo-long: 1 = start short, double the length once learnt"),
    "temperature": (float, "chars: sampling temperature (0 = greedy)"),
    "sample": (int, "chars: characters sampled after each epoch"),
    "windows": (int, "chars: train on the first N windows only (0 = all)"),
    "text": (str, "chars: a UTF-8 text file instead of the sonnets"),
    "digits": (int, "digitsum: digits per number"),
    "terms": (int, "addition: numbers per problem"),
    "largest": (int, "addition: largest term"),
    "symbols": (int, "motif-order: alphabet size (one-hot width)"),
    "filters": (int, "motif-order: Conv1D filters"),
    "bag": (int, "motif-order: 1 = the order-blind baseline (Conv1D + GlobalMaxPooling1D, no LSTM)"),
}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(message)


def build_parser():
    parser = _Parser(prog="fusedlstm", description="Keras-compatible LSTMs on fused C++ kernels.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    run = sub.add_parser("run", help="train a classic task (or 'all') and report the result")
    run.add_argument("task", help="a task name (see `fusedlstm list`) or 'all'")
    # Measured (docs/results.md): `run all --quick --seed 7`, 2026-12-05, AMD EPYC, 2 cores at load 14.
    run.add_argument("--quick", action="store_true",
                     help="the short configuration: `run all --quick` measured 85 s of CPU time, 4.3 min wall "
                          "on a busy 2-core machine, two thirds of it in seq2seq-4 and chars-seq")
    run.add_argument("--seed", type=int, help="seed for data and weights (random and printed if absent)")
    run.add_argument("--threads", type=int, help="threads for the kernels")
    run.add_argument("--engine", choices=("fusedlstm", "keras"), default="fusedlstm",
                     help="train with fusedlstm (default) or the same script on Keras")
    run.add_argument("--verbose", type=int, choices=(0, 1), default=1, help="0: results only")
    run.add_argument("--plot", metavar="FILE.png", help="save the training-loss curve (needs matplotlib)")
    run.add_argument("--save", metavar="FILE", help="save the trained weights (model.save_weights)")
    run.add_argument("--distribute", choices=DISTRIBUTE_CHOICES, default="auto", help=DISTRIBUTE_HELP)
    run.add_argument("--dtype-policy", choices=("float32", "mixed_bfloat16"), default=None,
                     help="the global dtype policy the task's model is built under (Keras's "
                          "mixed_precision.set_global_policy; default float32)")
    for flag, (kind, text) in TASK_FLAGS.items():
        run.add_argument("--" + flag, type=kind, default=None, help=text)
    sub.add_parser("list", help="list the tasks and their targets")
    sub.add_parser("info", help="print the build: ISA in use, threads, compiler")
    return parser


def _writable_target(flag, path):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CliError(f"{flag} {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory")


def _check_text(path, window):
    try:
        with open(path, encoding="utf-8") as f:
            n = len(f.read())
    except FileNotFoundError:
        raise CliError(f"--text {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"--text {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CliError(f"--text {path}: cannot read it ({exc.strerror or exc})") from None
    if n <= window:
        raise CliError(f"--text {path}: {n} characters, need more than the window of {window}")


def _set_threads(engine, n):
    if n is None:
        return
    if n < 1:
        raise CliError(f"--threads expects a positive integer, got {n}")
    if engine == "keras":
        import torch  # optional dependency: only the keras engine (the compare extra) runs on it

        torch.set_num_threads(n)
    else:
        _core.set_num_threads(n)


def _cmd_run(args, out):
    overrides = {
        flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
        for flag in TASK_FLAGS
        if getattr(args, flag.replace("-", "_")) is not None
    }
    tasks = None  # run all: every task
    if args.task == "all":
        for flag in ("plot", "save"):
            if getattr(args, flag):
                raise CliError(f"--{flag} applies to a single task, not to 'run all'")
        others = [k for k in overrides if k != "cell"]
        if others:
            raise CliError(
                "'run all' runs every task at its classic (or --quick) configuration; task flags such as "
                f"--{others[0].replace('_', '-')} apply to a single task"
            )
        if overrides:  # `run all --cell gru`: every task that has that choice
            tasks = registry.tasks_taking("cell")
            try:
                for name in tasks:
                    registry.task_config(name, overrides, quick=args.quick)
            except ValueError as exc:
                raise CliError(str(exc)) from None
    else:
        try:
            cfg = registry.task_config(args.task, overrides, quick=args.quick)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if getattr(cfg, "text", None) is not None:
            _check_text(cfg.text, cfg.window)
    if args.plot:
        if not plotting.plotting_available():
            raise CliError(plotting.PLOT_HINT)
        _writable_target("--plot", args.plot)
    if args.save:
        _writable_target("--save", args.save)
    _set_threads(args.engine, args.threads)
    try:
        # Under mpirun: one seed for all ranks, and only rank 0 prints and writes files.
        out = setup_run(args, out)
    except (ImportError, ValueError) as exc:
        raise CliError(str(exc)) from None
    try:
        engine = load_engine(args.engine)
    except EngineUnavailable as exc:
        raise CliError(str(exc)) from None
    if args.dtype_policy is None:
        return _run_engine(args, engine, tasks, overrides, out)
    # The engine's own global policy (fusedlstm's or Keras's), restored afterwards.
    before = engine.mixed_precision.global_policy()
    engine.mixed_precision.set_global_policy(args.dtype_policy)
    out(f"dtype policy: {args.dtype_policy} ({args.engine})")
    try:
        return _run_engine(args, engine, tasks, overrides, out)
    finally:
        engine.mixed_precision.set_global_policy(before)


def _run_engine(args, engine, tasks, overrides, out):
    if args.task == "all":
        _, code = run_all(quick=args.quick, engine=engine, seed=args.seed, verbose=args.verbose, out=out,
                          tasks=tasks, overrides=overrides)
        return code
    result = registry.run_task(args.task, overrides, quick=args.quick, engine=engine, seed=args.seed,
                               verbose=args.verbose, out=out)
    verdict = {True: "target reached", False: "TARGET MISSED", None: "no target"}[result.passed]
    out(
        f"== {result.task}: {result.value_text()} {result.metric} (target {result.target}: {verdict}); "
        f"training {result.seconds:.1f} s, {result.steps_per_second:.0f} steps/s, wall {result.wall:.1f} s"
    )
    for note in result.notes:
        out(f"   {note}")
    if args.save:
        result.model.save_weights(args.save)
        out(f"weights saved to {args.save}")
    if args.plot:
        plotting.plot_result(result, args.plot)
        out(f"loss curve saved to {args.plot}")
    return 1 if result.passed is False else 0


def _cmd_list(out):
    width = max(map(len, registry.TASKS))
    for name, spec in registry.TASKS.items():
        out(f"{name:<{width}}  {spec.summary}  [target: {spec.target}]")
    return 0


def _cmd_info(out):
    for key, value in _core.build_info().items():
        out(f"{key}: {value}")
    return 0


def main(argv=None):
    """Entry point of the `fusedlstm` script; returns the exit code."""
    def out(text=""):
        print(text, flush=True)

    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return _cmd_run(args, out)
        if args.command == "list":
            return _cmd_list(out)
        return _cmd_info(out)
    except CliError as exc:
        print(f"fusedlstm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fusedlstm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("FUSEDLSTM_DEBUG"):
            raise
        print(f"fusedlstm: error: {type(exc).__name__}: {exc} (FUSEDLSTM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
