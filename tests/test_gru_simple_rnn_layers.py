"""GRU and SimpleRNN layers: float64 reference, finite differences, options, bad input.

The kernels themselves are checked in test_gru_kernel.py / test_simple_rnn_kernel.py;
here the layers around them: Keras's arguments turned into the right kernel call
(weight layout, reset_after, masks, go_backwards, initial and carried states,
dropout), the engine's gradients through them (model.compute_gradients against
finite differences in float64, from test_layers_gradients), and the messages for
bad input. Keras parity and Keras files: test_gru_simple_rnn_keras.py.
"""

import numpy as np
import pytest

from fusedlstm import reference as ref
from fusedlstm.layers import (GRU, Bidirectional, Concatenate, Dense, Dropout, Embedding, Input, Masking,
                              RepeatVector, SimpleRNN, TimeDistributed)
from fusedlstm.models import Model, Sequential, load_model
from fusedlstm.utils import set_random_seed
from test_layers_gradients import check_model_gradients, onehot

F = {"dtype": "float64"}


@pytest.fixture(autouse=True)
def _seeded(seed):
    set_random_seed(seed)


def _randomize(layer, rng, scale=0.6):
    layer.set_weights([rng.uniform(-scale, scale, w.shape) for w in layer.get_weights()])


def _reference(layer, x, h0=None, mask=None, zero_output=False):
    """The float64 reference of `layer` (a GRU or SimpleRNN) on x: (y, hT)."""
    ws = layer.get_weights()
    W, U = ws[0], ws[1]
    b = ws[2] if layer.use_bias else None
    h0 = np.zeros((x.shape[0], layer.units)) if h0 is None else h0
    common = dict(mask=mask, go_backwards=layer.go_backwards, zero_output_for_mask=zero_output,
                  activation=layer._act, return_sequences=layer.return_sequences)
    if isinstance(layer, GRU):
        y, hT, _ = ref.gru_forward(x, W, U, b, h0, recurrent_activation=layer._ract,
                                   reset_after=layer.reset_after, **common)
    else:
        y, hT, _ = ref.simple_rnn_forward(x, W, U, b, h0, **common)
    return y, hT


# ---------------------------------------------------------------------------------------------
# Weights and shapes (Keras 3 layouts and parameter counts)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,input_dim,shapes,params", [
    (lambda: GRU(5), 3, [(3, 15), (5, 15), (2, 15)], 45 + 75 + 30),
    (lambda: GRU(5, reset_after=False), 3, [(3, 15), (5, 15), (15,)], 45 + 75 + 15),
    (lambda: GRU(5, use_bias=False), 3, [(3, 15), (5, 15)], 45 + 75),
    (lambda: SimpleRNN(7), 4, [(4, 7), (7, 7), (7,)], 28 + 49 + 7),
    (lambda: SimpleRNN(7, use_bias=False), 4, [(4, 7), (7, 7)], 28 + 49),
    (lambda: Bidirectional(GRU(4)), 3, [(3, 12), (4, 12), (2, 12)] * 2, 2 * (36 + 48 + 24)),
])
def test_weight_layout_and_parameter_count(make, input_dim, shapes, params):
    layer = make()
    layer(np.zeros((2, 6, input_dim), "float32"))
    assert [tuple(w.shape) for w in layer.get_weights()] == shapes
    assert layer.count_params() == params


