"""fusedlstm.layers.TextVectorization: the layer around preprocessing.TextVectorization's logic.

Keras's own TextVectorization needs TensorFlow (not an extra of ours), so it cannot run
here; the text logic is checked against Keras's documented behaviour in
test_text_vectorization.py. This file checks the layer: standalone calls, a string
Input feeding it in Sequential and functional models (predict, evaluate, fit give what
the same model gives on the ids), its config with the vocabulary, and our file format.
"""

import numpy as np
import pytest

from fusedlstm import preprocessing
from fusedlstm.layers import LSTM, Dense, Embedding, Input, TextVectorization
from fusedlstm.models import Model, Sequential, load_model
from fusedlstm.utils import PyDataset, set_random_seed

TEXTS = ["The cat sat on the mat.", "A dog ran!", "the dog sat", "Cats and dogs, and a mat?", "é ü 日本 cat"]
QUERIES = ["the dog", "cat on mat now", "", "unknown words only", "THE CAT SAT ON THE MAT AND THE DOG"]


def adapted(**kwargs):
    tv = TextVectorization(**kwargs)
    tv.adapt(TEXTS)
    return tv


@pytest.mark.parametrize("kwargs", [dict(), dict(max_tokens=7, output_sequence_length=5),
                                    dict(split="character", output_sequence_length=9, standardize="lower"),
                                    dict(ngrams=2, output_sequence_length=6), dict(split=None, max_tokens=4)])
def test_layer_calls_give_the_logic_s_ids(kwargs):
    logic = preprocessing.TextVectorization(**kwargs)
    logic.adapt(TEXTS)
    layer = adapted(**kwargs)
    assert layer.get_vocabulary() == logic.get_vocabulary()
    for q in (QUERIES, np.array(QUERIES)[:, None], "one string"):
        out = layer(q)
        np.testing.assert_array_equal(out, logic(q))
        assert out.dtype == np.int64


def test_vocabulary_methods_and_errors():
    layer = TextVectorization(vocabulary=["earth", "wind", "and", "fire"], output_sequence_length=4)
    assert layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]
    assert layer.get_vocabulary(include_special_tokens=False) == ["earth", "wind", "and", "fire"]
    assert layer.vocabulary_size() == 6
    np.testing.assert_array_equal(layer(["wind and rain"]), [[3, 4, 1, 0]])
    with pytest.raises(ValueError, match="Cannot adapt"):
        layer.adapt(TEXTS)
    layer.set_vocabulary(["", "[UNK]", "rain"])
    np.testing.assert_array_equal(layer(["wind and rain"]), [[1, 1, 2, 0]])
    with pytest.raises(TypeError, match="expects strings"):
        layer(np.array([[1.0, 2.0]]))
    with pytest.raises(NotImplementedError, match="output_mode"):
        TextVectorization(output_mode="multi_hot")


def text_model(kind, tv, seed, length=6):
    set_random_seed(seed)
    if kind == "sequential":
        m = Sequential([Input(shape=(1,), dtype="string"), tv, Embedding(30, 4), LSTM(5),
                        Dense(3, activation="softmax")])
    else:
        inp = Input(shape=(), dtype="string", name="text")
        m = Model(inp, Dense(3, activation="softmax")(LSTM(5)(Embedding(30, 4)(tv(inp)))))
    ids = Sequential([Input(shape=(length,), dtype="int64"), Embedding(30, 4), LSTM(5), Dense(3, activation="softmax")])
    ids.set_weights(m.get_weights())
    return m, ids


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_first_layer_of_a_model_on_strings(kind, rng, seed):
    tv = adapted(max_tokens=30, output_sequence_length=6)
    m, ids = text_model(kind, tv, seed)
    x = np.array(QUERIES + TEXTS)
    x_in = x[:, None] if kind == "sequential" else x
    np.testing.assert_array_equal(m.predict(x_in, verbose=0, batch_size=4), ids.predict(tv(x), verbose=0, batch_size=4))
    assert tv in m.layers
    y = rng.integers(0, 3, len(x))
    for model in (m, ids):
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x_in, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    h_ids = ids.fit(tv(x), y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    assert h.history == h_ids.history
    assert m.evaluate(x_in, y, verbose=0) == ids.evaluate(tv(x), y, verbose=0)


def test_strings_from_a_py_dataset(seed):
    tv = adapted(max_tokens=30, output_sequence_length=6)
    m, ids = text_model("sequential", tv, seed)
    x = np.array(TEXTS)[:, None]

    class Texts(PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[3 * i:3 * i + 3]
    np.testing.assert_array_equal(m.predict(Texts(), verbose=0), ids.predict(tv(x[:, 0]), verbose=0))


def test_string_input_checks(seed):
    m, _ = text_model("sequential", adapted(max_tokens=30, output_sequence_length=6), seed)
    with pytest.raises(TypeError, match="string input; got an array of dtype float64"):
        m.predict(np.zeros((2, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"expected strings of shape \(None, 1\), found shape \(2, 2\)"):
        m.predict(np.array([["a", "b"], ["c", "d"]]), verbose=0)


def test_config_round_trip_keeps_the_adapted_vocabulary(seed):
    tv = adapted(max_tokens=12, output_sequence_length=5, standardize="lower", ngrams=2)
    cfg = tv.get_config()
    assert cfg["vocabulary"] == tv.get_vocabulary() and cfg["max_tokens"] == 12 and cfg["ngrams"] == 2
    back = TextVectorization.from_config(cfg)
    assert back.get_vocabulary() == tv.get_vocabulary() and back.get_config() == cfg
    np.testing.assert_array_equal(back(QUERIES), tv(QUERIES))
    back.adapt(["new words", "new"])  # a loaded vocabulary may be adapted again
    assert back.get_vocabulary()[:4] == ["", "[UNK]", "new", "words"]
    assert TextVectorization().get_config()["vocabulary"] is None
    with pytest.raises(NotImplementedError, match="callable as `standardize`"):
        TextVectorization(standardize=lambda s: s).get_config()


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_model_saved_in_our_format_with_its_vocabulary(kind, tmp_path, seed):
    tv = adapted(max_tokens=30, output_sequence_length=6)
    m, _ = text_model(kind, tv, seed)
    x = np.array(QUERIES)[:, None] if kind == "sequential" else np.array(QUERIES)
    want = m.predict(x, verbose=0)
    m.save(tmp_path / "text.fusedlstm")
    back = load_model(tmp_path / "text.fusedlstm")
    np.testing.assert_array_equal(back.predict(x, verbose=0), want)
    loaded_tv = [layer for layer in back.layers if isinstance(layer, TextVectorization)][0]
    assert loaded_tv.get_vocabulary() == tv.get_vocabulary()
    again = type(m).from_config(m.get_config())
    again.set_weights(m.get_weights())
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)


def test_keras_files_are_refused_clearly(tmp_path, seed):
    m, _ = text_model("sequential", adapted(max_tokens=30, output_sequence_length=6), seed)
    for name in ("text.keras", "text.h5"):
        with pytest.raises(ValueError, match="TextVectorization is not read from or written to Keras's file"):
            m.save(tmp_path / name)
        assert not (tmp_path / name).exists()
