"""The trainer's step interface (models/step.py, models/training_state.py, models/strategy.py):
what checkpoints and distribution strategies build on, checked against fit itself."""

import numpy as np
import pytest

from fusedlstm.layers import LSTM, Dense, Dropout, Input
from fusedlstm.models import Sequential, StepResult, Strategy
from fusedlstm.utils import set_random_seed


def _model(seed, dropout=0.0):
    set_random_seed(seed)
    m = Sequential([Input((5, 3)), LSTM(6, dropout=dropout, seed=7 if dropout else None),
                    Dropout(dropout), Dense(4, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    return m


def _data(seed, n=24):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 5, 3)).astype("float32"), r.integers(0, 4, n)


def test_a_step_from_the_interface_is_train_on_batch_bitwise(seed):
    x, y = _data(seed)
    ref, m = _model(seed), _model(seed)
    want = ref.train_on_batch(x, y, return_dict=True)
    xs, ys, sws = m._prepare_batch(x, y, None)
    before = m.get_weights()
    m.reset_metrics()
    result = m.compute_step(xs, ys, sws)
    assert isinstance(result, StepResult) and result.grads.shape == (m.parameter_store().size,)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights())), "compute_step changed weights"
    assert m.metric_state().tolist() == [] or not m.metric_state().any()
    assert m.apply_gradients(result.grads, result.loss) and not m.step_skipped
    m.record_step(x.shape[0], result, ys, sws)
    assert m._logs() == want
    for a, b in zip(ref.get_weights(), m.get_weights()):
        assert np.array_equal(a, b)


def test_apply_gradients_skips_a_non_finite_step_when_asked(seed):
    m = _model(seed)
    x, y = _data(seed)
    xs, ys, sws = m._prepare_batch(x, y, None)
    result = m.compute_step(xs, ys, sws)
    before = m.get_weights()
    m._skip_nonfinite = True  # what fit sets while TerminateOnNaN is in its callbacks
    try:
        assert m.apply_gradients(result.grads, float("nan")) is False and m.step_skipped
    finally:
        m._skip_nonfinite = False
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert m.optimizer.iterations == 0


def test_training_state_continues_a_fit_exactly(seed):
    """get_training_state after some steps, set into a fresh model: the rest of the run is bitwise
    the uninterrupted one (dropout streams, optimizer moments, shuffle)."""
    x, y = _data(seed, 40)
    ref = _model(seed, dropout=0.2)
    ref.fit(x, y, batch_size=8, epochs=3, verbose=0)
    a = _model(seed, dropout=0.2)
    a.fit(x, y, batch_size=8, epochs=1, verbose=0)
    state = a.get_training_state()
    assert set(state) == {"weights", "optimizer", "rng", "layer_states", "position"}
    assert state["optimizer"]["iterations"] == 5 and len(state["optimizer"]["slots"]) == 2
    assert list(state["rng"]["layers"]) == ["0:LSTM"]
    b = _model(seed + 1, dropout=0.2)  # other initial weights and streams: the state replaces them
    b.set_training_state(state)
    b.fit(x, y, batch_size=8, epochs=3, initial_epoch=1, verbose=0)
    for p, q in zip(ref.get_weights(), b.get_weights()):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("spoil, match", [
    (lambda s: s["optimizer"].update(class_name="SGD"), "written with optimizer 'SGD'"),
    (lambda s: s["optimizer"].update(slots=[np.zeros(3, np.float32)] * 2), r"expected 2 float slot array\(s\)"),
    (lambda s: s["rng"]["layers"].clear(), r"random generators for layers \[\]"),
    (lambda s: s["rng"].update({"global": {"bit_generator": "Nope"}}), "global random generator is invalid"),
    (lambda s: s["weights"].pop(), "holds 4 weights, the model has 5"),
])
def test_a_state_that_does_not_fit_changes_nothing(seed, spoil, match):
    x, y = _data(seed)
    a = _model(seed, dropout=0.2)
    a.fit(x, y, batch_size=8, epochs=1, verbose=0)
    state = a.get_training_state()
    spoil(state)
    b = _model(seed + 1, dropout=0.2)
    before, rng_before = b.get_weights(), b.get_training_state()["rng"]
    with pytest.raises(ValueError, match=match):
        b.set_training_state(state)
    assert all(np.array_equal(p, q) for p, q in zip(before, b.get_weights()))
    assert b.optimizer.iterations == 0 and b.get_training_state()["rng"] == rng_before


def test_a_strategy_passed_to_compile_wraps_the_step(seed):
    """compile(distribute=...) takes any Strategy: the trainer calls its hooks and steps."""
    calls = []

    class Counting(Strategy):
        def begin_fit(self, model, train, val, callbacks, verbose, epochs, initial_epoch):
            calls.append("begin_fit")
            return super().begin_fit(model, train, val, callbacks, verbose, epochs, initial_epoch)

        def train_step(self, model, xs, ys, sws):
            calls.append("train_step")
            return super().train_step(model, xs, ys, sws)

    x, y = _data(seed)
    ref, m = _model(seed), _model(seed)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"], distribute=Counting())
    set_random_seed(seed)  # the same shuffles for both fits
    h1 = ref.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    set_random_seed(seed)
    h2 = m.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    assert calls == ["begin_fit"] + ["train_step"] * 6
    assert h1 == h2
    with pytest.raises(TypeError, match="`distribute`"):
        m.compile("adam", "mse", distribute=object())
