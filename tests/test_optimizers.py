"""The optimizer classes (fusedlstm.optimizers) without Keras: state through save/load and
checkpoints (bitwise), configs, the Keras API around the update, and bad arguments.

Parity with Keras's numbers: tests/test_keras_parity_optimizers.py (a model, every option),
tests/test_optimizer_kernels_*.py (the kernels against reference.KerasOptimizer).
"""

import numpy as np
import pytest

from fusedlstm import callbacks, layers, models, optimizers, registry
from fusedlstm.optimizers import schedules

# (id, class, kwargs) covering every rule and every option that keeps state
CASES = [
    ("Adam", "Adam", dict(learning_rate=0.01)),
    ("Adam-amsgrad-ema", "Adam", dict(learning_rate=0.01, amsgrad=True, use_ema=True, ema_overwrite_frequency=3)),
    ("AdamW-accumulation", "AdamW", dict(learning_rate=0.01, gradient_accumulation_steps=3)),
    ("Nadam", "Nadam", dict(learning_rate=0.01)),
    ("Nadam-accumulation-ema", "Nadam", dict(learning_rate=0.01, gradient_accumulation_steps=2, use_ema=True)),
    ("Adamax-clipnorm", "Adamax", dict(learning_rate=0.01, clipnorm=0.1)),
    ("Adagrad-global_clipnorm", "Adagrad", dict(learning_rate=0.05, global_clipnorm=0.1)),
    ("Adadelta-clipvalue", "Adadelta", dict(learning_rate=1.0, clipvalue=0.01)),
    ("Lion-weight_decay", "Lion", dict(learning_rate=0.001, weight_decay=0.1)),
    ("Ftrl", "Ftrl", dict(learning_rate=0.05, l1_regularization_strength=0.001, beta=0.1)),
    ("RMSprop-momentum-centered", "RMSprop", dict(learning_rate=0.001, momentum=0.5, centered=True)),
    ("SGD-nesterov-schedule", "SGD", dict(learning_rate=schedules.InverseTimeDecay(0.05, 2, 0.5), momentum=0.9,
                                          nesterov=True)),
]
IDS = [c[0] for c in CASES]


def _model(cls, kwargs, seed=5):
    from fusedlstm.utils import set_random_seed
    set_random_seed(seed)
    m = models.Sequential([layers.Input((6, 3)), layers.LSTM(5, return_sequences=True), layers.LSTM(4),
                           layers.Dense(3, activation="softmax")])
    m.compile(optimizer=getattr(optimizers, cls)(**kwargs), loss="categorical_crossentropy")
    return m


def _data(rng, n=40):
    return rng.standard_normal((n, 6, 3)).astype("float32"), np.eye(3, dtype="float32")[rng.integers(0, 3, n)]


def _same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("case_id, cls, kwargs", CASES, ids=IDS)
def test_save_load_continues_bitwise(tmp_path, rng, case_id, cls, kwargs):
    x, y = _data(rng)
    ref = _model(cls, kwargs)
    for k in range(10):
        ref.train_on_batch(x[4 * k:4 * k + 4], y[4 * k:4 * k + 4])
    m = _model(cls, kwargs)
    for k in range(5):
        m.train_on_batch(x[4 * k:4 * k + 4], y[4 * k:4 * k + 4])
    m.save(tmp_path / "m.fusedlstm")
    r = models.load_model(tmp_path / "m.fusedlstm")
    assert r.optimizer.get_config() == m.optimizer.get_config() and r.optimizer.iterations == m.optimizer.iterations
    for a, b in zip(r.optimizer.get_state()["slots"], m.optimizer.get_state()["slots"]):
        assert np.array_equal(a, b)
    for k in range(5, 10):
        r.train_on_batch(x[4 * k:4 * k + 4], y[4 * k:4 * k + 4])
    assert _same(ref.get_weights(), r.get_weights()), f"{case_id}: the loaded model trains on differently"