def test_default_initializers_are_keras_ones():
    layer = GRU(6)
    layer(np.zeros((1, 2, 4), "float32"))
    W, U, b = layer.get_weights()
    limit = np.sqrt(6.0 / (4 + 18))  # glorot_uniform over (4, 18)
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.5 * limit
    # orthogonal (6, 18): rows orthonormal
    np.testing.assert_allclose(U @ U.T, np.eye(6), atol=1e-5)
    assert not b.any()
    cfg = layer.get_config()
    assert cfg["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert cfg["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert cfg["reset_after"] is True and cfg["recurrent_activation"] == "sigmoid"


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("cls", [GRU, SimpleRNN])
def test_output_shapes(rng, cls, return_sequences, return_state):
    layer = cls(6, return_sequences=return_sequences, return_state=return_state)
    out = layer(rng.standard_normal((3, 4, 5)).astype("float32"))
    y_shape = (3, 4, 6) if return_sequences else (3, 6)
    if return_state:
        y, h = out
        assert y.shape == y_shape and h.shape == (3, 6)
        np.testing.assert_array_equal(h, y[:, -1] if return_sequences else y)
    else:
        assert out.shape == y_shape
    sym = cls(6, return_sequences=return_sequences, return_state=return_state)(Input((None, 5)))
    if return_state:
        assert [tuple(t.shape) for t in sym] == [(None, None, 6) if return_sequences else (None, 6), (None, 6)]


# ---------------------------------------------------------------------------------------------
# Forward against the float64 reference
# ---------------------------------------------------------------------------------------------

CASES = [
    ("gru", dict()),
    ("gru", dict(reset_after=False)),
    ("gru", dict(use_bias=False, go_backwards=True)),
    ("gru", dict(activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True)),
    ("gru", dict(reset_after=False, activation=None, return_sequences=True, go_backwards=True)),
    ("simple_rnn", dict()),
    ("simple_rnn", dict(activation="relu", return_sequences=True, go_backwards=True)),
    ("simple_rnn", dict(use_bias=False, activation="sigmoid")),
]


def _make(kind, units, **kw):
    return (GRU if kind == "gru" else SimpleRNN)(units, dtype="float64", **kw)


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in kw.items())}" for k, kw in CASES])
def test_forward_matches_reference(rng, kind, kw):
    B, T, I, H = 3, 7, 5, 9  # odd sizes, not multiples of any vector width
    layer = _make(kind, H, return_state=True, **kw)
    x = rng.standard_normal((B, T, I))
    layer(x)
    _randomize(layer, rng)
    h0 = rng.standard_normal((B, H))
    for init in (None, h0):
        y, hT = layer(x, initial_state=None if init is None else [init])
        ry, rhT = _reference(layer, x, init)
        np.testing.assert_allclose(y, ry, rtol=0, atol=1e-12)
        np.testing.assert_allclose(hT, rhT, rtol=0, atol=1e-12)


def test_float32_forward_matches_reference_to_rounding(rng):
    layer = GRU(11, return_sequences=True)
    x = rng.standard_normal((4, 6, 5)).astype("float32")
    layer(x)
    _randomize(layer, rng)
    ry, _ = _reference(layer, x.astype(np.float64))
    assert np.abs(layer(x) - ry).max() < 2e-6


@pytest.mark.parametrize("kind", ["gru", "simple_rnn"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masking_follows_keras(rng, kind, return_sequences):
    """A masked step keeps h; its output repeats the previous one (zero_output_for_mask=False),
    or is zero under Bidirectional (Keras sets zero_output_for_mask = return_sequences there)."""
    B, T, I, H = 4, 6, 3, 5
    x = rng.standard_normal((B, T, I))
    x[1, 3:] = 0.0   # padded at the end
    x[2, :2] = 0.0   # padded at the start
    x[3, 2] = 0.0    # a hole
    mask = np.any(x != 0.0, axis=-1)
    inp = Input((T, I), **F)
    masked = Masking(0.0, **F)(inp)
    layer = _make(kind, H, return_sequences=return_sequences)
    m = Model(inp, layer(masked))
    _randomize(layer, rng)
    ry, _ = _reference(layer, x, mask=mask)
    np.testing.assert_allclose(m.predict(x, verbose=0), ry, atol=1e-12)
    bi = Bidirectional(_make(kind, H, return_sequences=return_sequences), merge_mode=None, **F)
    mb = Model(inp, bi(masked))
    for sub in (bi.forward_layer, bi.backward_layer):
        _randomize(sub, rng)
    yf, yb = mb.predict(x, verbose=0)
    rf, _ = _reference(bi.forward_layer, x, mask=mask, zero_output=return_sequences)
    rb, _ = _reference(bi.backward_layer, x, mask=mask, zero_output=return_sequences)
    np.testing.assert_allclose(yf, rf, atol=1e-12)
    np.testing.assert_allclose(yb, rb[:, ::-1] if return_sequences else rb, atol=1e-12)
    if return_sequences:
        assert not yf[1, 3:].any() and not yb[2, :2].any()


@pytest.mark.parametrize("cls", [GRU, SimpleRNN])
def test_stateful_carries_h_across_calls(rng, cls):
    B, I, H = 3, 4, 5
    x = rng.standard_normal((B, 8, I))
    stateful = cls(H, stateful=True, return_sequences=True, dtype="float64")
    whole = cls(H, return_sequences=True, dtype="float64")
    stateful(x[:, :4])
    whole(x)
    _randomize(whole, rng)
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    parts = np.concatenate([stateful(x[:, :4]), stateful(x[:, 4:])], axis=1)
    np.testing.assert_allclose(parts, whole(x), atol=1e-12)
    assert len(stateful.states) == 1 and stateful.states[0].shape == (B, H)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :4]), whole(x[:, :4]), atol=1e-12)
    h = rng.standard_normal((B, H))
    stateful.reset_states([h])
    np.testing.assert_allclose(stateful(x[:, 4:]), whole(x[:, 4:], initial_state=[h]), atol=1e-12)
    with pytest.raises(ValueError, match="stateful with batch size 3"):
        stateful(x[:2])


