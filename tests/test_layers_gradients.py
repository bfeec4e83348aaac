"""Whole-model gradients against finite differences, in float64, for every layer and option.

Each model is built with dtype='float64' layers, so the same code path (kernels,
fusions, fused softmax-cross-entropy, masks, sample weights) runs in double
precision. The check is a directional derivative: for random directions D,
Σ grad·D must equal (L(w + hD) - L(w - hD)) / 2h. Dropout masks are held fixed by
re-seeding the layers' own generators before every evaluation.
"""

import numpy as np
import pytest

from fusedlstm.layers import (LSTM, Activation, Bidirectional, Concatenate, Dense, Dropout,
                              Embedding, Input, Masking, RepeatVector, SpatialDropout1D,
                              TimeDistributed)
from fusedlstm.models import Model, Sequential
from fusedlstm.utils import set_random_seed

F = {"dtype": "float64"}
H_STEP = 1e-6


def _reseed(model):
    for layer in _all_layers(model):
        if getattr(layer, "seed", None) is not None:
            layer._rng = np.random.default_rng(layer.seed)


def _all_layers(model):
    out = []
    for layer in model.layers:
        out.append(layer)
        out.extend(getattr(layer, "_sublayers", lambda: [])())
    return out


def check_model_gradients(model, x, y, loss, rng, sample_weight=None, loss_weights=None,
                          n_dirs=3, tol=1e-6):
    model.compile("sgd", loss, loss_weights=loss_weights)
    _reseed(model)
    L0, grads = model.compute_gradients(x, y, sample_weight)
    assert np.isfinite(L0)
    params = model.trainable_weights
    assert len(grads) == len(params) and all(g.shape == p.shape for g, p in zip(grads, params))
    assert any(np.abs(g).max() > 0 for g in grads), "all gradients are zero"
    base = [p.value.copy() for p in params]

    def loss_at(t, dirs):
        for p, b, d in zip(params, base, dirs):
            p.assign(b + t * d)
        _reseed(model)
        return model.compute_gradients(x, y, sample_weight)[0]

    for _ in range(n_dirs):
        dirs = [rng.standard_normal(p.shape) for p in params]
        fd = (loss_at(H_STEP, dirs) - loss_at(-H_STEP, dirs)) / (2 * H_STEP)
        an = sum(float(np.sum(g * d)) for g, d in zip(grads, dirs))
        err = abs(fd - an) / max(1.0, abs(fd), abs(an))
        assert err < tol, f"directional derivative: finite difference {fd!r}, backward {an!r} (rel {err:.2e})"
    # every variable individually too (a wrong gradient hidden by the others' sum)
    for k, p in enumerate(params):
        dirs = [np.zeros(q.shape) for q in params]
        dirs[k] = rng.standard_normal(p.shape)
        fd = (loss_at(H_STEP, dirs) - loss_at(-H_STEP, dirs)) / (2 * H_STEP)
        an = float(np.sum(grads[k] * dirs[k]))
        err = abs(fd - an) / max(1.0, abs(fd), abs(an))
        assert err < tol, f"{p.path}: finite difference {fd!r}, backward {an!r} (rel {err:.2e})"
    for p, b in zip(params, base):
        p.assign(b)


def onehot(rng, shape, V):
    return np.eye(V)[rng.integers(0, V, shape)]


@pytest.fixture(autouse=True)
def _seeded(seed):
    set_random_seed(seed)


def test_lstm_dense_softmax_cce_fused(rng):
    m = Sequential([Input((5, 7), **F), LSTM(6, **F), Dense(4, activation="softmax", **F)])
    check_model_gradients(m, rng.standard_normal((8, 5, 7)), onehot(rng, 8, 4), "categorical_crossentropy", rng)


@pytest.mark.parametrize("vocab", [9, 200], ids=["table-path", "gather-path"])
def test_embedding_mask_lstm_td_sparse(rng, vocab):
    ids = rng.integers(1, vocab, (6, 7))
    ids[0, 4:] = 0
    ids[3, :2] = 0
    m = Sequential([Input((7,), dtype="int32"), Embedding(vocab, 5, mask_zero=True, **F),
                    LSTM(6, return_sequences=True, **F), TimeDistributed(Dense(vocab, activation="softmax", **F))])
    check_model_gradients(m, ids, rng.integers(0, vocab, (6, 7)), "sparse_categorical_crossentropy", rng)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merges_masked(rng, merge):
    x = rng.standard_normal((5, 6, 3))
    x[1, 4:] = 0.0
    inp = Input((6, 3), **F)
    h = Masking(0.0, **F)(inp)
    out = Bidirectional(LSTM(4, return_sequences=True, **F), merge_mode=merge, **F)(h)
    if merge is None:
        out = Concatenate(**F)(out)
    y = Dense(2, **F)(out)
    m = Model(inp, y)
    check_model_gradients(m, x, rng.standard_normal((5, 6, 2)), "mse", rng,
                          sample_weight=rng.random((5, 6)))


