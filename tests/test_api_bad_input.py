"""Bad input to the Keras-facing API raises a clear exception naming what was expected and given."""

import numpy as np
import pytest

from fusedlstm import losses
from fusedlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, TimeDistributed
from fusedlstm.models import Model, Sequential
from fusedlstm.optimizers import SGD, Adam, RMSprop


@pytest.fixture
def model():
    m = Sequential([Input((5, 4)), LSTM(3), Dense(2, activation="softmax")])
    m.compile("adam", "categorical_crossentropy")
    return m


def test_wrong_feature_size_names_expected_and_found(model, rng):
    with pytest.raises(ValueError, match=r"expected shape \(None, 5, 4\).*found shape \(2, 5, 3\)"):
        model.predict(rng.standard_normal((2, 5, 3)), verbose=0)


def test_wrong_rank(model, rng):
    with pytest.raises(ValueError, match="ndim=3.*ndim=2"):
        model.predict(rng.standard_normal((2, 4)), verbose=0)


def test_wrong_number_of_inputs(rng):
    a, b = Input((3, 2)), Input((3, 2))
    m = Model([a, b], Dense(1)(LSTM(2)(a)))
    with pytest.raises(ValueError, match="expects 2 input"):
        m.predict(rng.standard_normal((2, 3, 2)), verbose=0)


def test_non_numeric_input(model):
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a"] * 4] * 5), verbose=0)


