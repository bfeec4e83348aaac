"""The functional-API seed notebook, verbatim: a three-output functional model compiled
with metrics=['accuracy'] that only predicts (issue 25). Keras accepts that compile and
matches metrics to outputs only when it first trains or evaluates, where a one-entry
list for three outputs is an error; so must we, with Keras's message.

The program is run as the notebook is, with only its import changed; the same text
runs on Keras 3.15.1 in the parity check below.
"""

import numpy as np
import pytest

from conftest import require

NOTEBOOK = '''
import numpy as np
{import_line}
from {package} import layers

num_words = 500
max_len = 12

inputs = keras.Input(shape=(max_len,), name="review")
x = layers.Embedding(num_words, 16, mask_zero=True)(inputs)
x = layers.LSTM(24, return_sequences=True)(x)
x = layers.LSTM(16)(x)
sentiment = layers.Dense(1, activation="sigmoid", name="sentiment")(x)
topic = layers.Dense(5, activation="softmax", name="topic")(x)
stars = layers.Dense(1, name="stars")(x)

model = keras.Model(inputs=inputs, outputs=[sentiment, topic, stars])
model.compile(
    optimizer="adam",
    loss=["binary_crossentropy", "categorical_crossentropy", "mse"],
    metrics=["accuracy"],
)

reviews = np.random.default_rng(0).integers(1, num_words, size=(8, max_len))
predictions = model.predict(reviews, verbose=0)
for name, p in zip(["sentiment", "topic", "stars"], predictions):
    print(name, p.shape)
'''


def run(package):
    import_line = "import keras" if package == "keras" else f"import {package} as keras"
    scope = {}
    exec(NOTEBOOK.format(import_line=import_line, package=package), scope)  # noqa: S102 - our own text
    return scope


def _targets(scope):
    rng = np.random.default_rng(1)
    n = scope["reviews"].shape[0]
    return [rng.integers(0, 2, size=(n, 1)).astype("float32"), np.eye(5, dtype="float32")[rng.integers(0, 5, size=n)],
            rng.normal(size=(n, 1)).astype("float32")]


def test_the_notebook_runs_verbatim(capsys):
    scope = run("fusedlstm")
    assert [p.shape for p in scope["predictions"]] == [(8, 1), (8, 5), (8, 1)]
    assert capsys.readouterr().out.split() == ["sentiment", "(8,", "1)", "topic", "(8,", "5)", "stars", "(8,", "1)"]


@pytest.mark.parametrize("call", ["evaluate", "fit", "train_on_batch", "test_on_batch"])
def test_training_it_then_raises_keras_message(call):
    scope = run("fusedlstm")
    model, x = scope["model"], scope["reviews"]
    before = [w.copy() for w in model.get_weights()]
    kwargs = {"verbose": 0} if call in ("evaluate", "fit") else {}
    with pytest.raises(ValueError, match=r"Node arity mismatch; expected 3, but got 1\.\nInvalid `metrics`") as info:
        getattr(model, call)(x, _targets(scope), **kwargs)
    assert "['sentiment', 'topic', 'stars']" in str(info.value) and "Received: metrics=['accuracy']" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "no step may run first"


def test_one_metric_list_per_output_then_trains():
    scope = run("fusedlstm")
    model = scope["model"]
    model.compile(optimizer="adam", loss=["binary_crossentropy", "categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], ["accuracy"], None])
    logs = model.evaluate(scope["reviews"], _targets(scope), verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "sentiment_accuracy", "sentiment_loss", "stars_loss", "topic_accuracy", "topic_loss"]


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_does_the_same(monkeypatch):
    import os
    monkeypatch.setitem(os.environ, "KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    require("torch", "compare")
    require("keras", "compare")
    ks, ours = run("keras"), run("fusedlstm")
    assert [p.shape for p in ks["predictions"]] == [p.shape for p in ours["predictions"]]
    with pytest.raises(ValueError) as k_info:
        ks["model"].evaluate(ks["reviews"], _targets(ks), verbose=0)
    with pytest.raises(ValueError) as o_info:
        ours["model"].evaluate(ours["reviews"], _targets(ours), verbose=0)
    assert str(o_info.value) == str(k_info.value)