def test_stacked_go_backwards_states_as_outputs(rng):
    inp = Input((None, 3), **F)
    s1 = LSTM(5, return_sequences=True, go_backwards=True, **F)(inp)
    y, h, c = LSTM(4, return_state=True, **F)(s1)
    out = Dense(2, **F)(Concatenate(**F)([y, c]))
    m = Model(inp, [out, h])
    check_model_gradients(m, rng.standard_normal((4, 6, 3)),
                          [rng.standard_normal((4, 2)), rng.standard_normal((4, 4))],
                          ["mse", "mae"], rng, loss_weights=[1.0, 0.5])


def test_encoder_decoder_initial_state(rng):
    ei = Input((None, 3), **F)
    _, h, c = LSTM(5, return_state=True, **F)(ei)
    di = Input((None, 4), **F)
    do, _, _ = LSTM(5, return_sequences=True, return_state=True, **F)(di, initial_state=[h, c])
    out = Dense(4, activation="softmax", **F)(do)
    m = Model([ei, di], out)
    check_model_gradients(m, [rng.standard_normal((4, 6, 3)), onehot(rng, (4, 5), 4)],
                          onehot(rng, (4, 5), 4), "categorical_crossentropy", rng)


def test_bidirectional_initial_state_and_return_state(rng):
    inp = Input((None, 3), **F)
    hs = [Input((4,), **F) for _ in range(4)]
    y, hf, cf, hb, cb = Bidirectional(LSTM(4, return_state=True, **F), **F)(inp, initial_state=hs)
    out = Dense(2, **F)(Concatenate(**F)([y, cf, hb]))
    m = Model([inp] + hs, out)
    xs = [rng.standard_normal((3, 5, 3))] + [rng.standard_normal((3, 4)) for _ in range(4)]
    check_model_gradients(m, xs, rng.standard_normal((3, 2)), "mse", rng)


def test_repeat_vector_fused_with_dropout(rng):
    m = Sequential([Input((4,), **F), Dense(5, activation="tanh", **F), RepeatVector(6, **F),
                    LSTM(5, return_sequences=True, dropout=0.3, seed=7, **F),
                    TimeDistributed(Dense(3, **F))])
    check_model_gradients(m, rng.standard_normal((6, 4)), rng.standard_normal((6, 6, 3)), "mse", rng)


def test_dropout_and_recurrent_dropout_fixed_masks(rng):
    # The Dense first makes the LSTM's input gradient (through its dropout mask) matter.
    m = Sequential([Input((5, 4), **F), Dense(4, **F), SpatialDropout1D(0.2, seed=1, **F),
                    LSTM(6, return_sequences=True, dropout=0.25, recurrent_dropout=0.3, seed=2, **F),
                    Dropout(0.4, seed=3, **F), LSTM(3, recurrent_dropout=0.2, seed=4, **F),
                    Dense(2, activation="sigmoid", **F)])
    check_model_gradients(m, rng.standard_normal((6, 5, 4)), (rng.random((6, 2)) > 0.5).astype(float),
                          "binary_crossentropy", rng)


@pytest.mark.parametrize("loss,act", [
    ("categorical_crossentropy", "softmax"),  # fused
    ("mse", "softmax"),                       # softmax backward in NumPy
    ("binary_crossentropy", "sigmoid"),
    ("mae", "tanh"),
])
def test_losses_and_dense_activations(rng, loss, act):
    m = Sequential([Input((4, 3), **F), LSTM(5, **F), Dense(4, activation=act, **F)])
    y = onehot(rng, 7, 4) if "crossentropy" in loss else rng.random((7, 4))
    check_model_gradients(m, rng.standard_normal((7, 4, 3)), y, loss, rng, sample_weight=rng.random(7))


@pytest.mark.parametrize("sparse", [False, True])
def test_from_logits_fused(rng, sparse):
    from fusedlstm import losses
    m = Sequential([Input((4, 3), **F), LSTM(5, **F), Dense(6, **F)])
    loss = (losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy)(from_logits=True)
    y = rng.integers(0, 6, 7) if sparse else onehot(rng, 7, 6)
    check_model_gradients(m, rng.standard_normal((7, 4, 3)), y, loss, rng)


def test_separate_softmax_activation_unfused(rng):
    m = Sequential([Input((4, 3), **F), LSTM(5, return_sequences=True, **F), Dense(6, **F),
                    Activation("softmax", **F)])
    check_model_gradients(m, rng.standard_normal((5, 4, 3)), onehot(rng, (5, 4), 6),
                          "categorical_crossentropy", rng)


