"""What every task shares: its description (TaskSpec), what it reports
(TaskResult), the run context, and the loop that calls fit once per sample or
sequence as the classic notebooks do."""

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from ..callbacks import Progbar
from .engine import last


@dataclass
class TaskResult:
    """The outcome of one task run.

    metric: what `value` measures ("accuracy on 100 fresh sequences").
    target: the bar as text ("= 100%"); passed is None for report-only tasks.
    steps: optimizer steps taken; seconds: training wall time (evaluation excluded).
    curve: (x, loss) points for --plot; curve_x names x.
    """

    task: str
    metric: str
    value: float
    target: str
    passed: Optional[bool]
    seconds: float
    steps: int
    unit: str = "%"
    curve: List[tuple] = field(default_factory=list)
    curve_x: str = "training steps"
    notes: List[str] = field(default_factory=list)
    model: object = field(default=None, repr=False)
    wall: float = 0.0  # the whole run, evaluation included (set by run_task)
    seed: Optional[int] = None

    @property
    def steps_per_second(self):
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def value_text(self):
        return f"{self.value:.1f}%" if self.unit == "%" else f"{self.value:.3f}"


@dataclass
class TaskSpec:
    """A runnable task: `run(cfg, ctx) -> TaskResult`.

    classic: the notebook's configuration; quick: a short run that still shows
    the task working (the `--quick` and test setting). Keys of these dicts are
    the flags the task accepts (batch_size <-> --batch-size).
    """

    name: str
    summary: str
    target: str
    classic: Dict[str, object]
    quick: Dict[str, object]
    run: Callable


class Context:
    """What a task run needs besides its config: the engine, the data rng, and
    where and how much to print."""

    def __init__(self, engine, seed, verbose=1, out=print):
        self.engine = engine
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.verbose = verbose
        self.print = out

    def adam(self, lr, clipnorm=0.0):
        """Adam(lr); clipnorm > 0 limits each variable's gradient norm (0 = no clipping)."""
        return self.engine.optimizers.Adam(learning_rate=lr, clipnorm=clipnorm or None)


def fit_loop(ctx, n_iterations, make_data, fit_one, label, after_each=None, window=100, check=None, check_every=0):
    """Call `fit_one(X, y) -> History` on fresh data up to `n_iterations` times.

    Shows a progress bar over the iterations with the mean loss and accuracy of
    the last `window` fits (each fit is a single epoch, so its History holds one
    value). With `check` and `check_every` > 0, `check()` runs after every
    `check_every` fits and training stops at the first True: train until a
    validation check passes, `n_iterations` being the budget. A fixed count
    either stops runs that would have got there a little later (the classic
    echo's 10,000 fits missed 100% on one seed in four) or wastes most of its
    time on runs that got there long before. Returns (seconds spent in fit,
    loss curve points, fits made); the checks' time is not in the seconds.
    """
    bar = Progbar(target=n_iterations, verbose=1 if ctx.verbose else 0, unit_name=label)
    losses, accs, curve = [], [], []
    fit_seconds = 0.0
    done = 0
    for i in range(n_iterations):
        X, y = make_data()
        t0 = time.perf_counter()
        hist = fit_one(X, y)
        fit_seconds += time.perf_counter() - t0
        done = i + 1
        if after_each is not None:
            after_each()
        losses.append(last(hist, "loss"))
        accs.append(last(hist, "acc", "accuracy"))
        stop = check is not None and check_every > 0 and done % check_every == 0 and check()
        if done % window == 0 or done == n_iterations or stop:
            mean_loss = float(np.mean(losses[-window:]))
            curve.append((done, mean_loss))
            bar.update(done, [("acc", float(np.mean(accs[-window:]))), ("loss", mean_loss)], finalize=stop or None)
        if stop:
            break
    return fit_seconds, curve, done


# --cell: the recurrent layer a task builds (Keras's class name by flag value).
CELLS = {"lstm": "LSTM", "gru": "GRU"}


def recurrent_layer(K, cell):
    """The engine's LSTM or GRU class for `cell` (same arguments: units, return_sequences, stateful)."""
    return getattr(K.layers, CELLS[cell])


def cell_label(cell, units):
    """'LSTM(64)' / 'GRU(64)' for the run's printed description."""
    return f"{CELLS[cell]}({units})"


def task_label(name, cell):
    """The name a result is reported under: the task, marked when it ran with a GRU."""
    return name if cell == "lstm" else f"{name} --cell {cell}"


def percent(x):
    return 100.0 * float(x)
