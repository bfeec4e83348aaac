"""fusedlstm.callbacks against Keras 3's semantics, driven by a fake model and loop.

The fake loop calls the hooks exactly as fit does (see callbacks/callback.py), so
these tests pin the callbacks' behaviour without the engine. Where keras is
installed, the same metric sequences drive Keras's own callbacks and the
decisions (stop epoch, learning rates, saved epochs) must match.
"""

import csv
import io
import math
import os
import sys

import numpy as np
import pytest

from conftest import require
from fusedlstm import callbacks as cb


class FakeOptimizer:
    def __init__(self, lr=0.01):
        self.learning_rate = lr


class FakeModel:
    """The attributes callbacks use: weights, stop_training, optimizer, save*."""

    def __init__(self, rng=None):
        rng = rng or np.random.default_rng(0)
        self.weights = [rng.standard_normal((2, 3)).astype(np.float32), np.zeros(3, np.float32)]
        self.stop_training = False
        self.optimizer = FakeOptimizer()
        self.metrics = []
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        self.saved.append(("model", path))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", path))
        with open(path, "w") as f:
            f.write("weights")


def run_fit(model, callbacks, epoch_logs, steps=3, verbose=0, batch_logs=None, on_epoch=None):
    """Drive the hooks as fit does; epoch e's weights are all filled with e."""
    cbl = cb.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=len(epoch_logs), steps=steps,
    )
    model.stop_training = False
    cbl.on_train_begin()
    logs = None
    for epoch, logs in enumerate(epoch_logs):
        cbl.on_epoch_begin(epoch)
        for step in range(steps):
            cbl.on_train_batch_begin(step)
            model.weights = [np.full_like(w, epoch) for w in model.weights]
            cbl.on_train_batch_end(step, batch_logs(epoch, step) if batch_logs else dict(logs))
        logs = dict(logs)
        cbl.on_epoch_end(epoch, logs)
        if on_epoch:
            on_epoch(epoch)
        if model.stop_training:
            break
    cbl.on_train_end(logs)
    return model.history


# ---------------------------------------------------------------- CallbackList, History


class Recorder(cb.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def __getattribute__(self, name):
        attr = object.__getattribute__(self, name)
        if name.startswith("on_") and callable(attr):
            def wrapped(*args, **kwargs):
                object.__getattribute__(self, "events").append(name)
                return attr(*args, **kwargs)
            return wrapped
        return attr


def test_callbacklist_hook_order_params_and_history():
    model = FakeModel()
    rec = Recorder()
    hist = run_fit(model, [rec], [{"loss": 1.0}, {"loss": 0.5}], steps=2)
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}
    assert rec.model is model
    one_epoch = ["on_epoch_begin"] + ["on_train_batch_begin", "on_batch_begin", "on_train_batch_end", "on_batch_end"] * 2 + ["on_epoch_end"]
    assert rec.events == ["on_train_begin"] + one_epoch * 2 + ["on_train_end"]
    assert isinstance(hist, cb.History)
    assert hist.history == {"loss": [1.0, 0.5]} and hist.epoch == [0, 1]


