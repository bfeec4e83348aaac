"""Learning-rate schedules (keras.optimizers.schedules) against Keras 3.15.1, in optimizers,
files and callbacks.

Values: every schedule at steps 0..3000 (and a few far ones) equals Keras's float32 value
bit for bit, except where cos/log enter (CosineDecay, CosineDecayRestarts): Keras's torch
backend computes those with SLEEF (<= 1 ulp), we round correctly, so a few steps differ
by a few ulps of the result (measured and bounded below).
"""

import os
import warnings

import numpy as np
import pytest

from conftest import require
from fusedlstm import callbacks, layers, models, optimizers
from fusedlstm.optimizers import schedules

os.environ.setdefault("KERAS_BACKEND", "torch")
KERAS_WARNINGS = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"

CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.93)),
    ("ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=100, decay_rate=0.5, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 100, 1000], values=[0.1, 0.05, 0.01, 0.001])),
    ("PiecewiseConstantDecay", dict(boundaries=[3.5, 40.0], values=[1.0, 0.5, 0.25])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300, end_learning_rate=0.001, power=0.5)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300, power=2.0, cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=13, decay_rate=0.7)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=13, decay_rate=0.7, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=1000, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=1000, warmup_target=0.1, warmup_steps=200)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=100)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=50, t_mul=1.0, m_mul=0.8,
                                 alpha=0.05)),
]
STEPS = list(range(0, 3001)) + [10_000, 123_457, 1_000_000, 2 ** 31 - 1]
# cos/log steps: at most this share of the steps differ, by at most this much relative to the peak rate
TRIG_SHARE, TRIG_REL = 0.05, 1e-6


@pytest.fixture(scope="module")
def keras():
    require("torch", "compare")
    return require("keras", "compare")


