"""Regularizers and constraints on their own and on layers: gradients against float64
finite differences, names, configs, the layer mechanism, and what a step does with
them (penalties in the loss, gradients, constraints after the update). Keras
parity: test_regularizers_keras.py."""

import numpy as np
import pytest

from gradcheck import FD_STEP, rel_error

import fusedlstm
from fusedlstm import constraints, layers, regularizers
from fusedlstm.models import Model, Sequential

REGULARIZERS = [
    pytest.param(regularizers.L1(0.03), id="L1"),
    pytest.param(regularizers.L2(0.2), id="L2"),
    pytest.param(regularizers.L1L2(l1=0.01, l2=0.05), id="L1L2"),
    pytest.param(regularizers.OrthogonalRegularizer(0.3), id="orthogonal-rows"),
    pytest.param(regularizers.OrthogonalRegularizer(0.3, mode="columns"), id="orthogonal-columns"),
]


@pytest.mark.parametrize("reg", REGULARIZERS)
@pytest.mark.parametrize("shape", [(5, 3), (4, 7), (1, 6)], ids=str)
def test_gradient_matches_finite_differences(reg, shape, rng, seed):
    if isinstance(reg, regularizers.OrthogonalRegularizer) and min(shape) == 1 and \
            (shape[0] if reg.mode == "rows" else shape[1]) == 1:
        pytest.skip("one row/column: no pairs (Keras divides by zero too)")
    x = rng.normal(size=shape)
    x[np.abs(x) < 1e-3] = 0.5  # away from |x|'s kink
    g = reg.gradient(x)
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += FD_STEP
        xm[i] -= FD_STEP
        fd[i] = (reg(xp) - reg(xm)) / (2 * FD_STEP)
    assert rel_error(g, fd) < 1e-6, f"seed={seed}"


def test_values_follow_the_formulas(rng):
    x = rng.normal(size=(4, 3))
    assert regularizers.L1(0.1)(x) == pytest.approx(np.float32(0.1) * np.abs(x).sum(), rel=1e-12)
    assert regularizers.L2(0.1)(x) == pytest.approx(np.float32(0.1) * np.square(x).sum(), rel=1e-12)
    assert regularizers.L1L2(0.0, 0.0)(x) == 0.0
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    p = n @ n.T
    want = np.float32(0.3) * 0.5 * (np.abs(p).sum() - np.trace(np.abs(p))) / 6.0
    assert regularizers.OrthogonalRegularizer(0.3)(x) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name, cls, config", [
    ("l1", regularizers.L1, {"l1": float(np.float32(0.01))}), ("l2", regularizers.L2, {"l2": 0.01}),
    ("l1l2", regularizers.L1L2, {"l1": 0.0, "l2": 0.0}), ("L1L2", regularizers.L1L2, {"l1": 0.0, "l2": 0.0}),
    ("orthogonal_regularizer", regularizers.OrthogonalRegularizer, {"factor": float(np.float32(0.01)), "mode": "rows"}),
])
def test_regularizer_names_resolve_with_keras_defaults(name, cls, config):
    r = regularizers.get(name)
    assert type(r) is cls and r.get_config() == config
    assert type(regularizers.deserialize(regularizers.serialize(r))) is cls


@pytest.mark.parametrize("name, cls", [("max_norm", constraints.MaxNorm), ("non_neg", constraints.NonNeg),
                                       ("unit_norm", constraints.UnitNorm), ("min_max_norm", constraints.MinMaxNorm),
                                       ("MaxNorm", constraints.MaxNorm)])
def test_constraint_names_resolve(name, cls):
    c = constraints.get(name)
    assert type(c) is cls
    assert constraints.deserialize(constraints.serialize(c)).get_config() == c.get_config()