def test_logs_are_sorted_python_floats_and_shared_between_callbacks():
    seen = {}

    class Adds(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["types"] = {k: type(v) for k, v in logs.items()}
            seen["order"] = list(logs)
            logs["extra"] = 7.0

    model = FakeModel()
    hist = run_fit(model, [Adds()], [{"loss": np.float32(0.25), "acc": np.array(0.5), "name": "x"}])
    assert seen["order"] == ["acc", "loss", "name"]
    assert seen["types"] == {"acc": float, "loss": float, "name": str}
    # Added by a callback earlier in the list, recorded by the History after it.
    assert hist.history["extra"] == [7.0]


def test_callbacklist_flattens_and_validates():
    a, b, c = cb.Callback(), cb.Callback(), cb.Callback()
    assert cb.CallbackList([a, [b, (c,)]]).callbacks == [a, b, c]
    assert cb.CallbackList(a).callbacks == [a]
    h = cb.History()
    lst = cb.CallbackList([h], add_history=True, add_progbar=True)
    assert lst.callbacks[0] is h and len(lst.callbacks) == 2
    assert isinstance(lst.callbacks[1], cb.ProgbarLogger)
    with pytest.raises(TypeError, match="`callbacks`.*int"):
        cb.CallbackList([a, 3])
    with pytest.raises(TypeError, match="`callbacks`"):
        cb.CallbackList("history")
    with pytest.raises(RuntimeError, match="without its on_\\*_begin"):
        cb.CallbackList([a]).on_train_end()


def test_history_keeps_values_across_fits_but_restarts_epochs():
    model = FakeModel()
    h = cb.History()
    run_fit(model, [h], [{"loss": 1.0}])
    run_fit(model, [h], [{"loss": 0.5}, {"loss": 0.4}])
    assert h.history["loss"] == [1.0, 0.5, 0.4]
    assert h.epoch == [0, 1]
    assert model.history is h


# ---------------------------------------------------------------- progress bar


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progbar_verbose1_plain_stream_prints_one_line_per_epoch(capsys):
    run_fit(FakeModel(), [], [{"loss": 0.29, "acc": 0.91}] * 2, steps=32, verbose=1)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert len(lines) == 4
    assert lines[1].startswith("32/32 " + "━" * 20 + " 0s ")
    assert lines[1].endswith("/step - acc: 0.9100 - loss: 0.2900")
    assert "\x1b" not in out and "\r" not in out


def test_progbar_verbose1_terminal_redraws_in_place(monkeypatch):
    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    bar = cb.Progbar(target=4, interval=0.0)
    for step in range(1, 5):
        bar.update(step, [("loss", 1.0 / step)])
    out = tty.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n") and out.count("\n") == 1
    assert "\x1b[32m" + "━" * 10 + "\x1b[0m" in out  # half way: 10 of 20 green
    assert out.rstrip("\n").endswith("- loss: 0.2500")


def test_progbar_verbose2_and_silent(capsys):
    run_fit(FakeModel(), [], [{"loss": 0.5}, {"loss": 0.0001}], steps=5, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert lines[1].startswith("5/5 - 0s - ") and lines[1].endswith("/step - loss: 0.5000")
    assert lines[3].endswith("- loss: 1.0000e-04")
    run_fit(FakeModel(), [cb.ProgbarLogger()], [{"loss": 0.5}], steps=5, verbose=0)
    assert capsys.readouterr().out == ""


def test_progbar_unknown_target_and_bad_args(capsys):
    bar = cb.Progbar(target=None)
    bar.update(3, [("loss", 2.0)], finalize=True)
    assert "      3/Unknown" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`target`"):
        cb.Progbar(target=-1)
    with pytest.raises(ValueError, match="`verbose`"):
        cb.Progbar(target=3, verbose=3)


def test_single_epoch_has_no_epoch_header(capsys):
    run_fit(FakeModel(), [], [{"loss": 0.5}], steps=2, verbose=1)
    assert not capsys.readouterr().out.startswith("Epoch")


# ---------------------------------------------------------------- EarlyStopping


def test_early_stopping_patience_like_keras_doc():
    # Keras's docstring: monitor='loss', patience=3, no improvement -> 4 epochs.
    hist = run_fit(FakeModel(), [cb.EarlyStopping(monitor="loss", patience=3)], [{"loss": 1.0}] * 10)
    assert len(hist.history["loss"]) == 4


def test_early_stopping_restores_best_weights_and_reports(capsys):
    losses = [1.0, 0.5, 0.7, 0.8, 0.9, 0.1]
    model = FakeModel()
    es = cb.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True, verbose=1)
    hist = run_fit(model, [es], [{"loss": v} for v in losses])
    assert len(hist.history["loss"]) == 4
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.5
    assert all(np.all(w == 1) for w in model.weights)
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out and "best epoch: 2." in out


def test_early_stopping_max_mode_min_delta_baseline_start():
    acc = [0.5, 0.505, 0.509, 0.6]
    # auto -> max for accuracies; a gain below min_delta does not count.
    es = cb.EarlyStopping(monitor="val_accuracy", min_delta=0.01, patience=2)
    assert len(run_fit(FakeModel(), [es], [{"val_accuracy": a} for a in acc]).epoch) == 3
    # A plateau stops after `patience` epochs without a new best; when it also
    # fails to beat the baseline, the first epoch counts towards patience too.
    es = cb.EarlyStopping(monitor="loss", patience=2)
    assert len(run_fit(FakeModel(), [es], [{"loss": 0.5}] * 5).epoch) == 3
    es = cb.EarlyStopping(monitor="loss", baseline=0.1, patience=2)
    assert len(run_fit(FakeModel(), [es], [{"loss": 0.5}] * 5).epoch) == 2
    # Warm-up epochs are not monitored.
    es = cb.EarlyStopping(monitor="loss", patience=0, start_from_epoch=3)
    assert len(run_fit(FakeModel(), [es], [{"loss": 1.0}] * 6).epoch) == 5


def test_early_stopping_bad_args_and_missing_metric():
    with pytest.raises(ValueError, match="`mode`.*'maximum'"):
        cb.EarlyStopping(mode="maximum")
    with pytest.raises(ValueError, match="`patience`.*-1"):
        cb.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="maximized or minimized"):
        run_fit(FakeModel(), [cb.EarlyStopping(monitor="foo")], [{"foo": 1.0}])
    with pytest.warns(UserWarning, match="`val_loss` which is not available. Available metrics are: loss"):
        run_fit(FakeModel(), [cb.EarlyStopping()], [{"loss": 1.0}])


