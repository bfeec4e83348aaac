"""Train until a validation check passes, within a budget: tasks.common.fit_loop's early stop
and the tasks that use it (echo, addition)."""

from types import SimpleNamespace

import numpy as np
import pytest

from fusedlstm.tasks import registry
from fusedlstm.tasks.common import Context, fit_loop


class _Fits:
    """A stand-in for model.fit: counts calls, returns a one-epoch History."""

    def __init__(self):
        self.calls = 0

    def __call__(self, X, y):
        self.calls += 1
        return SimpleNamespace(history={"loss": [1.0 / self.calls], "acc": [0.5]})


def _loop(budget, check=None, every=0):
    ctx = Context(engine=None, seed=0, verbose=0)
    fits = _Fits()
    seconds, curve, done = fit_loop(ctx, budget, lambda: (None, None), fits, "fit", window=10,
                                    check=check, check_every=every)
    assert done == fits.calls and seconds >= 0
    return done, curve


def test_stops_at_the_first_check_that_passes():
    calls = []

    def check():
        calls.append(len(calls))
        return len(calls) == 3  # passes at its third call

    done, curve = _loop(1000, check, every=7)
    assert done == 21 and len(calls) == 3
    assert curve[-1][0] == 21  # the curve ends where training stopped


def test_a_check_that_never_passes_runs_the_whole_budget():
    calls = []
    done, curve = _loop(50, lambda: calls.append(1) or False, every=10)
    assert done == 50 and len(calls) == 5 and curve[-1][0] == 50


def test_check_every_zero_means_no_checks():
    def check():
        raise AssertionError("not called when check_every is 0")

    assert _loop(30, check, every=0)[0] == 30
    assert _loop(30)[0] == 30


def _run(name, seed, **overrides):
    return registry.run_task(name, overrides, seed=seed, verbose=0, out=lambda *a: None)


def test_echo_stops_once_validation_is_all_right_and_is_deterministic():
    # lr 0.01 learns the echo within a few thousand fits; a fixed seed keeps the test the same
    # run each time, and the second run must repeat it exactly (same seed, same curve).
    cfg = dict(lr=0.01, examples=20000, check_every=250, val=200, eval=100)
    a = _run("echo", 5, **cfg)
    b = _run("echo", 5, **cfg)
    assert a.steps < 20000 and a.steps % 250 == 0, a.notes
    assert a.passed and a.notes == [f"{a.steps} fits"]
    assert (a.steps, a.value, a.curve) == (b.steps, b.value, b.curve)


def test_echo_without_checks_makes_every_fit(seed):
    res = _run("echo", seed, examples=300, check_every=0, eval=20)
    assert res.steps == 300 and res.curve[-1][0] == 300
    assert res.notes == ["300 fits"]


def test_echo_says_when_the_budget_ran_out_first(seed):
    res = _run("echo", seed, examples=200, check_every=100, val=50, eval=20)
    assert res.steps == 200  # 200 fits at lr 1e-3 are far from 100% on validation
    assert res.notes == ["200 fits", "validation below 100% after all 200 fits"]


def test_addition_stops_on_validation_and_counts_its_epochs():
    cfg = dict(lr=0.01, epochs=40, check_every=1, val=300, eval=300)
    res = _run("addition", 2, **cfg)
    epochs = int(res.notes[-1].split()[0])
    assert res.notes[-1] == f"{epochs} epochs" and epochs < 40
    assert res.steps == epochs * 100  # 1,000 problems per epoch in batches of 10
    assert np.isfinite(res.value) and res.passed


@pytest.mark.parametrize("task", ["echo", "addition"])
def test_check_flags_are_checked(task):
    assert registry.task_config(task, {"check_every": 0}).check_every == 0
    with pytest.raises(ValueError, match="--check-every expects a non-negative value, got -1"):
        registry.task_config(task, {"check_every": -1})
    with pytest.raises(ValueError, match="--val expects a positive value, got 0"):
        registry.task_config(task, {"val": 0})
