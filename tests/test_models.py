"""Sequential and functional models: construction variants, calling, shapes, fusions, threads."""

import threading

import numpy as np
import pytest

from fusedlstm.layers import (LSTM, Bidirectional, Concatenate, Dense, Embedding, Input, InputLayer,
                              RepeatVector, TimeDistributed)
from fusedlstm.models import Model, Sequential
from fusedlstm.models.fusion import EmbeddingLSTM, RepeatLSTM


def _same_weights(dst, src):
    dst.set_weights(src.get_weights())


def test_sequential_construction_spellings_are_equivalent(rng):
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    a = Sequential([LSTM(6, input_shape=(5, 4)), Dense(2)])
    b = Sequential([Input((5, 4)), LSTM(6), Dense(2)])
    c = Sequential()
    c.add(InputLayer(input_shape=(5, 4)))
    c.add(LSTM(6))
    c.add(Dense(2))
    d = Sequential([LSTM(6, batch_input_shape=(None, 5, 4)), Dense(2)])
    e = Sequential([LSTM(6, input_dim=4, input_length=5), Dense(2)])  # Keras 2
    f = Sequential([LSTM(6), Dense(2)])  # built from the first data
    f.predict(x, verbose=0)
    for m in (b, c, d, e, f):
        _same_weights(m, a)
        np.testing.assert_array_equal(m.predict(x, verbose=0), a.predict(x, verbose=0))
        assert m.output_shape == (None, 2)
        assert [type(layer).__name__ for layer in m.layers] == ["LSTM", "Dense"]


def test_model_call_is_predict_on_one_batch(rng):
    m = Sequential([Input((None, 3)), LSTM(4, return_sequences=True), TimeDistributed(Dense(2))])
    x = rng.standard_normal((5, 7, 3)).astype("float32")
    np.testing.assert_array_equal(m(x), m.predict(x, verbose=0))
    np.testing.assert_array_equal(m.predict_on_batch(x), m(x))


def test_any_time_length_when_not_fixed(rng):
    m = Sequential([Input((None, 3)), LSTM(4, return_sequences=True), Dense(2)])
    for T in (1, 4, 9):
        assert m.predict(rng.standard_normal((2, T, 3)), verbose=0).shape == (2, T, 2)


def test_float64_and_int_inputs_cast_like_keras(rng):
    m = Sequential([Input((4, 3)), LSTM(4)])
    x = rng.standard_normal((2, 4, 3))
    np.testing.assert_array_equal(m.predict(x, verbose=0), m.predict(x.astype("float32"), verbose=0))
    xi = rng.integers(-2, 3, (2, 4, 3))
    np.testing.assert_array_equal(m.predict(xi, verbose=0), m.predict(xi.astype("float32"), verbose=0))
    # non-contiguous input
    big = rng.standard_normal((2, 8, 6)).astype("float32")
    view = big[:, ::2, ::2]
    np.testing.assert_array_equal(m.predict(view, verbose=0), m.predict(np.ascontiguousarray(view), verbose=0))
    # token ids given as integral floats
    e = Sequential([Input((5,), dtype="int32"), Embedding(10, 3), LSTM(2)])
    ids = rng.integers(0, 10, (3, 5))
    np.testing.assert_array_equal(e.predict(ids.astype("float64"), verbose=0), e.predict(ids, verbose=0))


def test_functional_multi_input_output_and_names(rng):
    a, b = Input((None, 3), name="a"), Input((None, 2), name="b")
    h = Concatenate()([LSTM(4)(a), LSTM(5)(b)])
    o1 = Dense(2, name="first")(h)
    o2 = Dense(1, name="second")(h)
    m = Model([a, b], [o1, o2])
    assert m.output_names == ["first", "second"]
    assert [type(l).__name__ for l in m.layers][:2] == ["InputLayer", "InputLayer"]
    xa, xb = rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 6, 2))
    y1, y2 = m.predict([xa, xb], verbose=0)
    assert y1.shape == (4, 2) and y2.shape == (4, 1)
    d1, d2 = m.predict({"a": xa, "b": xb}, verbose=0)
    np.testing.assert_array_equal(d1, y1)


def test_encoder_decoder_inference_models_share_trained_layers(rng):
    V, H = 6, 8
    enc_in = Input((None, V))
    _, h, c = LSTM(H, return_state=True)(enc_in)
    dec_in = Input((None, V))
    dec_lstm = LSTM(H, return_sequences=True, return_state=True)
    dec_dense = Dense(V, activation="softmax")
    y, _, _ = dec_lstm(dec_in, initial_state=[h, c])
    train = Model([enc_in, dec_in], dec_dense(y))
    train.compile("adam", "categorical_crossentropy")
    xe = np.eye(V, dtype="float32")[rng.integers(0, V, (16, 5))]
    xd = np.eye(V, dtype="float32")[rng.integers(0, V, (16, 4))]
    train.fit([xe, xd], xd, epochs=2, verbose=0)
    # the classic seq2seq inference split, reusing the trained layers
    encoder = Model(enc_in, [h, c])
    sh, sc = Input((H,)), Input((H,))
    y2, h2, c2 = dec_lstm(dec_in, initial_state=[sh, sc])
    decoder = Model([dec_in, sh, sc], [dec_dense(y2), h2, c2])
    eh, ec = encoder.predict(xe, verbose=0)
    probs, _, _ = decoder.predict([xd, eh, ec], verbose=0)
    np.testing.assert_allclose(probs, train.predict([xe, xd], verbose=0), atol=1e-6)
    # step-by-step decoding carries the state exactly
    p_step, hh, cc = decoder.predict([xd[:, :2], eh, ec], verbose=0)
    p_next, _, _ = decoder.predict([xd[:, 2:], hh, cc], verbose=0)
    np.testing.assert_allclose(np.concatenate([p_step, p_next], 1), probs, atol=1e-6)
    # training the encoder model alone re-claims its weights; the big model still sees them
    encoder.compile("sgd", "mse")
    encoder.fit(xe, [eh, ec], epochs=1, verbose=0)
    after = train.predict([xe, xd], verbose=0)
    np.testing.assert_allclose(decoder.predict([xd, *encoder.predict(xe, verbose=0)], verbose=0)[0], after, atol=1e-6)
    train.fit([xe, xd], xd, epochs=1, verbose=0)  # and it can train again