def test_fit_before_compile():
    m = Sequential([Input((5, 4)), LSTM(3)])
    with pytest.raises(ValueError, match=r"compile\(\)"):
        m.fit(np.zeros((2, 5, 4)), np.zeros((2, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"compile\(\)"):
        m.train_on_batch(np.zeros((2, 5, 4)), np.zeros((2, 3)))


def test_compile_without_loss_cannot_fit(rng):
    m = Sequential([Input((5, 4)), LSTM(3)])
    m.compile("adam")
    with pytest.raises(ValueError, match="No loss"):
        m.fit(rng.standard_normal((2, 5, 4)), np.zeros((2, 3)), verbose=0)


def test_integer_labels_with_categorical_loss_suggest_sparse(model, rng):
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.fit(rng.standard_normal((4, 5, 4)), np.array([0, 1, 1, 0]), verbose=0)


def test_one_hot_labels_with_sparse_loss(rng):
    m = Sequential([Input((5, 4)), LSTM(3), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        m.fit(rng.standard_normal((4, 5, 4)), np.eye(2)[[0, 1, 1, 0]], verbose=0)
    with pytest.raises(ValueError, match=r"class id 7.*\[0, 2\)"):
        m.fit(rng.standard_normal((4, 5, 4)), np.array([0, 1, 7, 0]), verbose=0)
    with pytest.raises(ValueError, match="non-integral"):
        m.fit(rng.standard_normal((4, 5, 4)), np.array([0, 1, 0.5, 0]), verbose=0)


def test_target_count_mismatch(model, rng):
    with pytest.raises(ValueError, match="4 samples.*3"):
        model.fit(rng.standard_normal((4, 5, 4)), np.eye(2)[[0, 1, 1]], verbose=0)


def test_regression_target_shape_mismatch(rng):
    m = Sequential([Input((5, 4)), LSTM(3), Dense(2)])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)|does not match"):
        m.train_on_batch(rng.standard_normal((4, 5, 4)), np.zeros((4, 3)))


def test_stateful_batch_mismatch(rng):
    m = Sequential([Input(batch_shape=(4, 3, 2)), LSTM(3, stateful=True)])
    with pytest.raises(ValueError, match="batch size 4.*3 samples"):
        m.predict(rng.standard_normal((3, 3, 2)), batch_size=3, verbose=0)
    with pytest.raises(ValueError, match="batch size must be static"):
        Sequential([Input((3, 2)), LSTM(3, stateful=True)])


@pytest.mark.parametrize("bad", ["count", "shape"])
def test_set_weights_errors_name_layer_expected_and_given(bad):
    m = Sequential([Input((3, 2)), LSTM(4, name="enc"), Dense(1)])
    layer = m.get_layer("enc")
    w = layer.get_weights()
    if bad == "count":
        with pytest.raises(ValueError, match=r"'enc'.*length 2.*expecting 3"):
            layer.set_weights(w[:2])
        with pytest.raises(ValueError, match="length 4.*expecting 5"):
            m.set_weights(m.get_weights()[:4])
    else:
        w[1] = np.zeros((4, 15))
        with pytest.raises(ValueError, match=r"'enc'.*recurrent_kernel.*\(4, 16\).*\(4, 15\)"):
            layer.set_weights(w)
        mw = m.get_weights()
        mw[3] = np.zeros((5, 1))
        with pytest.raises(ValueError, match=r"\(4, 1\).*\(5, 1\)"):
            m.set_weights(mw)


def test_token_ids_out_of_range_or_fractional(rng):
    m = Sequential([Input((4,), dtype="int32"), Embedding(10, 3), LSTM(2)])
    with pytest.raises(ValueError, match=r"token id 10 at position \(1, 2\)"):
        ids = rng.integers(0, 10, (3, 4))
        ids[1, 2] = 10
        m.predict(ids, verbose=0)
    with pytest.raises(ValueError, match="token id -1"):
        m.predict(-np.ones((2, 4), int), verbose=0)
    with pytest.raises(ValueError, match="non-integral value 1.5"):
        m.predict(np.full((2, 4), 1.5), verbose=0)


@pytest.mark.parametrize("make,match", [
    (lambda: LSTM(0), "units"),
    (lambda: LSTM(4, activation="selu"), "selu"),
    (lambda: Dense(-1), "units"),
    (lambda: Dropout(1.5), "rate"),
    (lambda: Embedding(0, 3), "input_dim"),
    (lambda: Bidirectional(LSTM(2), merge_mode="max"), "merge mode"),
    (lambda: TimeDistributed("dense"), "Layer"),
    (lambda: Adam(amsgrad="yes"), "amsgrad"),
    (lambda: RMSprop(centered=None), "centered"),
    (lambda: SGD(clipnorm=1.0, clipvalue=1.0), "Only one of"),
    (lambda: Adam(weight_decay=-0.01), "weight_decay"),
    (lambda: Adam(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
    (lambda: SGD(momentum=2.0), "momentum"),
    (lambda: losses.get("dice"), "dice"),
    (lambda: losses.get(lambda t, p: 0), "Custom loss"),
])
def test_invalid_or_unsupported_arguments(make, match):
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        make()


def test_unsupported_optimizer_and_metric_names(rng):
    m = Sequential([Input((3, 2)), LSTM(2), Dense(2, activation="softmax")])
    with pytest.raises(NotImplementedError, match="adafactor"):
        m.compile("adafactor", "categorical_crossentropy")
    m.compile("adam", "categorical_crossentropy", metrics=["pearson_correlation"])
    with pytest.raises(NotImplementedError, match="pearson_correlation"):
        m.fit(rng.standard_normal((2, 3, 2)), np.eye(2), verbose=0)


def test_bad_fit_arguments(model, rng):
    x, y = rng.standard_normal((4, 5, 4)), np.eye(2)[[0, 1, 1, 0]]
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="shuffle"):
        model.fit(x, y, shuffle="always", verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x,), verbose=0)


def test_symbolic_misuse():
    inp = Input((3, 2))
    with pytest.raises(NotImplementedError, match="Arithmetic"):
        inp + inp  # noqa: B018
    with pytest.raises(ValueError, match="ndim=3"):
        LSTM(2)(Input((4,)))
    with pytest.raises(ValueError, match="Graph disconnected"):
        other = Input((3, 2))
        Model(inp, LSTM(2)(other))