@pytest.mark.parametrize("weights_only", [True, False])
@pytest.mark.parametrize("case_id, cls, kwargs", CASES, ids=IDS)
def test_checkpoint_resume_mid_epoch_is_bitwise(tmp_path, rng, case_id, cls, kwargs, weights_only):
    x, y = _data(rng)
    fit = dict(batch_size=4, epochs=3, shuffle=True, verbose=0)
    from fusedlstm.utils import set_random_seed
    ref = _model(cls, kwargs)
    set_random_seed(11)
    ref.fit(x, y, **fit)
    path = str(tmp_path / ("c.weights.npz" if weights_only else "c.fusedlstm"))

    class Crash(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer._iterations == 14:
                raise RuntimeError("crash")

    m = _model(cls, kwargs)
    set_random_seed(11)
    with pytest.raises(RuntimeError, match="crash"):
        m.fit(x, y, callbacks=[callbacks.ModelCheckpoint(path, save_freq=1, save_weights_only=weights_only), Crash()],
              **fit)
    r = _model(cls, kwargs, seed=99)
    info = callbacks.restore_checkpoint(r, path)
    r.fit(x, y, initial_epoch=info["initial_epoch"], **fit)
    assert _same(ref.get_weights(), r.get_weights()), f"{case_id}: the resumed fit differs"
    assert r.optimizer.iterations == ref.optimizer.iterations


def test_training_state_holds_every_buffer(rng):
    m = _model("Nadam", dict(use_ema=True, gradient_accumulation_steps=2))
    m.train_on_batch(*_data(rng, 4))
    st = m.get_training_state()["optimizer"]
    assert m.optimizer.slot_names() == ["m", "v", "gradient_accumulator", "ema"]
    assert len(st["slots"]) == 4 and st["u_product"] == 1.0 and st["iterations"] == 1  # no update yet
    m.train_on_batch(*_data(rng, 4))
    assert m.get_training_state()["optimizer"]["u_product"] == float(np.float32(0.9) * np.float32(1 - 0.5 * 0.96))


def test_fit_ends_with_the_moving_average_and_train_on_batch_does_not(rng):
    m = _model("SGD", dict(learning_rate=0.1, use_ema=True, ema_momentum=0.5))
    x, y = _data(rng)
    m.train_on_batch(x[:4], y[:4])  # the first update sets the average to the weights (momentum 0)
    m.train_on_batch(x[4:8], y[4:8])
    ema = m.optimizer.get_state()["slots"][-1]
    assert not np.array_equal(m.parameter_store().flat, ema)
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.array_equal(m.parameter_store().flat, m.optimizer.get_state()["slots"][-1])


def test_exclude_from_weight_decay_by_name_and_by_variable():
    dense = layers.Dense(2)
    m = models.Sequential([layers.Input((3,)), dense])
    opt = optimizers.SGD(learning_rate=0.5, weight_decay=0.2)
    m.compile(opt, "mse")
    kernel, bias = dense.kernel, dense.bias
    kernel.assign(np.ones((3, 2))), bias.assign(np.ones(2))
    zeros = [np.zeros((3, 2)), np.zeros(2)]
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply_gradients(zip(zeros, [kernel, bias]))
    f = float(np.float32(1) - np.float32(0.2) * np.float32(0.5))
    assert np.all(kernel.numpy() == np.float32(f)) and np.all(bias.numpy() == 1)
    opt.exclude_from_weight_decay(var_list=[kernel])  # replaces the previous exclusion
    opt.apply_gradients(zip(zeros, [kernel, bias]))
    assert np.all(kernel.numpy() == np.float32(f)) and np.all(bias.numpy() == np.float32(f))


def test_apply_gradients_matches_a_training_step(rng):
    """Keras's custom-loop API: compute_gradients, then apply_gradients, is train_on_batch."""
    x, y = _data(rng, 8)
    a = _model("Adam", dict(learning_rate=0.01, clipnorm=0.5))
    b = _model("Adam", dict(learning_rate=0.01, clipnorm=0.5))
    for _ in range(3):
        a.train_on_batch(x, y)
        _, grads = b.compute_gradients(x, y)
        b.optimizer.apply_gradients(zip(grads, b.trainable_weights))
    assert _same(a.get_weights(), b.get_weights())
    with pytest.raises(ValueError, match="Unknown variable"):
        b.optimizer.apply_gradients(zip(grads[:1], b.trainable_weights[:1]))
    with pytest.raises(ValueError, match="every gradient must be an array"):
        b.optimizer.apply([None] + grads[1:])


def test_keras2_decay_and_lr_alias_still_work(rng):
    opt = optimizers.SGD(lr=0.1, decay=0.5)
    assert opt.learning_rate == 0.1 and opt.get_config()["decay"] == 0.5
    m = models.Sequential([layers.Input((2,)), layers.Dense(1, use_bias=False)])
    m.compile(opt, "mse")
    w0 = m.get_weights()[0].copy()
    x, y = np.ones((1, 2), "float32"), np.zeros((1, 1), "float32")
    _, (g,) = m.compute_gradients(x, y)
    m.train_on_batch(x, y)
    _, (g2,) = m.compute_gradients(x, y)
    w1 = m.get_weights()[0]
    np.testing.assert_allclose(w1, w0 - np.float32(0.1) * g, rtol=1e-6)
    m.train_on_batch(x, y)
    np.testing.assert_allclose(m.get_weights()[0], w1 - np.float32(0.1 / 1.5) * g2, rtol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "adamax", "adagrad", "adadelta", "lion", "ftrl",
                                  "rmsprop", "sgd"])
def test_names_configs_and_registry(name):
    opt = optimizers.get(name)
    assert registry.lookup("optimizers", type(opt).__name__) is type(opt)
    cfg = opt.get_config()
    back = type(opt).from_config(cfg)
    assert back.get_config() == cfg
    ser = optimizers.serialize(opt)
    assert optimizers.deserialize(ser).get_config() == cfg
    assert optimizers.get({"class_name": type(opt).__name__.upper(), "config": {}}).__class__ is type(opt)
    for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema", "ema_momentum",
                "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"):
        assert key in cfg