def test_fusions_are_planned_and_match_unfused(rng):
    emb = Sequential([Input((6,), dtype="int32"), Embedding(8, 4), LSTM(5)])
    assert isinstance(emb._plan.steps[0].op, EmbeddingLSTM)
    ids = rng.integers(0, 8, (40, 6))  # V=8 <= B*T: table path
    E, W, U, b = emb.get_weights()
    want = Sequential([Input((6, 4)), LSTM(5)])
    want.set_weights([W, U, b])
    np.testing.assert_allclose(emb.predict(ids, verbose=0), want.predict(E[ids], verbose=0), atol=2e-6)
    rep = Sequential([Input((3,)), RepeatVector(5), Bidirectional(LSTM(4, return_sequences=True))])
    assert isinstance(rep._plan.steps[0].op, RepeatLSTM)
    x = rng.standard_normal((4, 3)).astype("float32")
    want = Sequential([Input((5, 3)), Bidirectional(LSTM(4, return_sequences=True))])
    want.set_weights(rep.get_weights())
    np.testing.assert_allclose(rep.predict(x, verbose=0), want.predict(np.repeat(x[:, None], 5, 1), verbose=0), atol=2e-6)


def test_nested_sequential_inside_functional(rng):
    inner = Sequential([Input((None, 3)), LSTM(4, return_sequences=True)])
    inp = Input((None, 3))
    m = Model(inp, Dense(2)(inner(inp)))
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    np.testing.assert_allclose(m.predict(x, verbose=0), m.layers[-1](inner.predict(x, verbose=0)), atol=1e-6)
    assert m.count_params() == inner.count_params() + m.layers[-1].count_params()


def test_get_layer_and_weights_api(rng):
    m = Sequential([Input((3, 2)), LSTM(3, name="enc"), Dense(1, name="out")])
    assert m.get_layer("enc") is m.layers[0] and m.get_layer(index=1).name == "out"
    with pytest.raises(ValueError, match="No such layer"):
        m.get_layer("nope")
    w = m.get_weights()
    assert [a.shape for a in w] == [(2, 12), (3, 12), (12,), (3, 1), (1,)]
    m.set_weights([np.ones_like(a) for a in w])
    assert all(np.all(a == 1) for a in m.get_weights())
    assert m.count_params() == sum(a.size for a in w)


def test_concurrent_predict_matches_sequential_calls(rng):
    m = Sequential([Input((None, 5)), LSTM(16, return_sequences=True), LSTM(8), Dense(3, activation="softmax")])
    xs = [rng.standard_normal((17, 4 + k, 5)).astype("float32") for k in range(6)]
    want = [m.predict(x, verbose=0) for x in xs]
    got = [None] * len(xs)
    errors = []

    def work(k):
        try:
            for _ in range(5):
                got[k] = m.predict(xs[k], batch_size=4, verbose=0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_functional_summary_has_connections():
    a = Input((None, 3))
    b = Input((None, 3))
    m = Model([a, b], Dense(1)(Concatenate()([LSTM(2)(a), LSTM(2)(b)])))
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "InputLayer" in text and "Concatenate" in text


def test_unbuilt_sequential_summary_and_count_params_raise():
    m = Sequential([LSTM(3)])
    with pytest.raises(ValueError, match="not yet been built"):
        m.summary()
    with pytest.raises(ValueError, match="isn't built"):
        m.count_params()
    m.build((None, 4, 2))
    assert m.count_params() == 4 * 3 * (2 + 3 + 1)


def test_sequential_rejects_multi_output_layers():
    with pytest.raises(ValueError, match="single output"):
        Sequential([Input((3, 2)), LSTM(3, return_state=True)])


def test_keras2_notebook_spellings(rng):
    m = Sequential()
    m.add(Embedding(50, 8, input_length=10))
    m.add(Bidirectional(LSTM(4, return_sequences=True),
                        backward_layer=LSTM(4, return_sequences=True, go_backwards=True)))
    m.add(LSTM(3))
    m.add(Dense(1, activation="sigmoid"))
    assert m.layers[0].output.shape == (None, 10, 8) and m.output_shape == (None, 1)
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    ids = rng.integers(0, 50, (16, 10))
    labels = [int(v) for v in rng.integers(0, 2, 16)]  # a plain Python list of labels
    h = m.fit(ids, labels, epochs=1, verbose=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    classes = m.predict_classes(ids)
    np.testing.assert_array_equal(classes[:, 0], (m.predict(ids, verbose=0)[:, 0] > 0.5).astype(int))