def test_shared_layer_and_nested_model(rng):
    inner_in = Input((None, 3), **F)
    inner = Model(inner_in, LSTM(4, return_sequences=True, **F)(inner_in))
    shared = Dense(3, activation="tanh", **F)
    a, b = Input((5, 3), **F), Input((5, 3), **F)
    out = LSTM(2, **F)(Concatenate(**F)([inner(shared(a)), inner(shared(b))]))
    m = Model([a, b], out)
    check_model_gradients(m, [rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))],
                          rng.standard_normal((4, 2)), "mse", rng)


def test_stateful_gradients_within_a_batch(rng):
    m = Sequential([Input(batch_shape=(3, 4, 2), **F), LSTM(3, stateful=True, **F), Dense(1, **F)])
    m.compile("sgd", "mse")
    m.predict(rng.standard_normal((3, 4, 2)), verbose=0)  # carry a non-zero state in
    layer = m.layers[0]
    saved = [s.copy() for s in layer.states]

    def restore():
        layer.states = [s.copy() for s in saved]

    x, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 1))
    restore()
    L0, grads = m.compute_gradients(x, y)
    params = m.trainable_weights
    dirs = [rng.standard_normal(p.shape) for p in params]
    base = [p.value.copy() for p in params]
    vals = []
    for t in (H_STEP, -H_STEP):
        for p, b_, d in zip(params, base, dirs):
            p.assign(b_ + t * d)
        restore()
        vals.append(m.compute_gradients(x, y)[0])
    fd = (vals[0] - vals[1]) / (2 * H_STEP)
    an = sum(float(np.sum(g * d)) for g, d in zip(grads, dirs))
    assert abs(fd - an) <= 1e-6 * max(1, abs(fd)), (fd, an)


# ---------------------------------------------------------------------------------------------
# Pooling, reshaping, normalization, activation and noise layers
#
# A piecewise-linear layer (ReLU family, max pooling) has kinks where a finite difference
# straddling one is meaningless; as for the LSTM problems (gradcheck.KINK_MARGIN), the data
# are redrawn until every input of such a layer is well away from its kinks.
# ---------------------------------------------------------------------------------------------

from fusedlstm.layers import (ELU, AlphaDropout, AveragePooling1D, BatchNormalization, Cropping1D,  # noqa: E402
                              GaussianDropout, GaussianNoise, GlobalAveragePooling1D, GlobalMaxPooling1D,
                              LayerNormalization, LeakyReLU, MaxPooling1D, Permute, PReLU, ReLU, Softmax,
                              UpSampling1D, ZeroPadding1D)
from fusedlstm.layers.spatial import same_padding  # noqa: E402

KINK_MARGIN = 1e-4


def _windows_gap(v, layer):
    """Smallest gap between the largest and second-largest value of any pooling window."""
    if isinstance(layer, GlobalMaxPooling1D):
        s = np.sort(v, axis=1)
        return float(np.min(s[:, -1] - s[:, -2]))
    k, st = layer.pool_size[0], layer.strides[0]
    L = v.shape[1]
    left, right = same_padding(L, k, st) if layer.padding == "same" else (0, 0)
    vp = np.pad(v, ((0, 0), (left, right), (0, 0)), constant_values=-np.inf)
    n = (vp.shape[1] - k) // st + 1
    w = np.stack([vp[:, j:j + st * (n - 1) + 1:st] for j in range(k)], axis=-1)
    s = np.sort(w, axis=-1)
    gaps = s[..., -1] - s[..., -2]
    return float(np.min(np.where(np.isfinite(gaps), gaps, np.inf)))


def _kink_margin(model, x):
    worst = np.inf
    for layer in model.layers:
        kinks = None
        if isinstance(layer, (LeakyReLU, PReLU)):
            kinks = [0.0]
        elif isinstance(layer, ReLU):
            kinks = [layer.threshold] + ([layer.max_value] if layer.max_value is not None else [])
        elif not isinstance(layer, (MaxPooling1D, GlobalMaxPooling1D)):
            continue
        v = Model(model.inputs, layer.input).predict(x, verbose=0)
        if kinks is None:
            worst = min(worst, _windows_gap(v, layer))
        else:
            worst = min(worst, min(float(np.min(np.abs(v - k))) for k in kinks))
    return worst


def _away_from_kinks(model, draw):
    for _ in range(50):
        x = draw()
        if _kink_margin(model, x) >= KINK_MARGIN:
            return x
    raise RuntimeError("could not draw inputs away from the layers' kinks")