def test_serialize_leaves_inactive_new_options_out():
    """Our files hold what they held before issue 25 for a model compiled as before."""
    assert optimizers.serialize(optimizers.Adam(0.01))["config"] == {
        "name": "adam", "learning_rate": 0.01, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "decay": 0.0}
    cfg = optimizers.serialize(optimizers.Adam(0.01, use_ema=True, amsgrad=True))["config"]
    assert cfg["use_ema"] is True and cfg["amsgrad"] is True


def test_loss_scale_factor_is_kept_and_changes_nothing(rng):
    x, y = _data(rng, 8)
    a = _model("Adam", dict(learning_rate=0.01))
    b = _model("Adam", dict(learning_rate=0.01, loss_scale_factor=128.0))
    for _ in range(3):
        a.train_on_batch(x, y), b.train_on_batch(x, y)
    assert _same(a.get_weights(), b.get_weights())
    assert b.optimizer.scale_loss(2.0) == 256.0 and b.optimizer.get_config()["loss_scale_factor"] == 128.0


def test_a_new_model_gets_fresh_state_but_the_count_stays(rng):
    opt = optimizers.Adam(0.01)
    m = _model("Adam", {})
    m.compile(opt, "categorical_crossentropy")
    m.train_on_batch(*_data(rng, 4))
    small = models.Sequential([layers.Input((6, 3)), layers.LSTM(2), layers.Dense(3, activation="softmax")])
    small.compile(opt, "categorical_crossentropy")
    small.train_on_batch(*_data(rng, 4))
    assert opt.iterations == 2 and opt.get_state()["slots"][0].size == small.parameter_store().size


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(rng):
    m = _model("Adam", dict(use_ema=True))
    m.train_on_batch(*_data(rng, 4))
    before = m.optimizer.get_state()
    st = dict(before, slots=before["slots"][:2])
    with pytest.raises(ValueError, match=r"expected 3 float slot array\(s\) \(m, v, ema\)"):
        m.set_training_state({"optimizer": st})
    after = m.optimizer.get_state()
    assert after["iterations"] == before["iterations"] and _same(after["slots"], before["slots"])


@pytest.mark.parametrize("make, exc, match", [
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, r"`weight_decay` must be a float"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=1), ValueError, r"must be an integer >= 2"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=2.5), TypeError, "gradient_accumulation_steps"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), ValueError, r"`ema_momentum` must be in the range"),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5), ValueError, "ema_overwrite_frequency"),
    (lambda: optimizers.Adam(use_ema="yes"), TypeError, "use_ema"),
    (lambda: optimizers.Adam(weight_decay=-1.0), ValueError, "`weight_decay`.*non-negative"),
    (lambda: optimizers.Adam(loss_scale_factor=0), ValueError, "`loss_scale_factor`"),
    (lambda: optimizers.Adam(global_clipnorm=1.0, clipnorm=1.0), ValueError, "Only one of"),
    (lambda: optimizers.Adam(amsgrad="no"), TypeError, "`amsgrad`"),
    (lambda: optimizers.Nadam(beta_2=1.0), ValueError, r"`beta_2`.*\[0, 1\)"),
    (lambda: optimizers.Adamax(epsilon=-1), ValueError, "`epsilon`"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-0.1), ValueError, "initial_accumulator_value"),
    (lambda: optimizers.Adadelta(rho=1.5), ValueError, "`rho`"),
    (lambda: optimizers.Lion(beta_1=0.0), ValueError, r"`beta_1` must be in the \[0, 1\] range"),
    (lambda: optimizers.Lion(beta_2=1.5), ValueError, "`beta_2`"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), ValueError, "`learning_rate_power` needs to be negative"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), ValueError, "needs to be positive or zero"),
    (lambda: optimizers.Ftrl(beta="x"), TypeError, "`beta`"),
    (lambda: optimizers.RMSprop(momentum=1.0), ValueError, "`momentum`"),
    (lambda: optimizers.RMSprop(centered="yes"), TypeError, "`centered`"),
    (lambda: optimizers.SGD(nesterov="yes"), TypeError, "`nesterov`"),
    (lambda: optimizers.Adam(name=3), TypeError, "`name`"),
    (lambda: optimizers.Adam(foo=1), ValueError, "not recognized"),
    (lambda: optimizers.get("adafactor"), NotImplementedError, "adafactor"),
    (lambda: optimizers.Adafactor, NotImplementedError, "Adafactor"),
    (lambda: optimizers.Adam().exclude_from_weight_decay(var_names=[3]), TypeError, "var_names"),
    (lambda: optimizers.Adam().apply([np.zeros(2)]), ValueError, "must already be built"),
    (lambda: optimizers.Adam().finalize_variable_values(), type(None), None),
])
def test_bad_arguments_are_named(make, exc, match):
    if exc is type(None):
        make()  # no EMA: nothing to do, no error
        return
    with pytest.raises(exc, match=match):
        make()
