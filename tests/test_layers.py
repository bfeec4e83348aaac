"""Layers: Keras parameter counts, output shapes, weights API, masks, states, initializers."""

import numpy as np
import pytest

from fusedlstm import initializers
from fusedlstm.layers import (LSTM, Activation, Bidirectional, Dense, Dropout, Embedding, Flatten,
                              Input, Masking, RepeatVector, SpatialDropout1D, TimeDistributed)
from fusedlstm.models import Model, Sequential
from fusedlstm.utils import set_random_seed

# (layer, input shape without batch, Keras's parameter count) from the task's Keras summaries.
PARAM_COUNTS = [
    (lambda: LSTM(25), (5, 100), 12_600),
    (lambda: Dense(100), (25,), 2_600),
    (lambda: Embedding(27, 64), (7,), 1_728),
    (lambda: LSTM(64), (7, 64), 33_024),
    (lambda: Dense(27), (64,), 1_755),
    (lambda: LSTM(256), (7, 64), 328_704),
    (lambda: TimeDistributed(Dense(27)), (7, 256), 6_939),
    (lambda: LSTM(16), (7, 100), 7_488),
    (lambda: LSTM(150), (7, 100), 150_600),
    (lambda: Bidirectional(LSTM(16)), (7, 100), 2 * 7_488),
    (lambda: LSTM(8, use_bias=False), (3, 4), 4 * 8 * (4 + 8)),
]


@pytest.mark.parametrize("make,shape,count", PARAM_COUNTS)
def test_param_counts_match_keras(make, shape, count):
    layer = make()
    Sequential([Input(shape, dtype="int32" if isinstance(layer, Embedding) else None), layer])
    assert layer.count_params() == count


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_lstm_output_shapes(rng, return_sequences, return_state):
    layer = LSTM(6, return_sequences=return_sequences, return_state=return_state)
    inp = Input((None, 4))
    out = layer(inp)
    y = layer(rng.standard_normal((3, 5, 4)))
    want = (3, 5, 6) if return_sequences else (3, 6)
    sym = (None, None, 6) if return_sequences else (None, 6)
    if return_state:
        assert [t.shape for t in out] == [sym, (None, 6), (None, 6)]
        assert [a.shape for a in y] == [want, (3, 6), (3, 6)]
        # the returned h is the last output when nothing is masked
        last = y[0][:, -1] if return_sequences else y[0]
        np.testing.assert_array_equal(last, y[1])
    else:
        assert out.shape == sym
        assert y.shape == want


def test_summary_shapes_and_totals():
    m = Sequential([Input((5, 100)), LSTM(25, return_sequences=True),
                    TimeDistributed(Dense(100, activation="softmax"))])
    lines = []
    m.summary(print_fn=lines.append, line_length=76)
    text = "\n".join(lines)
    assert "(None, 5, 25)" in text and "(None, 5, 100)" in text
    assert "lstm" in text and "(LSTM)" in text and "12,600" in text and "2,600" in text
    assert "Total params: 15,200 (59.38 KB)" in text
    assert "Trainable params: 15,200 (59.38 KB)" in text
    assert "Non-trainable params: 0 (0.00 B)" in text
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    # rich's layout of keras's columns at 76 characters: 33 + 24 + 15 wide cells
    assert text.splitlines()[1] == "┏" + "━" * 33 + "┳" + "━" * 24 + "┳" + "━" * 15 + "┓"


def test_layer_weights_roundtrip_and_order(rng):
    layer = Bidirectional(LSTM(3))
    Sequential([Input((4, 2)), layer])
    names = [v.name for v in layer.weights]
    assert names == ["kernel", "recurrent_kernel", "bias"] * 2
    assert all(v.path.startswith("forward_lstm") for v in layer.weights[:3])
    assert all(v.path.startswith("backward_lstm") for v in layer.weights[3:])
    new = [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(new)
    for a, b in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    # get_weights returns copies
    layer.get_weights()[0][...] = 0
    assert np.any(layer.get_weights()[0] != 0)


def _np_lstm(x, W, U, b, h=None, c=None, go_backwards=False):
    """Straight NumPy LSTM (Keras gate order i, f, c, o) used as a hand-written oracle."""
    B, T, _ = x.shape
    H = U.shape[0]
    h = np.zeros((B, H)) if h is None else h
    c = np.zeros((B, H)) if c is None else c
    sig = lambda z: 1 / (1 + np.exp(-z))
    ys = []
    for s in range(T):
        t = T - 1 - s if go_backwards else s
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1), h, c