def _ids(cases):
    return [f"{name}-{k}" for k, (name, _) in enumerate(cases)]


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
@pytest.mark.parametrize("name, kwargs", CASES, ids=_ids(CASES))
def test_values_match_keras(keras, name, kwargs):
    import torch
    k = getattr(keras.optimizers.schedules, name)(**kwargs)
    o = getattr(schedules, name)(**kwargs)
    kv = np.array([float(k(torch.tensor(s, dtype=torch.int64))) for s in STEPS], np.float32)
    ov = np.array([o(s) for s in STEPS], np.float32)
    assert all(isinstance(o(s), np.float32) for s in (0, 5))
    if "Cosine" not in name:
        bad = np.flatnonzero(kv != ov)
        assert bad.size == 0, f"{name}: differs at steps {[STEPS[i] for i in bad[:5]]}: {kv[bad[:5]]} vs {ov[bad[:5]]}"
        return
    peak = max(abs(kwargs["initial_learning_rate"]), abs(kwargs.get("warmup_target") or 0))
    differ = kv != ov
    rel = float(np.max(np.abs(kv.astype(np.float64) - ov)) / peak)
    print(f"\n{name} {kwargs}: {differ.sum()} of {len(STEPS)} steps differ, max |d| / peak = {rel:.2e}")
    assert differ.mean() <= TRIG_SHARE and rel <= TRIG_REL


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
@pytest.mark.parametrize("name, kwargs", CASES, ids=_ids(CASES))
def test_config_and_serialized_form_are_keras(keras, name, kwargs):
    k = getattr(keras.optimizers.schedules, name)(**kwargs)
    o = getattr(schedules, name)(**kwargs)
    assert o.get_config() == k.get_config()
    assert schedules.serialize(o) == keras.optimizers.schedules.serialize(k)
    back = schedules.deserialize(keras.optimizers.schedules.serialize(k))
    assert type(back) is type(o) and back.get_config() == o.get_config()
    assert [back(s) for s in (0, 17, 999)] == [o(s) for s in (0, 17, 999)]


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
@pytest.mark.parametrize("opt", ["Adam", "SGD", "AdamW", "RMSprop"])
def test_an_optimizer_with_a_schedule_has_keras_config(keras, opt):
    sched = dict(initial_learning_rate=0.05, decay_steps=100, warmup_target=0.1, warmup_steps=10)
    k = getattr(keras.optimizers, opt)(learning_rate=keras.optimizers.schedules.CosineDecay(**sched))
    o = getattr(optimizers, opt)(learning_rate=schedules.CosineDecay(**sched))
    ko, oo = k.get_config(), o.get_config()
    ko.pop("name"), oo.pop("name")  # Keras's auto names ("rm_sprop", "adam_3") are not ours
    assert oo == ko
    back = optimizers.get({"module": "keras.optimizers", "class_name": opt, "config": k.get_config(),
                           "registered_name": None})
    assert isinstance(back._lr, schedules.CosineDecay) and back._lr.get_config() == o._lr.get_config()


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
@pytest.mark.parametrize("opt, sched", [
    ("Adam", ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=8, warmup_target=0.02, warmup_steps=4))),
    ("SGD", ("PiecewiseConstantDecay", dict(boundaries=[3, 7], values=[0.05, 0.02, 0.01]))),
    ("Nadam", ("PolynomialDecay", dict(initial_learning_rate=0.02, decay_steps=5, power=2.0, cycle=True))),
    ("RMSprop", ("InverseTimeDecay", dict(initial_learning_rate=0.003, decay_steps=2, decay_rate=0.5))),
    ("Adagrad", ("CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=3))),
])
def test_training_with_a_schedule_matches_keras(keras, rng, seed, opt, sched):
    import keras_parity_support as ps

    def build(lib):
        return lib.Sequential([lib.Input(shape=(5, 3)), lib.layers.LSTM(4), lib.layers.Dense(2)])

    pair = ps.Pair(keras, build, rng)
    for model, lib in ((pair.k, pair.keras_lib), (pair.o, pair.ours_lib)):
        lr = getattr(lib.optimizers.schedules, sched[0])(**sched[1])
        model.compile(optimizer=getattr(lib.optimizers, opt)(learning_rate=lr), loss="mse")
    x, y = rng.normal(size=(6, 5, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, 12)
    assert loss_err <= ps.TRAIN_TOL and w_err <= ps.TRAIN_TOL, f"seed={seed}: {loss_err:.3g} {w_err:.3g}"
    assert pair.o.optimizer.learning_rate == float(pair.k.optimizer.learning_rate)


# --- in our optimizers, files and callbacks ------------------------------------------------------

def _model(opt):
    m = models.Sequential([layers.Input((4, 2)), layers.LSTM(3), layers.Dense(1)])
    m.compile(optimizer=opt, loss="mse")
    return m


def _data(rng, n=16):
    return rng.standard_normal((n, 4, 2)).astype("float32"), rng.standard_normal((n, 1)).astype("float32")


def test_the_schedule_is_evaluated_at_every_update(rng):
    s = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    m = _model(optimizers.SGD(learning_rate=s))
    x, y = _data(rng)
    seen = []
    for _ in range(3):
        seen.append(m.optimizer.learning_rate)
        m.train_on_batch(x, y)
    assert seen == [float(s(0)), float(s(1)), float(s(2))]


def test_gradient_accumulation_schedules_see_every_call(rng):
    """Keras evaluates the schedule at `_iterations`, which counts every call, not every update."""
    s = schedules.PiecewiseConstantDecay([1, 3], [1.0, 0.5, 0.25])
    opt = optimizers.SGD(learning_rate=s, gradient_accumulation_steps=2)
    m = _model(opt)
    x, y = _data(rng)
    for _ in range(4):
        m.train_on_batch(x, y)
    assert opt.iterations == 2 and opt.learning_rate == 0.25  # the raw count is 4: step 4 > boundary 3


def test_a_schedule_survives_save_load_and_checkpoint_resume(rng, tmp_path):
    def make():
        return _model(optimizers.Adam(learning_rate=schedules.CosineDecay(0.01, 20, warmup_target=0.05,
                                                                           warmup_steps=5)))
    x, y = _data(rng, 40)
    ref = make()
    w0 = ref.get_weights()
    ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)

    m = make()
    m.set_weights(w0)
    ckpt = str(tmp_path / "ckpt.fusedlstm")

    class Stop(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 7:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(ckpt, save_freq=1), Stop()])
    r = make()
    info = callbacks.restore_checkpoint(r, ckpt)
    assert isinstance(r.optimizer._lr, schedules.CosineDecay)
    r.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, initial_epoch=info["initial_epoch"])
    for a, b in zip(ref.get_weights(), r.get_weights()):
        assert np.array_equal(a, b)
    loaded = models.load_model(ckpt)
    assert loaded.optimizer.get_config() == m.optimizer.get_config()
    assert loaded.optimizer.learning_rate == m.optimizer.learning_rate


