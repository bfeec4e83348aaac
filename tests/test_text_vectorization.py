"""TextVectorization's logic (output_mode="int"), against Keras 3.15.1's documented behaviour.

Keras's layer needs TensorFlow even on the torch backend, and TensorFlow is not an
extra of ours, so Keras cannot run it here. What is checked instead: the examples
of Keras's docstring, verbatim; the vocabulary order against IndexLookup's own
expression, np.lexsort((tokens, counts))[::-1] over UTF-8 bytes; and the TF string
ops Keras uses, as TensorFlow documents them (tf.strings.lower with its default
encoding lowercases ASCII only; tf.strings.split without a separator splits on
runs of ASCII whitespace; tf.strings.unicode_split on code points).
"""

import collections
import string

import numpy as np
import pytest

from fusedlstm.preprocessing import TextVectorization


def test_keras_docstring_example_adapt():
    vectorize_layer = TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    vectorize_layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    out = vectorize_layer([["foo qux bar"], ["qux baz"]])
    np.testing.assert_array_equal(out, [[4, 1, 3, 0], [1, 2, 0, 0]])
    assert out.dtype == np.int64


def test_keras_docstring_example_vocabulary():
    vectorize_layer = TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4,
                                        vocabulary=["earth", "wind", "and", "fire"])
    assert vectorize_layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]


def lexsort_vocabulary(counts, max_tokens=None):
    """IndexLookup.finalize_state's order, on the tokens' UTF-8 bytes as TensorFlow holds them."""
    tokens = np.array([t.encode("utf-8") for t in counts], dtype=object)
    freq = np.array([counts[t] for t in counts])
    order = np.lexsort((tokens, freq))[::-1]
    if max_tokens:
        order = order[:max_tokens - 2]
    return ["", "[UNK]"] + [tokens[i].decode("utf-8") for i in order]


@pytest.mark.parametrize("max_tokens", [None, 5, 12])
def test_vocabulary_order_is_index_lookup_s(max_tokens, rng, seed):
    words = ["a", "b", "ab", "ba", "zz", "é", "ü", "日本", "x1", "Z"]  # ties, prefixes, non-ASCII, capitals
    docs = [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(30)]
    tv = TextVectorization(max_tokens=max_tokens, standardize=None)
    tv.adapt(docs)
    counts = collections.Counter(w for d in docs for w in d.split())
    assert tv.get_vocabulary() == lexsort_vocabulary(counts, max_tokens), f"seed={seed}"
    assert tv.vocabulary_size() == len(tv.get_vocabulary())
    assert tv.get_vocabulary(include_special_tokens=False) == tv.get_vocabulary()[2:]


def test_standardize_modes():
    text = 'ÉCOLE Straße, "Hi!" ¿Qué? — (x_y) Ǆ'
    cases = {
        "lower_and_strip_punctuation": ["École", "straße", "hi", "¿qué", "—", "xy", "Ǆ"],
        "lower": ["École", "straße,", '"hi!"', "¿qué?", "—", "(x_y)", "Ǆ"],
        "strip_punctuation": ["ÉCOLE", "Straße", "Hi", "¿Qué", "—", "xy", "Ǆ"],
        None: ["ÉCOLE", "Straße,", '"Hi!"', "¿Qué?", "—", "(x_y)", "Ǆ"],
    }
    for mode, tokens in cases.items():
        tv = TextVectorization(standardize=mode)
        tv.set_vocabulary(tokens)
        ids = tv([text])[0].tolist()
        assert ids == list(range(2, 2 + len(tokens))), f"{mode}: {ids}"


def test_every_ascii_punctuation_mark_is_stripped():
    tv = TextVectorization(standardize="strip_punctuation", split=None, vocabulary=["ab"])
    assert tv([f"a{string.punctuation}b"]).tolist() == [2]


def test_whitespace_split_is_ascii_whitespace():
    tv = TextVectorization(standardize=None, vocabulary=["a", "b", "c\u00a0d"])
    assert tv(["  a\tb\n\r\x0b\x0c c\u00a0d  "]).tolist() == [[2, 3, 4]]


def test_character_and_no_split():
    tv = TextVectorization(split="character", standardize=None, vocabulary=["h", "é", "日"])
    assert tv(["hé日x"]).tolist() == [[2, 3, 4, 1]]
    whole = TextVectorization(split=None, standardize="lower", vocabulary=["hello world"])
    assert whole([["Hello World"], ["other"]]).tolist() == [[2], [1]]