def test_lstm_matches_numpy_oracle_and_initial_state(rng):
    x = rng.standard_normal((3, 6, 4)).astype("float32")
    layer = LSTM(5, return_sequences=True, return_state=True)
    h0 = rng.standard_normal((3, 5)).astype("float32")
    c0 = rng.standard_normal((3, 5)).astype("float32")
    y, h, c = layer(x, initial_state=[h0, c0])
    W, U, b = layer.get_weights()
    ys, hh, cc = _np_lstm(x.astype(float), W, U, b, h0, c0)
    np.testing.assert_allclose(y, ys, atol=2e-6)
    np.testing.assert_allclose(h, hh, atol=2e-6)
    np.testing.assert_allclose(c, cc, atol=2e-6)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_equals_two_lstms_by_hand(rng, merge):
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    bi = Bidirectional(LSTM(4, return_sequences=True), merge_mode=merge)
    out = bi(x)
    Wf, Uf, bf, Wb, Ub, bb = bi.get_weights()
    yf, _, _ = _np_lstm(x.astype(float), Wf, Uf, bf)
    yb, _, _ = _np_lstm(x.astype(float), Wb, Ub, bb, go_backwards=True)
    yb = yb[:, ::-1]
    want = {"concat": np.concatenate([yf, yb], -1), "sum": yf + yb, "mul": yf * yb,
            "ave": (yf + yb) / 2, None: [yf, yb]}[merge]
    if merge is None:
        np.testing.assert_allclose(out[0], want[0], atol=2e-6)
        np.testing.assert_allclose(out[1], want[1], atol=2e-6)
    else:
        np.testing.assert_allclose(out, want, atol=2e-6)


def test_masked_steps_keep_state_and_repeat_output(rng):
    """Keras 3 semantics: a masked step keeps (h, c); a plain LSTM repeats the previous output."""
    ids = np.array([[3, 0, 4, 0], [0, 2, 5, 1]])
    emb = Embedding(6, 3, mask_zero=True)
    lstm = LSTM(4, return_sequences=True, return_state=True)
    inp = Input((None,), dtype="int32")
    y, h, c = lstm(emb(inp))
    m = Model(inp, [y, h, c])
    ys, hs, cs = m.predict(ids, verbose=0)
    # row 0: step 1 masked -> repeats step 0; step 3 masked -> repeats step 2
    np.testing.assert_array_equal(ys[0, 1], ys[0, 0])
    np.testing.assert_array_equal(ys[0, 3], ys[0, 2])
    np.testing.assert_array_equal(hs[0], ys[0, 2])
    # row 1: a leading masked step outputs zeros
    np.testing.assert_array_equal(ys[1, 0], 0)
    # the masked sequence equals the unmasked run over the real tokens only
    only = Model(inp, lstm(emb(inp))[0])
    y_real = only.predict(np.array([[3, 4]]), verbose=0)
    np.testing.assert_allclose(ys[0, 2], y_real[0, 1], atol=1e-6)


def test_bidirectional_zeroes_masked_outputs():
    ids = np.array([[3, 0, 4, 0]])
    m = Sequential([Input((4,), dtype="int32"), Embedding(6, 3, mask_zero=True),
                    Bidirectional(LSTM(4, return_sequences=True))])
    y = m.predict(ids, verbose=0)
    np.testing.assert_array_equal(y[0, 1], 0)
    np.testing.assert_array_equal(y[0, 3], 0)
    assert np.all(y[0, 0] != 0)


def test_masking_layer_masks_all_mask_value_steps(rng):
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    x[0, 2] = 0.0
    m = Sequential([Input((4, 3)), Masking(0.0), LSTM(3, return_sequences=True)])
    y = m.predict(x, verbose=0)
    np.testing.assert_array_equal(y[0, 2], y[0, 1])


def test_stateful_carries_state_until_reset(rng):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    m = Sequential([Input(batch_shape=(2, 3, 4)), LSTM(5, stateful=True)])
    a = m.predict(x, verbose=0)
    b = m.predict(x, verbose=0)
    assert np.abs(a - b).max() > 1e-4
    # the carried state is the final state of the previous call: a 6-step sequence in one go
    m.reset_states()
    first = m.predict(x, verbose=0)
    second = m.predict(x[:, ::-1].copy(), verbose=0)
    whole = Sequential([Input(batch_shape=(2, 6, 4)), LSTM(5)])
    whole.set_weights(m.get_weights())
    np.testing.assert_allclose(second, whole.predict(np.concatenate([x, x[:, ::-1]], 1), verbose=0), atol=1e-6)
    m.reset_states()
    np.testing.assert_array_equal(m.predict(x, verbose=0), first)
    np.testing.assert_array_equal(first, a)