def test_stateful_model_predict_in_batches(rng):
    B, T, I = 2, 5, 3
    m = Sequential([Input(batch_shape=(B, T, I)), GRU(4, stateful=True, return_sequences=True), Dense(2)])
    x = rng.standard_normal((B, 2 * T, I)).astype("float32")
    y1 = m.predict(x[:, :T], batch_size=B, verbose=0)
    y2 = m.predict(x[:, T:], batch_size=B, verbose=0)
    m.reset_states()
    ref_m = Sequential([Input((2 * T, I)), GRU(4, return_sequences=True), Dense(2)])
    ref_m.set_weights(m.get_weights())
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), ref_m.predict(x, verbose=0), atol=2e-6)


def test_single_tensor_initial_state_is_accepted(rng):
    layer = GRU(4, dtype="float64")
    x, h = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 4))
    np.testing.assert_array_equal(layer(x, initial_state=h), layer(x, initial_state=[h]))


def test_dropout_only_in_training_and_reproducible(rng):
    x = rng.standard_normal((4, 6, 5)).astype("float32")
    a = GRU(7, dropout=0.3, recurrent_dropout=0.4, seed=3)
    b = GRU(7, dropout=0.3, recurrent_dropout=0.4, seed=3)
    a(x)
    b(x)
    b.set_weights(a.get_weights())
    plain = a(x)
    np.testing.assert_array_equal(plain, a(x, training=False))
    ya, yb = a(x, training=True), b(x, training=True)
    np.testing.assert_array_equal(ya, yb)
    assert np.abs(ya - plain).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# Gradients through the engine, float64, against finite differences
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in kw.items())}" for k, kw in CASES])
def test_gradients_finite_differences(rng, kind, kw):
    if kw.get("activation") == "relu" or kw.get("recurrent_activation") == "hard_sigmoid":
        kw = dict(kw, activation="tanh", recurrent_activation="sigmoid") if kind == "gru" else dict(kw, activation="tanh")
    kw.pop("return_sequences", None)
    m = Sequential([Input((5, 3), **F), _make(kind, 7, return_sequences=True, **kw), Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 2)), "mse", rng)


@pytest.mark.parametrize("kind", ["gru", "simple_rnn"])
def test_gradients_masked_bidirectional(rng, kind):
    x = rng.standard_normal((5, 6, 3))
    x[1, 4:] = 0.0
    x[3, :2] = 0.0
    inp = Input((6, 3), **F)
    out = Bidirectional(_make(kind, 4, return_sequences=True), merge_mode="concat", **F)(Masking(0.0, **F)(inp))
    m = Model(inp, Dense(2, **F)(out))
    check_model_gradients(m, x, rng.standard_normal((5, 6, 2)), "mse", rng, sample_weight=rng.random((5, 6)))


@pytest.mark.parametrize("vocab", [9, 200], ids=["table-path", "gather-path"])
def test_gradients_embedding_gru(rng, vocab):
    ids = rng.integers(1, vocab, (6, 7))
    ids[0, 4:] = 0
    m = Sequential([Input((7,), dtype="int32"), Embedding(vocab, 5, mask_zero=True, **F),
                    GRU(6, return_sequences=True, **F), TimeDistributed(Dense(vocab, activation="softmax", **F))])
    check_model_gradients(m, ids, rng.integers(0, vocab, (6, 7)), "sparse_categorical_crossentropy", rng)


