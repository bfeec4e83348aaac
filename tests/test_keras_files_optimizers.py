"""Every optimizer's state across the Keras file boundary, both ways (Keras 3.15.1, torch backend).

Keras trains a few steps and saves a .keras file; we load it (compiled, optimizer state
restored) and continue as Keras continues. And the other way: we train and save .keras;
Keras loads it without a warning (its optimizer finds exactly the variables it expects:
EMA averages, gradient accumulators, each rule's slots in Keras's order, Nadam's product)
and continues as we do. Losses and weights agree within 1e-4 relative.
"""

import os

import numpy as np
import pytest

from conftest import require

os.environ.setdefault("KERAS_BACKEND", "torch")
pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]

TOL = 1e-4

# (id, class, kwargs); learning rates that move the weights visibly in 5 steps
CASES = [
    ("Adam-amsgrad", "Adam", dict(learning_rate=0.01, amsgrad=True)),
    ("AdamW", "AdamW", dict(learning_rate=0.01, weight_decay=0.05)),
    ("Nadam", "Nadam", dict(learning_rate=0.01)),
    ("Adamax", "Adamax", dict(learning_rate=0.01)),
    ("Adagrad", "Adagrad", dict(learning_rate=0.05)),
    ("Adadelta", "Adadelta", dict(learning_rate=1.0)),
    ("Lion", "Lion", dict(learning_rate=0.001)),
    ("Ftrl", "Ftrl", dict(learning_rate=0.05, l1_regularization_strength=0.001)),
    ("RMSprop-momentum-centered", "RMSprop", dict(learning_rate=0.001, momentum=0.5, centered=True)),
    ("SGD-nesterov", "SGD", dict(learning_rate=0.02, momentum=0.9, nesterov=True)),
    ("Adam-ema-accumulation", "Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9,
                                           gradient_accumulation_steps=2)),
    ("SGD-schedule", "SGD", dict(learning_rate="schedule")),
]


@pytest.fixture(scope="module")
def keras():
    require("h5py", "h5")
    require("torch", "compare")
    return require("keras", "compare")


def _optimizer(keras, cls, kwargs):
    kw = dict(kwargs)
    if kw.get("learning_rate") == "schedule":
        kw["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    return getattr(keras.optimizers, cls)(**kw)


def _keras_model(keras, rng, cls, kwargs):
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 3)), L.LSTM(4), L.Dense(3, activation="softmax")])
    m.compile(optimizer=_optimizer(keras, cls, kwargs), loss="categorical_crossentropy")
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    return m, x, y


def _close(ours, theirs, what):
    np.testing.assert_allclose(ours, theirs, rtol=TOL, atol=TOL * max(1.0, float(np.max(np.abs(theirs)))),
                               err_msg=what)


@pytest.mark.parametrize("case_id, cls, kwargs", CASES, ids=[c[0] for c in CASES])
def test_we_continue_from_a_keras_file(keras, rng, seed, tmp_path, case_id, cls, kwargs):
    from fusedlstm import io
    kmodel, x, y = _keras_model(keras, rng, cls, kwargs)
    for _ in range(5):
        kmodel.train_on_batch(x, y)
    kmodel.save(tmp_path / "k.keras")
    ours = io.load_keras_file(tmp_path / "k.keras")
    assert type(ours.optimizer).__name__ == cls
    assert ours.optimizer.iterations == int(kmodel.optimizer.iterations.numpy())
    lk = [float(kmodel.train_on_batch(x, y)) for _ in range(5)]
    lo = [float(np.ravel(ours.train_on_batch(x, y))[0]) for _ in range(5)]
    _close(lo, lk, f"seed={seed} losses")
    for a, b in zip(kmodel.get_weights(), ours.get_weights()):
        _close(b, a, f"seed={seed} weights")


@pytest.mark.parametrize("case_id, cls, kwargs", CASES, ids=[c[0] for c in CASES])
def test_keras_continues_from_our_file(keras, rng, seed, tmp_path, case_id, cls, kwargs):
    from fusedlstm import io
    kmodel, x, y = _keras_model(keras, rng, cls, kwargs)
    ours = io.from_keras(kmodel)
    for _ in range(5):
        ours.train_on_batch(x, y)
    io.save_keras_file(ours, tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")  # filterwarnings=error: a skipped state fails
    assert int(back.optimizer.iterations.numpy()) == ours.optimizer.iterations
    assert type(back.optimizer).__name__ == cls
    lo = [float(np.ravel(ours.train_on_batch(x, y))[0]) for _ in range(5)]
    lk = [float(back.train_on_batch(x, y)) for _ in range(5)]
    _close(lk, lo, f"seed={seed} losses")
    for a, b in zip(back.get_weights(), ours.get_weights()):
        _close(b, a, f"seed={seed} weights")