def test_constraints_do_what_they_say(rng):
    w = rng.normal(size=(6, 4)).astype(np.float32) * 3
    norms = np.linalg.norm(constraints.MaxNorm(1.5)(w), axis=0)
    assert np.all(norms <= 1.5 + 1e-5)
    np.testing.assert_allclose(np.linalg.norm(constraints.UnitNorm(axis=1)(w), axis=1), 1.0, rtol=1e-5)
    assert (constraints.NonNeg()(w) >= 0).all()
    n = np.linalg.norm(constraints.MinMaxNorm(0.5, 1.0, rate=1.0)(w), axis=0)
    assert np.all((n >= 0.5 - 1e-5) & (n <= 1.0 + 1e-5))
    half = constraints.MinMaxNorm(0.0, 1.0, rate=0.5)(w)
    before = np.linalg.norm(w, axis=0)
    np.testing.assert_allclose(np.linalg.norm(half, axis=0), 0.5 * np.minimum(before, 1.0) + 0.5 * before, rtol=1e-5)


def _regularized_model():
    inp = layers.Input((6,), dtype="int32")
    e = layers.Embedding(9, 4, embeddings_regularizer=regularizers.L2(0.02), embeddings_constraint="unit_norm")(inp)
    h = layers.LSTM(5, kernel_regularizer="l2", recurrent_regularizer=regularizers.L1(0.01), bias_regularizer="l1",
                    recurrent_constraint=constraints.MaxNorm(1.0, axis=1), return_sequences=True,
                    activity_regularizer=regularizers.L2(0.05))(e)
    out = layers.Dense(3, activation="softmax", kernel_regularizer=regularizers.OrthogonalRegularizer(0.1),
                       bias_constraint="non_neg", activity_regularizer="l1")(layers.LSTM(4)(h))
    return Model(inp, out)


def _data(rng, n=10):
    return rng.integers(0, 9, size=(n, 6)), rng.integers(0, 3, size=n)


def test_layers_declare_their_weights_penalties_and_configs_round_trip():
    m = _regularized_model()
    lstm = m.layers[2]
    assert isinstance(lstm.kernel.regularizer, regularizers.L2) and isinstance(lstm.recurrent_kernel.regularizer, regularizers.L1)
    assert isinstance(lstm.recurrent_kernel.constraint, constraints.MaxNorm) and lstm.kernel.constraint is None
    cfg = lstm.get_config()
    assert cfg["recurrent_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 1}}
    assert cfg["activity_regularizer"] == {"class_name": "L2", "config": {"l2": 0.05}}
    assert "bias_constraint" not in cfg  # only what is set is written
    back = Model.from_config(m.get_config())
    for a, b in zip(m.layers, back.layers):
        assert a.get_config() == b.get_config()
    assert len(m.losses) == 5 and all(v > 0 for v in m.losses)


def test_compute_gradients_include_penalties_against_finite_differences(rng, seed):
    """The whole step's loss (data + weight + activity penalties) and its gradient, in float64."""
    m = Sequential([layers.Input((4, 3)),
                    layers.LSTM(3, kernel_regularizer=regularizers.L1L2(0.01, 0.03), dtype="float64",
                                activity_regularizer=regularizers.L2(0.1), return_sequences=True),
                    layers.LSTM(2, recurrent_regularizer=regularizers.OrthogonalRegularizer(0.2), dtype="float64"),
                    layers.Dense(2, kernel_regularizer="l2", activity_regularizer=regularizers.L1(0.02), dtype="float64")])
    m.compile("sgd", "mse")
    # Off the orthogonal initialiser: its rows' products are 0, the kink of |.|.
    m.set_weights([rng.uniform(-0.5, 0.5, size=w.shape) for w in m.get_weights()])
    x, y = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 2))
    loss, grads = m.compute_gradients(x, y)
    assert loss == pytest.approx(m.evaluate(x, y, verbose=0), rel=1e-12)
    for v, g in zip(m.trainable_weights, grads):
        fd = np.zeros_like(g)
        for i in np.ndindex(g.shape):
            w = v.numpy()  # .value is read-only: weights change through assign
            old = w[i]
            w[i] = old + FD_STEP
            v.assign(w)
            lp = m.evaluate(x, y, verbose=0, batch_size=5)
            w[i] = old - FD_STEP
            v.assign(w)
            lm = m.evaluate(x, y, verbose=0, batch_size=5)
            w[i] = old
            v.assign(w)
            fd[i] = (lp - lm) / (2 * FD_STEP)
        assert rel_error(g, fd) < 1e-6, f"seed={seed}: {v.path}"