def test_gradients_repeat_vector_simple_rnn_with_dropout(rng):
    m = Sequential([Input((4,), **F), Dense(5, activation="tanh", **F), RepeatVector(6, **F),
                    SimpleRNN(5, return_sequences=True, dropout=0.3, recurrent_dropout=0.2, seed=7, **F),
                    Dropout(0.2, seed=1, **F), GRU(3, recurrent_dropout=0.3, dropout=0.1, seed=4, **F),
                    Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((6, 4)), rng.standard_normal((6, 2)), "mse", rng)


def test_gradients_initial_state_and_return_state(rng):
    ei = Input((None, 3), **F)
    _, h = GRU(5, return_state=True, **F)(ei)
    di = Input((None, 4), **F)
    do, hd = SimpleRNN(5, return_sequences=True, return_state=True, **F)(di, initial_state=[h])
    hf0, hb0 = Input((4,), **F), Input((4,), **F)
    y, hf, hb = Bidirectional(GRU(4, return_state=True, reset_after=False, **F), **F)(do, initial_state=[hf0, hb0])
    out = Dense(4, activation="softmax", **F)(Concatenate(**F)([y, hf, hb, hd]))
    m = Model([ei, di, hf0, hb0], out)
    xs = [rng.standard_normal((4, 6, 3)), onehot(rng, (4, 5), 4), rng.standard_normal((4, 4)),
          rng.standard_normal((4, 4))]
    check_model_gradients(m, xs, onehot(rng, 4, 4), "categorical_crossentropy", rng)


# ---------------------------------------------------------------------------------------------
# Config and our own file format
# ---------------------------------------------------------------------------------------------

def test_config_roundtrip_and_saved_model(tmp_path, rng):
    m = Sequential([Input((5, 3)), GRU(4, return_sequences=True, reset_after=False, go_backwards=True),
                    Bidirectional(SimpleRNN(3, activation="relu", return_sequences=True)), GRU(2)])
    for layer in m.layers:
        for sub in [layer] + layer._sublayers():
            if sub.get_weights():
                _randomize(sub, rng, 0.4)
    x = rng.standard_normal((6, 5, 3)).astype("float32")
    m.save(tmp_path / "m.fusedlstm")
    back = load_model(tmp_path / "m.fusedlstm")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    cfg = m.layers[0].get_config()
    clone = GRU.from_config(cfg)
    assert clone.get_config() == cfg


def test_regularizers_and_constraints_reach_every_weight(rng):
    layer = GRU(3, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2",
                kernel_constraint="non_neg", recurrent_constraint="non_neg", bias_constraint="non_neg")
    layer(rng.standard_normal((2, 4, 5)).astype("float32"))
    assert [v.regularizer is not None and v.constraint is not None for v in layer.weights] == [True] * 3
    assert len(layer.losses) == 3
    clone = GRU.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert SimpleRNN.from_config(SimpleRNN(2, recurrent_regularizer="l2").get_config()).recurrent_regularizer


# ---------------------------------------------------------------------------------------------
# Bad input: clear exceptions naming the argument
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: GRU(0), ValueError, "`units`, expected a positive integer, got 0"),
    (lambda: SimpleRNN(2.5), ValueError, "`units`"),
    (lambda: GRU(3, activation="softmax"), NotImplementedError, "GRU: `activation`='softmax'"),
    (lambda: GRU(3, recurrent_activation="selu"), NotImplementedError, "`recurrent_activation`='selu'"),
    (lambda: SimpleRNN(3, activation="gelu"), NotImplementedError, "gelu"),
    (lambda: GRU(3, reset_after="yes"), TypeError, "`reset_after`"),
    (lambda: GRU(3, dropout=1.5), ValueError, "`dropout`"),
    (lambda: SimpleRNN(3, recurrent_dropout=-0.1), ValueError, "`recurrent_dropout`"),
    (lambda: GRU(3, time_major=True), NotImplementedError, "time_major"),
    (lambda: GRU(3, use_cudnn="maybe"), ValueError, "use_cudnn"),
    (lambda: GRU(3, kernel_regularizer="nonsense"), ValueError, "argument `kernel_regularizer`"),
    (lambda: SimpleRNN(3, recurrent_activation="sigmoid"), TypeError, "recurrent_activation"),
    (lambda: Bidirectional(GRU(3), backward_layer=SimpleRNN(3, go_backwards=True)), NotImplementedError,
     "must be a GRU like `layer`"),
])
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_call_inputs(rng):
    layer = GRU(4)
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(np.zeros((2, 5), "float32"))
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1 of input shape to have value 3"):
        layer(np.zeros((2, 5, 4), "float32"))
    with pytest.raises(ValueError, match=r"initial_state=\[h\] \(1 tensor\), got 2"):
        layer(np.zeros((2, 5, 3), "float32"), initial_state=[np.zeros((2, 4))] * 2)
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape \(batch, 4\)"):
        layer(np.zeros((2, 5, 3), "float32"), initial_state=[np.zeros((2, 5))])
    with pytest.raises(ValueError, match="not finite|NaN|nan"):
        layer(np.full((2, 5, 3), np.nan, "float32"))
    with pytest.raises(ValueError, match="Bidirectional .* expects initial_state with 2 tensors"):
        Bidirectional(SimpleRNN(3))(np.zeros((2, 5, 3), "float32"), initial_state=[np.zeros((2, 3))] * 4)
    with pytest.raises(AttributeError, match="must be stateful"):
        layer.reset_states([np.zeros((2, 4))])