def test_stateful_states_can_be_set(rng):
    layer = LSTM(3, stateful=True)
    Sequential([Input(batch_shape=(2, 4, 2)), layer])
    h = rng.standard_normal((2, 3)).astype("float32")
    layer.reset_states([h, np.zeros((2, 3), "float32")])
    np.testing.assert_array_equal(layer.states[0], h)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        layer.reset_states([np.zeros((3, 3)), np.zeros((2, 3))])


def test_glorot_orthogonal_and_forget_bias(seed):
    set_random_seed(seed)
    layer = LSTM(50)
    Sequential([Input((3, 30)), layer])
    W, U, b = layer.get_weights()
    limit = np.sqrt(6 / (30 + 200))
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
    # orthogonal (H, 4H): rows orthonormal
    np.testing.assert_allclose(U @ U.T, np.eye(50), atol=1e-5)
    np.testing.assert_array_equal(b, np.r_[np.zeros(50), np.ones(50), np.zeros(100)])


def test_initializers_are_reproducible_with_the_seed(seed):
    set_random_seed(seed)
    a = Sequential([Input((3, 4)), LSTM(5), Dense(2)]).get_weights()
    set_random_seed(seed)
    b = Sequential([Input((3, 4)), LSTM(5), Dense(2)]).get_weights()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    init = initializers.get("orthogonal")
    q = init((6, 3))
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-6)


def test_embedding_weights_argument_and_lookup():
    E = np.arange(12, dtype="float32").reshape(4, 3)
    layer = Embedding(4, 3, weights=[E], trainable=False)
    y = layer(np.array([[1, 3]]))
    np.testing.assert_array_equal(y[0], E[[1, 3]])
    assert layer.trainable_weights == []


def test_repeat_vector_dropout_activation_flatten(rng):
    x = rng.standard_normal((2, 3)).astype("float32")
    assert RepeatVector(4)(x).shape == (2, 4, 3)
    np.testing.assert_array_equal(RepeatVector(4)(x)[:, 2], x)
    np.testing.assert_array_equal(Dropout(0.5)(x), x)  # inference: identity
    d = Dropout(0.5, seed=3)(np.ones((200, 50), "float32"), training=True)
    assert set(np.unique(d)) <= {0.0, 2.0} and 0.4 < (d == 0).mean() < 0.6
    s = SpatialDropout1D(0.5, seed=1)(np.ones((4, 6, 8), "float32"), training=True)
    assert np.all(s == s[:, :1])  # one mask per channel, shared over time
    np.testing.assert_allclose(Activation("tanh")(x), np.tanh(x))
    assert Flatten()(np.zeros((2, 3, 4), "float32")).shape == (2, 12)


def test_dense_on_3d_input_is_timedistributed(rng):
    x = rng.standard_normal((2, 5, 4)).astype("float32")
    d = Dense(3)
    y = d(x)
    W, b = d.get_weights()
    np.testing.assert_allclose(y, x @ W + b, atol=1e-5)
    td = TimeDistributed(Dense(3))
    td(x)
    td.set_weights([W, b])
    np.testing.assert_allclose(td(x), y, atol=1e-6)


@pytest.mark.parametrize("kwargs,arg", [
    ({"kernel_regularizer": lambda w: 0.0}, "kernel_regularizer"),
    ({"activation": "gelu"}, "gelu"),
    ({"time_major": True}, "time_major"),
])
def test_unsupported_lstm_arguments_raise(kwargs, arg):
    with pytest.raises(NotImplementedError, match=arg):
        LSTM(4, **kwargs)


def test_unknown_argument_is_a_type_error():
    with pytest.raises(TypeError, match="bogus"):
        Dense(3, bogus=1)


def test_keras_only_layers_raise_not_implemented():
    import fusedlstm.layers as L
    with pytest.raises(NotImplementedError, match="ConvLSTM1D"):
        L.ConvLSTM1D  # noqa: B018
    with pytest.raises(NotImplementedError, match="Conv2D"):
        from fusedlstm.layers import Conv2D  # noqa: F401
    with pytest.raises(AttributeError):
        L.NoSuchThing  # noqa: B018


def test_unroll_is_accepted_and_changes_nothing(rng):
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    a, b = LSTM(3), LSTM(3, unroll=True)
    a(x)
    b(x)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(x), b(x))
