"""Every runnable task by name, and `run_task` which configures and runs one."""

import numbers
import secrets
import time
from types import SimpleNamespace

from .addition import ADDITION
from .chars import CHARS, CHARS_SEQ
from .common import CELLS, Context
from .digitsum import DIGITSUM
from .echo import ECHO, ECHO_LONG
from .echo_sequence import ECHO_SEQUENCE
from .engine import load_engine
from .motif_order import MOTIF_ORDER
from .seq2seq import SEQ2SEQ, SEQ2SEQ_4

TASKS = {
    spec.name: spec
    for spec in (ECHO, ECHO_LONG, ECHO_SEQUENCE, SEQ2SEQ, SEQ2SEQ_4, CHARS, CHARS_SEQ, DIGITSUM, ADDITION, MOTIF_ORDER)
}

# Config keys that may be 0 (a count of "none"/"all") or need not be positive.
_NON_NEGATIVE = {"index", "check_every", "windows", "split_seed", "temperature", "max_steps", "clipnorm"}
_SWITCHES = {"reverse", "curriculum", "bag"}  # 0 or 1
_OPTIONAL_STR = {"text"}
_CHOICES = {"cell": tuple(CELLS)}


def get_task(name):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}") from None


def task_config(name, overrides=None, quick=False):
    """The task's classic (or quick) config with `overrides` applied and checked."""
    spec = get_task(name)
    cfg = dict(spec.quick if quick else spec.classic)
    for key, value in (overrides or {}).items():
        # Keys starting with "_" (a task's pass bars) are not flags.
        if key not in cfg or key.startswith("_"):
            flag = "--" + key.replace("_", "-")
            flags = ", ".join("--" + k.replace("_", "-") for k in cfg if not k.startswith("_"))
            takers = tasks_taking(key)
            where = f" (only {', '.join(takers)} take {flag})" if takers else ""
            raise ValueError(f"{flag} does not apply to {name}{where}; its flags are: {flags}")
        cfg[key] = _checked(name, key, value, cfg[key])
    return SimpleNamespace(**cfg)


def tasks_taking(key):
    """The tasks whose config has `key` (that accept its flag)."""
    return [n for n, spec in TASKS.items() if key in spec.classic and not key.startswith("_")]


def _checked(task, key, value, default):
    flag = "--" + key.replace("_", "-")
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ValueError(f"{task}: {flag} expects one of {', '.join(_CHOICES[key])}, got {value!r}")
        return value
    if key in _OPTIONAL_STR:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{task}: {flag} expects a path, got {value!r}")
        return value
    kind = int if isinstance(default, int) and not isinstance(default, bool) else float
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (kind is int and not float(value).is_integer()):
        raise ValueError(f"{task}: {flag} expects {'an integer' if kind is int else 'a number'}, got {value!r}")
    value = kind(value)
    if key in _SWITCHES:
        if value not in (0, 1):
            raise ValueError(f"{task}: {flag} expects 0 or 1, got {value}")
        return value
    low_ok = value >= 0 if key in _NON_NEGATIVE else value > 0
    if not low_ok:
        raise ValueError(
            f"{task}: {flag} expects a {'non-negative' if key in _NON_NEGATIVE else 'positive'} value, got {value}"
        )
    return value


def run_task(name, overrides=None, quick=False, engine="fusedlstm", seed=None, verbose=1, out=print):
    """Run one task; returns its TaskResult with `wall` (seconds, evaluation
    included) and `seed` set."""
    spec = get_task(name)
    cfg = task_config(name, overrides, quick)
    eng = load_engine(engine) if isinstance(engine, str) else engine
    seed = secrets.randbits(31) if seed is None else int(seed)
    eng.set_seed(seed)
    ctx = Context(eng, seed, verbose=verbose, out=out)
    out(f"== {name} ({'quick' if quick else 'classic'} configuration, engine {eng.name}, seed {seed})")
    t0 = time.perf_counter()
    result = spec.run(cfg, ctx)
    result.wall = time.perf_counter() - t0
    result.seed = seed
    return result