def test_pooling_stack(rng):
    m = Sequential([Input((9, 3), **F), Dense(4, activation="tanh", **F),
                    MaxPooling1D(3, strides=2, padding="same", **F), AveragePooling1D(2, padding="same", **F),
                    LSTM(5, return_sequences=True, **F), GlobalMaxPooling1D(**F), Dense(2, **F)])
    x = _away_from_kinks(m, lambda: rng.standard_normal((5, 9, 3)))
    check_model_gradients(m, x, rng.standard_normal((5, 2)), "mse", rng)


def test_pooling_channels_first_and_keepdims(rng):
    m = Sequential([Input((6, 8), **F), Dense(8, **F), MaxPooling1D(2, data_format="channels_first", **F),
                    AveragePooling1D(3, strides=1, padding="same", data_format="channels_first", **F),
                    GlobalAveragePooling1D(data_format="channels_first", keepdims=True, **F),
                    LSTM(3, **F), Dense(2, **F)])
    x = _away_from_kinks(m, lambda: rng.standard_normal((4, 6, 8)))
    check_model_gradients(m, x, rng.standard_normal((4, 2)), "mse", rng)


def test_global_average_pooling_masked(rng):
    ids = rng.integers(1, 9, (6, 7))
    ids[0, :5] = 0
    ids[2, 3:] = 0
    m = Sequential([Input((7,), dtype="int32"), Embedding(9, 4, mask_zero=True, **F),
                    LSTM(5, return_sequences=True, **F), GlobalAveragePooling1D(**F), Dense(3, activation="softmax", **F)])
    check_model_gradients(m, ids, onehot(rng, 6, 3), "categorical_crossentropy", rng)


def test_reshaping_layers(rng):
    m = Sequential([Input((5, 3), **F), Dense(4, activation="tanh", **F), UpSampling1D(2, **F),
                    ZeroPadding1D((2, 1), **F), Cropping1D((1, 3), **F), Permute((2, 1), **F),
                    LSTM(4, **F), Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 2)), "mse", rng)


@pytest.mark.parametrize("where", ["3d", "2d", "masked", "axis1", "time_distributed"])
def test_batch_normalization_training(rng, where):
    y = rng.standard_normal((6, 2))
    if where == "masked":
        ids = rng.integers(1, 9, (6, 7))
        ids[1, :4] = 0
        ids[4, 5:] = 0
        m = Sequential([Input((7,), dtype="int32"), Embedding(9, 4, mask_zero=True, **F),
                        BatchNormalization(momentum=0.5, **F), LSTM(5, **F), Dense(2, **F)])
        check_model_gradients(m, ids, y, "mse", rng)
        return
    bn = {"3d": BatchNormalization(epsilon=0.1, **F), "2d": None, "axis1": BatchNormalization(axis=1, **F),
          "time_distributed": TimeDistributed(BatchNormalization(center=False, **F), **F)}[where]
    if where == "2d":
        m = Sequential([Input((5, 3), **F), LSTM(4, **F), BatchNormalization(scale=False, **F), Dense(2, **F)])
    else:
        m = Sequential([Input((5, 3), **F), Dense(4, activation="tanh", **F), bn, LSTM(4, **F), Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((6, 5, 3)) * 2 + 1, y, "mse", rng)


@pytest.mark.parametrize("kw", [dict(), dict(axis=[1, 2], center=False), dict(rms_scaling=True),
                                dict(scale=False, epsilon=0.5)])
@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_layer_normalization(rng, kw):
    m = Sequential([Input((5, 3), **F), Dense(4, **F), LayerNormalization(**kw, **F), LSTM(4, **F),
                    Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((4, 5, 3)) + 0.5, rng.standard_normal((4, 2)), "mse", rng)


def test_activation_layers(rng):
    m = Sequential([Input((5, 3), **F), Dense(6, **F), LeakyReLU(0.2, **F),
                    ReLU(max_value=0.9, negative_slope=0.1, threshold=0.05, **F), Dense(6, **F), ELU(0.6, **F),
                    PReLU(alpha_initializer="ones", shared_axes=[1], **F), Softmax(axis=1, **F),
                    LSTM(4, **F), Dense(3, **F), Softmax(**F)])
    next(l for l in m.layers if isinstance(l, PReLU)).set_weights([rng.uniform(0.1, 0.5, (1, 6))])
    x = _away_from_kinks(m, lambda: rng.standard_normal((5, 5, 3)) * 1.5)
    check_model_gradients(m, x, onehot(rng, 5, 3), "categorical_crossentropy", rng)


def test_noise_layers_fixed_draws(rng):
    m = Sequential([Input((5, 3), **F), GaussianNoise(0.3, seed=1, **F), Dense(4, activation="selu", **F),
                    AlphaDropout(0.2, seed=2, **F), GaussianDropout(0.3, seed=3, **F), LSTM(4, **F), Dense(2, **F)])
    check_model_gradients(m, rng.standard_normal((6, 5, 3)), rng.standard_normal((6, 2)), "mse", rng)
