"""How often a task reaches its target: run it over seeds, print each seed's result and a summary.

    nice -n 10 python tools/seed_success.py echo [--seeds 0-19] [--quick] [--set examples=20000 ...]

Each seed runs in this process through `tasks.registry.run_task` (what `fusedlstm run <task>
--seed N` runs, without starting a process per seed), one after the other. Prints, per seed:
the metric, whether the target was reached, training seconds and wall seconds (evaluation
included); then successes/N, the median and worst metric, the median and worst wall time, the
CPU and the date, and one markdown row for docs/results.md. Wall times depend on the machine's
load; the results do not (same seed, same curve). Not CI: a sweep of 20 seeds takes minutes to
an hour per task.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, ROOT)  # bench.env: the CPU's name, as the bench reports it

from bench.env import cpu_model  # noqa: E402
from fusedlstm import _core  # noqa: E402  (python/ goes on sys.path first)
from fusedlstm.tasks import registry  # noqa: E402


def parse_seeds(text):
    """'0-19' or '0,3,5' or '0-4,9' -> a list of ints."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return seeds


def parse_override(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set {key}: expects a number, got {value!r}") from None
    return key.replace("-", "_"), int(number) if number.is_integer() and "." not in value else number


def summarize(results):
    """(successes, runs, median metric, worst metric, median wall, worst wall) of TaskResults."""
    values = [r.value for r in results]
    # A loss is better low, a percentage high: the worst is the other end.
    worst = max(values) if results[0].unit == "loss" else min(values)
    walls = [r.wall for r in results]
    ok = sum(1 for r in results if r.passed)
    return ok, len(results), statistics.median(values), worst, statistics.median(walls), max(walls)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    parser.add_argument("--seeds", default="0-19", help="e.g. 0-19 (default) or 0,5,7")
    parser.add_argument("--quick", action="store_true", help="the --quick configuration")
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="a task flag's value, e.g. --set batch_size=8 (repeatable)")
    args = parser.parse_args(argv)
    overrides = dict(args.set)
    registry.task_config(args.task, overrides, quick=args.quick)  # bad flags fail before any run
    seeds = parse_seeds(args.seeds)
    label = f"{args.task} ({'quick' if args.quick else 'default'}" + \
        "".join(f", {k}={v}" for k, v in overrides.items()) + ")"
    print(f"{label}: seeds {args.seeds}; {cpu_model()}, {_core.build_info().get('isa', '?')}, "
          f"{os.cpu_count()} cores", flush=True)
    results = []
    start = time.perf_counter()
    for seed in seeds:
        res = registry.run_task(args.task, overrides, quick=args.quick, seed=seed, verbose=0, out=lambda *a: None)
        results.append(res)
        verdict = {True: "ok", False: "MISSED", None: "(report)"}[res.passed]
        notes = f"  {'; '.join(res.notes)}" if res.notes else ""
        print(f"seed {seed:3d}: {res.value_text():>8}  {verdict:<8} steps {res.steps:7d}  "
              f"train {res.seconds:7.1f} s  wall {res.wall:7.1f} s{notes}", flush=True)
    ok, n, med, worst, med_wall, max_wall = summarize(results)
    fmt = (lambda v: f"{v:.3f}") if results[0].unit == "loss" else (lambda v: f"{v:.1f}%")
    date = datetime.date.today().isoformat()
    print(f"== {label}: {ok}/{n} reached {results[0].target}; metric median {fmt(med)}, worst {fmt(worst)}; "
          f"wall median {med_wall:.1f} s, worst {max_wall:.1f} s; sweep {time.perf_counter() - start:.0f} s; {date}")
    print(f"| {label} | {ok}/{n} | {fmt(med)} | {fmt(worst)} | {med_wall:.1f} s | {max_wall:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