# ---------------------------------------------------------------- ModelCheckpoint


def test_checkpoint_formats_path_every_epoch(tmp_path):
    model = FakeModel()
    path = tmp_path / "sub" / "w.{epoch:02d}-{val_loss:.2f}.weights.npz"
    ck = cb.ModelCheckpoint(path, save_weights_only=True)
    run_fit(model, [ck], [{"loss": 1, "val_loss": 0.5}, {"loss": 1, "val_loss": 0.25}])
    assert [p for _, p in model.saved] == [str(tmp_path / "sub" / n) for n in ("w.01-0.50.weights.npz", "w.02-0.25.weights.npz")]
    assert {k for k, _ in model.saved} == {"weights"}


def test_checkpoint_save_best_only(tmp_path, capsys):
    model = FakeModel()
    ck = cb.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"), monitor="val_acc", save_best_only=True, verbose=1)
    run_fit(model, [ck], [{"val_acc": a} for a in (0.5, 0.4, 0.7, 0.7)])
    assert [os.path.basename(p) for _, p in model.saved] == ["m1.keras", "m3.keras"]
    assert {k for k, _ in model.saved} == {"model"}
    out = capsys.readouterr().out
    assert "val_acc improved from None to 0.50000" in out and "did not improve from 0.70000" in out


def test_checkpoint_every_n_batches(tmp_path):
    model = FakeModel()
    ck = cb.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.keras"), save_freq=2)
    run_fit(model, [ck], [{"loss": 1.0}] * 2, steps=3)
    # 6 batches, a save every 2nd one; the count runs across epochs.
    assert [os.path.basename(p) for _, p in model.saved] == ["e1b2.keras", "e2b1.keras", "e2b3.keras"]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="`save_freq`.*'batch'"):
        cb.ModelCheckpoint("x.keras", save_freq="batch")
    with pytest.raises(ValueError, match="`save_freq`.*0"):
        cb.ModelCheckpoint("x.keras", save_freq=0)
    with pytest.raises(TypeError, match="`filepath`"):
        cb.ModelCheckpoint(3)
    with pytest.raises(KeyError, match="val_acc"):
        run_fit(FakeModel(), [cb.ModelCheckpoint(str(tmp_path / "{val_acc}.keras"))], [{"loss": 1.0}])
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        run_fit(FakeModel(), [cb.ModelCheckpoint(str(tmp_path / "d"))], [{"loss": 1.0}])


# ---------------------------------------------------------------- small callbacks


def test_terminate_on_nan(capsys):
    model = FakeModel()
    hist = run_fit(
        model, [cb.TerminateOnNaN()], [{"loss": 1.0}] * 5, steps=2,
        batch_logs=lambda e, s: {"loss": math.nan if e == 1 else 1.0},
    )
    assert hist.epoch == [0, 1]
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        run_fit(FakeModel(), [cb.TerminateOnNaN(raise_error=True)], [{"loss": 1.0}], steps=2,
                batch_logs=lambda e, s: {"loss": math.inf if s == 1 else 1.0})