def test_penalties_count_in_the_loss_not_in_the_output_losses(rng):
    fusedlstm.utils.set_random_seed(3)
    inp = layers.Input((5,))
    a = layers.Dense(2, name="a", kernel_regularizer=regularizers.L2(0.5))(inp)
    b = layers.Dense(1, name="b", activity_regularizer=regularizers.L1(0.2))(inp)
    m = Model(inp, [a, b])
    m.compile("sgd", ["mse", "mse"])
    x = rng.normal(size=(8, 5)).astype(np.float32)
    ys = [rng.normal(size=(8, 2)), rng.normal(size=(8, 1))]
    logs = m.evaluate(x, ys, verbose=0, return_dict=True)
    penalty = 0.5 * np.float32(0.5) * 0 + m.layers[1].losses[0] + np.float32(0.2) * np.abs(m.predict(x, verbose=0)[1]).sum() / 8
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"] + penalty, rel=1e-6)


def test_constraints_apply_after_every_update_and_off_costs_nothing(rng):
    m = _regularized_model()
    m.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(rng)
    m.fit(x, y, epochs=2, batch_size=4, verbose=0)
    emb = m.layers[1].embeddings.value
    np.testing.assert_allclose(np.linalg.norm(emb, axis=0), 1.0, rtol=1e-5)
    assert (m.layers[-1].bias.value >= 0).all()
    assert np.all(np.linalg.norm(m.layers[2].recurrent_kernel.value, axis=1) <= 1.0 + 1e-5)
    plain = Sequential([layers.Input((3,)), layers.Dense(2)])
    plain.compile("sgd", "mse")
    plain.train_on_batch(np.ones((2, 3)), np.ones((2, 2)))
    _, regs, cons, activity = plain._penalties(plain.parameter_store())
    assert regs == [] and cons == [] and not activity


def test_activity_penalties_keep_fusions_off_where_they_need_the_output():
    inp = layers.Input((6,), dtype="int32")
    e = layers.Embedding(9, 4, activity_regularizer="l2")(inp)
    out = layers.Dense(3, activation="softmax", activity_regularizer="l1")(layers.LSTM(4)(e))
    m = Model(inp, out)
    m.compile("adam", "sparse_categorical_crossentropy")
    assert all(type(st.op).__name__ != "EmbeddingLSTM" for st in m._plan.steps)
    assert all(s.fused is None for s in m.compiled_losses)


def test_bidirectional_refuses_activity_penalties_inside():
    with pytest.raises(NotImplementedError, match="activity_regularizer"):
        layers.Bidirectional(layers.LSTM(3, activity_regularizer="l2"))
    b = layers.Bidirectional(layers.LSTM(3, kernel_regularizer="l2"), activity_regularizer="l1")
    assert isinstance(b.backward_layer.kernel_regularizer, regularizers.L2)


def test_custom_regularizer_subclass_and_constraint_function(rng):
    class Centered(regularizers.Regularizer):
        def __call__(self, x):
            return 0.1 * float(np.sum(x) ** 2)

        def gradient(self, x):
            return np.full_like(x, 0.2 * np.sum(x))

    m = Sequential([layers.Input((3,)), layers.Dense(2, kernel_regularizer=Centered(),
                                                     kernel_constraint=lambda w: np.clip(w, -0.1, 0.1))])
    m.compile("sgd", "mse")
    m.fit(rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), verbose=0, epochs=2)
    assert np.abs(m.layers[0].kernel.value).max() <= 0.1 + 1e-7
