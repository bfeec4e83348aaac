"""`fusedlstm run all`: every task in turn, then one summary table."""

import time

from .registry import TASKS, run_task


def format_table(rows):
    """rows: [(task, result text, target, wall, steps/s, verdict)] -> aligned text."""
    header = ("task", "result", "target", "wall", "steps/s", "verdict")
    table = [header] + rows
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def run_all(quick=False, engine="fusedlstm", seed=None, verbose=1, out=print, tasks=None, overrides=None):
    """Run `tasks` (all by default), each with `overrides` (flags every one of them
    takes, e.g. {"cell": "gru"}); returns (results or exceptions by name, exit code).

    The exit code is 0 when every task with a target reached it, 1 otherwise. A
    task that raises is reported in the table and the others still run.
    """
    names = list(tasks or TASKS)
    outcomes, rows = {}, []
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            res = run_task(name, overrides, quick=quick, engine=engine, seed=seed, verbose=verbose, out=out)
        except Exception as exc:  # one broken task must not hide the others' results
            outcomes[name] = exc
            rows.append((name, f"error: {type(exc).__name__}: {exc}"[:70], TASKS[name].target,
                         f"{time.perf_counter() - t0:.1f}s", "-", "ERROR"))
            out(f"!! {name} failed: {type(exc).__name__}: {exc}")
            continue
        outcomes[name] = res
        verdict = {True: "ok", False: "MISSED", None: "(report)"}[res.passed]
        text = f"{res.value_text()} {res.metric}"
        if res.notes:
            text += f" ({'; '.join(res.notes)})"
        rows.append((res.task, text, res.target, f"{res.wall:.1f}s", f"{res.steps_per_second:.0f}", verdict))
        out("")
    out(f"== summary ({'quick' if quick else 'classic'} configurations, total {time.perf_counter() - start:.0f} s)")
    out(format_table(rows))
    failed = [n for n, o in outcomes.items() if isinstance(o, Exception) or o.passed is False]
    return outcomes, (1 if failed else 0)
