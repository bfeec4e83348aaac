"""Ctrl-C (SIGINT) during fit / train_on_batch: stop at a step boundary, never mid-update.

In-process tests deliver SIGINT with signal.raise_signal at chosen points (inside a
callback, inside the optimizer update, during validation); the subprocess tests send
a real SIGINT to a script looping over fit calls and time how long it takes to stop.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import package_parent

from fusedlstm import interrupt
from fusedlstm.callbacks import Callback, LambdaCallback
from fusedlstm.layers import LSTM, Dense, Input
from fusedlstm.models import Sequential
from fusedlstm.utils import set_random_seed

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [package_parent(), os.environ.get("PYTHONPATH", "")]))


def _model(seed=0):
    set_random_seed(seed)
    m = Sequential([Input((4, 3)), LSTM(5), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _data(rng):
    return rng.standard_normal((40, 4, 3)).astype("float32"), rng.integers(0, 2, 40)


class Recorder(Callback):
    """Weights after every batch; sends SIGINT at chosen (epoch, batch) points."""

    def __init__(self, at=(), times=1):
        super().__init__()
        self.at, self.times = set(at), times
        self.weights, self.epoch = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(self.model.get_weights())
        if (self.epoch, batch) in self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_sigint_in_a_callback_stops_after_that_batch(rng):
    x, y = _data(rng)
    m = _model()
    rec = Recorder(at={(1, 2)})
    with pytest.raises(KeyboardInterrupt, match=r"after epoch 2, batch 2; the model holds the weights"):
        m.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[rec])
    assert len(rec.weights) == 5 + 3 == m.optimizer.iterations
    assert _same(rec.weights[-1], m.get_weights())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # the model trains on normally afterwards, and Ctrl-C outside fit is Python's again
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_sigint_inside_the_update_waits_for_the_step_to_complete(rng):
    x, y = _data(rng)
    ref, m = _model(), _model()
    ref.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 5 complete steps
    real = m.optimizer.apply_flat
    calls = []

    def apply_with_sigint(w, g, segments=()):
        calls.append(1)
        if len(calls) == 5:
            signal.raise_signal(signal.SIGINT)  # lands between the clip and the kernel call
        real(w, g, segments)

    m.optimizer.apply_flat = apply_with_sigint
    with pytest.raises(KeyboardInterrupt, match="after epoch 1, batch 4"):
        m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert m.optimizer.iterations == 5 and _same(ref.get_weights(), m.get_weights())


def test_train_on_batch_finishes_its_update_then_raises(rng):
    x, y = _data(rng)
    ref, m = _model(), _model()
    ref.train_on_batch(x, y)
    real = m.optimizer.apply_flat

    def apply_with_sigint(w, g, segments=()):
        signal.raise_signal(signal.SIGINT)
        real(w, g, segments)

    m.optimizer.apply_flat = apply_with_sigint
    with pytest.raises(KeyboardInterrupt, match="at the end of the call"):
        m.train_on_batch(x, y)
    assert m.optimizer.iterations == 1 and _same(ref.get_weights(), m.get_weights())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_during_validation_stops_before_the_epoch_ends(rng):
    x, y = _data(rng)
    m = _model()
    ended = []
    hits = LambdaCallback(on_test_batch_end=lambda b, logs: b == 1 and signal.raise_signal(signal.SIGINT),
                          on_epoch_end=lambda e, logs: ended.append(e))
    with pytest.raises(KeyboardInterrupt, match="during validation batch 1"):
        m.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), verbose=0, callbacks=[hits])
    assert ended == [] and m.optimizer.iterations == 5


def test_second_sigint_outside_a_step_raises_at_once(rng):
    x, y = _data(rng)
    m = _model()
    after = []
    rec = Recorder(at={(0, 1)}, times=2)
    tail = LambdaCallback(on_train_batch_end=lambda b, logs: after.append(b))
    with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
        m.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[rec, tail])
    assert after == [0] and m.optimizer.iterations == 2  # the callback after the 2nd press never ran


def test_a_custom_or_ignoring_handler_is_left_alone(rng):
    x, y = _data(rng)
    seen = []

    def custom(signum, frame):
        seen.append(signum)

    for handler in (custom, signal.SIG_IGN):
        previous = signal.signal(signal.SIGINT, handler)
        try:
            m = _model()
            inside = []
            probe = LambdaCallback(on_train_batch_end=lambda b, logs: inside.append(signal.getsignal(signal.SIGINT)))
            m.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Recorder(at={(0, 0)}), probe])
            assert m.optimizer.iterations == 5 and set(inside) == {handler}
            assert signal.getsignal(signal.SIGINT) is handler
        finally:
            signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT]


def test_fit_in_a_worker_thread_installs_nothing(rng):
    x, y = _data(rng)
    m = _model()
    inside, errors = [], []
    probe = LambdaCallback(on_train_batch_end=lambda b, logs: inside.append(signal.getsignal(signal.SIGINT)))

    def work():
        try:
            m.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[probe])
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors and set(inside) == {signal.default_int_handler}


def test_nested_fit_shares_the_outer_handler(rng):
    x, y = _data(rng)
    outer, inner = _model(), _model(1)
    fired = []

    def nested(b, logs):
        if not fired:
            fired.append(1)
            inner.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Recorder(at={(0, 3)})])

    with pytest.raises(KeyboardInterrupt, match="after epoch 1, batch 3"):
        outer.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[LambdaCallback(on_train_batch_end=nested)])
    assert inner.optimizer.iterations == 4 and outer.optimizer.iterations == 1
    assert interrupt._active is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --------------------------------------------------------------------------- real SIGINT


@pytest.mark.parametrize("sleep, limit", [(0.0, 1.0), (1.2, 1.2 + 0.8)], ids=["fast-batches", "slow-batches"])
def test_sigint_stops_a_loop_of_fit_calls(sleep, limit, rng, seed):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "helpers", "interrupt_loop.py"), str(sleep)],
                         env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.5)))
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline()
    finally:
        p.stdout.close()
        p.wait(timeout=30)
    report = json.loads(line)
    where = f"{report} (seed {seed})"
    assert p.returncode == 0, where
    assert report["same_weights"] and report["iterations"] == report["batches"], where
    # Inside fit the step finishes and fit raises its own message; a signal that lands
    # between two fit calls (no fit running: Python's own handler) is a bare
    # KeyboardInterrupt. Either way no step is left half done and the handler is back.
    assert report["default_handler"], where
    assert "interrupted (SIGINT)" in report["message"] or report["message"] == "", where
    assert report["t"] - sent < limit, f"took {report['t'] - sent:.2f} s to stop: {where}"
