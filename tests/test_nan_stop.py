"""TerminateOnNaN: a non-finite loss or gradient stops fit, naming the epoch and batch,
and the bad update is never applied (weights and optimizer state stay those of the
last finite step). Without the callback fit behaves as Keras does (the step applies).
"""

import math

import numpy as np
import pytest

from fusedlstm.callbacks import LambdaCallback, TerminateOnNaN
from fusedlstm.layers import LSTM, Dense, Input
from fusedlstm.models import Sequential
from fusedlstm.optimizers import SGD, Adam
from fusedlstm.utils import set_random_seed


def _record(model):
    """A callback keeping (epoch, batch, loss, weights, iterations) after every batch."""
    rows, epoch = [], [0]

    def end(batch, logs):
        rows.append((epoch[0], batch, logs["loss"], model.get_weights(), model.optimizer.iterations))

    cb = LambdaCallback(on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e), on_train_batch_end=end)
    return rows, cb


def _last_good(rows):
    good = [r for r in rows if math.isfinite(r[2])]
    return good[-1], rows[len(good)]


def test_diverging_lstm_stops_with_last_finite_weights(rng, capsys, seed):
    x = rng.standard_normal((64, 5, 3)).astype("float32") * 100
    y = rng.integers(0, 4, 64)
    set_random_seed(seed)
    m = Sequential([Input((5, 3)), LSTM(8, activation="linear"), Dense(4, activation="softmax")])
    m.compile(SGD(1e20), "sparse_categorical_crossentropy")  # overflows within a few steps
    rows, rec = _record(m)
    stop = TerminateOnNaN()
    hist = m.fit(x, y, batch_size=8, epochs=6, verbose=0, callbacks=[stop, rec])
    good, bad = _last_good(rows)
    assert rows[-1] is bad, f"training went on after the bad batch (seed {seed})"
    assert stop.stopped_at == (bad[0] + 1, bad[1]) and m.stop_training
    out = capsys.readouterr().out
    assert f"Batch {bad[1]}: Invalid loss, terminating training (epoch {bad[0] + 1}, batch {bad[1]}" in out
    assert "was not applied" in out
    assert m.optimizer.iterations == good[4] == bad[4]
    for a, b in zip(m.get_weights(), good[3]):
        assert np.array_equal(a, b)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    assert len(hist.epoch) == bad[0] + 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_diverging_regression_raise_error_names_epoch_and_batch(rng, seed):
    x = rng.standard_normal((64, 4)).astype("float32") * 10
    y = rng.standard_normal((64, 1)).astype("float32") * 1e3
    set_random_seed(seed)
    m = Sequential([Input((4,)), Dense(8), Dense(1)])
    m.compile(SGD(1.0), "mse")
    rows, rec = _record(m)
    with pytest.raises(RuntimeError, match=r"NaN or Inf loss encountered at batch \d+ \(epoch \d+, batch \d+\)") as info:
        m.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[rec, TerminateOnNaN(raise_error=True)])
    good, bad = _last_good(rows)
    assert f"(epoch {bad[0] + 1}, batch {bad[1]})" in str(info.value), f"seed {seed}"
    for a, b in zip(m.get_weights(), good[3]):
        assert np.array_equal(a, b)
    assert m._skip_nonfinite is False, "the guard must end with fit"


def _inject_nan_gradient(model, at_step):
    """Make the gradient of the `at_step`-th training step (1-based) NaN, its loss finite."""
    real = model._forward_backward
    count = [0]

    def forward_backward(*args, **kwargs):
        store, total, *rest = real(*args, **kwargs)
        count[0] += 1
        if count[0] == at_step:
            store.grad[3] = np.nan
        return (store, total, *rest)

    model._forward_backward = forward_backward


def test_non_finite_gradient_with_finite_loss_keeps_adam_state(rng, capsys):
    x, y = rng.standard_normal((40, 4, 3)).astype("float32"), rng.integers(0, 2, 40)
    m = Sequential([Input((4, 3)), LSTM(5), Dense(2, activation="softmax")])
    m.compile(Adam(0.01), "sparse_categorical_crossentropy")
    snap = {}
    keep = LambdaCallback(on_train_batch_end=lambda b, logs: snap.update(
        w=m.get_weights(), slots=[s.copy() for s in m.optimizer.get_state()["slots"]]) if not m._step_skipped else None)
    _inject_nan_gradient(m, at_step=5 + 3)  # 5 batches per epoch: epoch 2, batch 2
    m.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[keep, TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "(epoch 2, batch 2; the gradient is not finite)" in out
    assert m.optimizer.iterations == 7
    for a, b in zip(m.get_weights(), snap["w"]):
        assert np.array_equal(a, b)
    for a, b in zip(m.optimizer.get_state()["slots"], snap["slots"]):
        assert np.array_equal(a, b) and np.isfinite(a).all()


def test_without_terminate_on_nan_the_step_applies_as_in_keras(rng):
    x, y = rng.standard_normal((16, 4, 3)).astype("float32"), rng.integers(0, 2, 16)
    m = Sequential([Input((4, 3)), LSTM(5), Dense(2, activation="softmax")])
    m.compile(SGD(0.1), "sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[TerminateOnNaN()])
    _inject_nan_gradient(m, at_step=1)
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert m.optimizer.iterations == 4
    assert not all(np.isfinite(w).all() for w in m.get_weights())