def test_learning_rate_scheduler_refuses_a_schedule_as_keras(rng):
    m = _model(optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9)))
    x, y = _data(rng)
    with pytest.raises(TypeError, match="LearningRateScheduler cannot set .*LearningRateSchedule"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr)])


def test_reduce_lr_on_plateau_with_a_schedule_warns_then_refuses_as_keras(rng):
    m = _model(optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9)))
    x, y = _data(rng)
    cb = callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9)  # every epoch a plateau
    with pytest.warns(UserWarning, match="schedule"), \
            pytest.raises(TypeError, match="ReduceLROnPlateau cannot lower .*not settable"):
        m.fit(x, y, epochs=3, verbose=0, callbacks=[cb])


def test_reduce_lr_logs_the_schedule_value(rng):
    s = schedules.ExponentialDecay(0.1, 2, 0.5)
    m = _model(optimizers.SGD(learning_rate=s))
    x, y = _data(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0,
                     callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=5)])
    assert hist.history["learning_rate"] == [float(s(2)), float(s(4))]


def test_setting_a_float_on_a_schedule_raises_and_a_schedule_replaces_a_float():
    opt = optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    opt2 = optimizers.Adam(0.01)
    opt2.learning_rate = schedules.InverseTimeDecay(0.2, 1, 1.0)
    assert opt2.learning_rate == float(np.float32(0.2))


def test_a_no_argument_callable_learning_rate_as_keras_3(rng):
    calls = []

    def lr():
        calls.append(1)
        return 0.05

    m = _model(optimizers.SGD(learning_rate=lr))
    m.train_on_batch(*_data(rng))
    assert calls and m.optimizer.learning_rate == float(np.float32(0.05))
    with pytest.raises(NotImplementedError, match="callable"):
        m.optimizer.get_config()


@pytest.mark.parametrize("make, exc, match", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, r"`decay_steps` must be > 0"),
    (lambda: schedules.InverseTimeDecay(0.1, -2, 0.5), ValueError, r"`decay_steps` must be > 0"),
    (lambda: schedules.PolynomialDecay(0.1, 0), ValueError, r"`decay_steps` must be > 0"),
    (lambda: schedules.CosineDecay(0.1, 0), ValueError, r"`decay_steps` must be > 0"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), ValueError, r"`first_decay_steps` must be > 0"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1]), ValueError, "1 less than the length of values"),
    (lambda: schedules.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3]), ValueError, "strictly increasing"),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), TypeError, "`initial_learning_rate`.*'0.1'"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1), ValueError, "`warmup_steps`"),
    (lambda: schedules.ExponentialDecay(0.1, 10, 0.5)(np.arange(3)), ValueError, "scalar step"),
    (lambda: schedules.deserialize({"class_name": "Nope", "config": {}}), NotImplementedError, "'Nope'"),
])
def test_bad_schedule_arguments_are_named(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