def test_callables_get_numpy_string_arrays():
    seen = []

    def std(x):
        seen.append(type(x))
        return np.char.replace(np.char.lower(x), "-", " ")

    def split(x):
        seen.append(type(x))
        return [s.split("|") for s in x]
    tv = TextVectorization(standardize=std, split=split)
    tv.adapt(["A-B|c", "a b|C"])
    assert tv.get_vocabulary() == ["", "[UNK]", "c", "a b"]
    assert seen and all(t is np.ndarray for t in seen)


def test_output_lengths_and_shapes():
    tv = TextVectorization(vocabulary=["a", "b", "c"])
    assert tv(["a b c a", "b"]).tolist() == [[2, 3, 4, 2], [3, 0, 0, 0]]  # padded to the longest row
    assert tv("c a").tolist() == [4, 2]  # one string
    assert tv(np.array([b"a", b"b c"])).tolist() == [[2, 0], [3, 4]]  # bytes are decoded
    cut = TextVectorization(vocabulary=["a", "b", "c"], output_sequence_length=2)
    assert cut(["a b c", "c"]).tolist() == [[2, 3], [4, 0]]
    assert cut([]).shape == (0, 2)
    with pytest.raises(ValueError, match="last shape dimension must be 1"):
        tv(np.array([["a", "b"]]))


def test_ngrams():
    tv = TextVectorization(ngrams=2, vocabulary=["a", "b", "a b"])
    assert tv(["a b"]).tolist() == [[2, 3, 4]]
    three = TextVectorization(ngrams=(3,), standardize=None)
    three.adapt(["x y z w"])
    assert three.get_vocabulary()[2:] == ["y z w", "x y z"]


def test_adapt_iterables_steps_and_reset():
    tv = TextVectorization()
    tv.adapt(iter([["a a b"], ["c"], ["d d d"]]), steps=2)
    assert tv.get_vocabulary() == ["", "[UNK]", "a", "c", "b"]
    tv.adapt(np.array(["z"]))  # a new adapt starts from zero counts
    assert tv.get_vocabulary() == ["", "[UNK]", "z"]
    with pytest.raises(ValueError, match="steps"):
        tv.adapt(["a"], steps=1)


def test_set_vocabulary_rules(tmp_path):
    tv = TextVectorization(max_tokens=4)
    tv.set_vocabulary(["", "[UNK]", "x", "y"])
    assert tv.get_vocabulary() == ["", "[UNK]", "x", "y"]
    with pytest.raises(ValueError, match="larger than the maximum vocab size"):
        tv.set_vocabulary(["x", "y", "z"])
    with pytest.raises(ValueError, match="repeated term"):
        TextVectorization(vocabulary=["x", "x"])
    with pytest.raises(ValueError, match="reserved mask token"):
        TextVectorization(vocabulary=["x", ""])
    with pytest.raises(ValueError, match="empty vocabulary"):
        TextVectorization(vocabulary=[])
    with pytest.raises(ValueError, match="Cannot adapt"):
        TextVectorization(vocabulary=["x"]).adapt(["x"])
    path = tmp_path / "vocab.txt"
    path.write_text("earth\nwind\nand fire\n", encoding="utf-8")
    fromfile = TextVectorization(vocabulary=str(path), split=None, standardize=None)
    assert fromfile.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and fire"]
    with pytest.raises(ValueError, match="does not exist"):
        TextVectorization(vocabulary=str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(output_mode="multi_hot"), NotImplementedError, "output_mode"),
    (dict(ragged=True), NotImplementedError, "ragged"),
    (dict(standardize="upper"), ValueError, "standardize"),
    (dict(split="comma"), ValueError, "split"),
    (dict(ngrams=1.5), ValueError, "ngrams"),
    (dict(output_sequence_length=2.0), ValueError, "output_sequence_length"),
    (dict(max_tokens=1), ValueError, "max_tokens"),
])
def test_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        TextVectorization(**kwargs)


def test_non_strings_are_refused():
    with pytest.raises(TypeError, match="expects strings"):
        TextVectorization(vocabulary=["a"])([1, 2])


def test_config_round_trip():
    tv = TextVectorization(max_tokens=10, split="character", ngrams=(1, 2), output_sequence_length=5,
                           vocabulary=["a", "b"])
    again = TextVectorization.from_config(tv.get_config())
    assert again.get_vocabulary() == tv.get_vocabulary()
    np.testing.assert_array_equal(again(["abba"]), tv(["abba"]))