def test_lambda_callback():
    calls = []
    lam = cb.LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_epoch_end=lambda epoch, logs: calls.append((epoch, logs["loss"])),
        on_train_batch_end=lambda batch, logs: calls.append(batch),
        note="kept",
    )
    run_fit(FakeModel(), [lam], [{"loss": 2.0}], steps=2)
    assert calls == ["begin", 0, 1, (0, 2.0)] and lam.note == "kept"
    with pytest.raises(TypeError, match="`on_epoch_end`"):
        cb.LambdaCallback(on_epoch_end=3)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=";"))


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    run_fit(FakeModel(), [cb.CSVLogger(path, separator=";")], [{"loss": 1.5, "acc": 0.25}, {"loss": 1.0, "acc": 0.5}])
    rows = _read_csv(path)
    assert rows == [
        ["epoch", "acc", "loss", "val_acc", "val_loss"],
        ["0", "0.25", "1.5", "NA", "NA"],
        ["1", "0.5", "1.0", "NA", "NA"],
    ]
    run_fit(FakeModel(), [cb.CSVLogger(path, separator=";", append=True)], [{"loss": 0.5, "acc": 1.0}])
    rows = _read_csv(path)
    assert len(rows) == 4 and rows[-1][:3] == ["0", "1.0", "0.5"]
    with pytest.raises(ValueError, match="`separator`"):
        cb.CSVLogger(path, separator=";;")


def test_reduce_lr_on_plateau():
    model = FakeModel()
    model.optimizer.learning_rate = 1.0
    rl = cb.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    hist = run_fit(model, [rl], [{"loss": 1.0}] * 7)
    # Logged before the epoch's decision: reduce, two epochs of cooldown (the
    # second also counts towards patience), reduce again... floored at min_lr.
    assert hist.history["learning_rate"] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]
    assert model.optimizer.learning_rate == 0.2
    with pytest.raises(ValueError, match="`factor`.*1.0"):
        cb.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler(capsys):
    model = FakeModel()
    model.optimizer.learning_rate = 0.1
    hist = run_fit(model, [cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)], [{"loss": 1.0}] * 3)
    assert hist.history["learning_rate"] == [0.05, 0.025, 0.0125]
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.05." in capsys.readouterr().out
    hist = run_fit(model, [cb.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], [{"loss": 1.0}] * 2)
    assert hist.history["learning_rate"] == [0.1, 0.05]

    def broken(epoch, lr):
        raise TypeError("inside the schedule")

    # A TypeError inside a two-argument schedule is not mistaken for the old API.
    with pytest.raises(TypeError, match="inside the schedule"):
        run_fit(model, [cb.LearningRateScheduler(broken)], [{"loss": 1.0}])
    with pytest.raises(ValueError, match="should be a float"):
        run_fit(model, [cb.LearningRateScheduler(lambda e: "fast")], [{"loss": 1.0}])
    with pytest.raises(TypeError, match="`schedule`"):
        cb.LearningRateScheduler(0.1)


# ---------------------------------------------------------------- against Keras itself


def _keras_callbacks():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", extra="compare").callbacks


def _random_walk(rng, n):
    return [float(v) for v in 1.0 + np.cumsum(rng.choice([-0.02, -0.005, 0.0, 0.01, 0.03], size=n))]


@pytest.mark.keras
def test_decisions_match_keras(rng, seed):
    kcb = _keras_callbacks()
    for trial in range(20):
        losses = _random_walk(rng, 25)
        kw = dict(monitor="loss", patience=int(rng.integers(0, 4)), min_delta=float(rng.choice([0, 0.004])),
                  restore_best_weights=bool(rng.integers(2)), start_from_epoch=int(rng.integers(0, 3)),
                  baseline=None if rng.integers(2) else 0.99)
        outcomes = []
        for factory in (cb.EarlyStopping, kcb.EarlyStopping):
            es = factory(**kw)
            model = FakeModel()
            hist = run_fit(model, [es], [{"loss": v} for v in losses], steps=1)
            outcomes.append((len(hist.epoch), es.best_epoch, float(model.weights[0].flat[0])))
        assert outcomes[0] == outcomes[1], f"seed={seed} trial={trial} {kw} {losses}"

        kw = dict(monitor="loss", factor=0.5, patience=int(rng.integers(0, 3)), cooldown=int(rng.integers(0, 3)),
                  min_lr=0.1, min_delta=float(rng.choice([1e-4, 0.004])))
        lrs = []
        for factory in (cb.ReduceLROnPlateau, kcb.ReduceLROnPlateau):
            model = FakeModel()
            model.optimizer.learning_rate = 1.0
            seen = []
            run_fit(model, [factory(**kw)], [{"loss": v} for v in losses], steps=1,
                    on_epoch=lambda e: seen.append(float(model.optimizer.learning_rate)))
            lrs.append(seen)
        assert lrs[0] == lrs[1], f"seed={seed} trial={trial} {kw} {losses}"
