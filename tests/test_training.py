"""compile/fit/evaluate/predict: learning, Keras's update formulas and reductions, fit options."""

import sys

import numpy as np
import pytest

from fusedlstm import losses
from fusedlstm.callbacks import Callback, EarlyStopping
from fusedlstm.layers import LSTM, Activation, Dense, Embedding, Input, TimeDistributed
from fusedlstm.models import Model, Sequential
from fusedlstm.models import fusion
from fusedlstm.optimizers import SGD, Adam, RMSprop
from fusedlstm.utils import set_random_seed


def echo_data(rng, n, T=5, V=10, k=2):
    ids = rng.integers(0, V, (n, T))
    return np.eye(V, dtype="float32")[ids], ids[:, k]


def small_model(units=8, T=5, V=10):
    return Sequential([Input((T, V)), LSTM(units), Dense(V, activation="softmax")])


def test_learns_echo_to_full_accuracy(rng, seed):
    set_random_seed(seed)
    x, y = echo_data(rng, 2000)
    m = small_model(32)
    m.compile(Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, epochs=40, batch_size=32, verbose=0)
    xt, yt = echo_data(rng, 500)
    acc = float((m.predict(xt, verbose=0).argmax(-1) == yt).mean())
    assert acc == 1.0, f"echo accuracy {acc}, history {hist.history['accuracy'][-3:]}"
    assert hist.history["accuracy"][-1] == 1.0
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 10


def test_same_seed_gives_bitwise_identical_runs(rng, seed):
    x, y = echo_data(rng, 200)
    runs = []
    for _ in range(2):
        set_random_seed(seed)
        m = Sequential([Input((5, 10)), LSTM(8, dropout=0.2, recurrent_dropout=0.1), Dense(10, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy")
        h = m.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=True)
        runs.append((h.history["loss"], m.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def _keras_update(name, w, g, state, step, lr, **kw):
    """Keras 3's update in float64 NumPy (keras/src/optimizers/{adam,sgd,rmsprop}.py)."""
    if name == "adam":
        m, v = state
        m += (g - m) * (1 - 0.9)
        v += (g * g - v) * (1 - 0.999)
        alpha = lr * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        return w - alpha * m / (np.sqrt(v) + 1e-7)
    if name == "sgd":
        (u,) = state
        u[...] = kw["momentum"] * u - lr * g
        return w + (kw["momentum"] * u - lr * g if kw["nesterov"] else u)
    (s,) = state
    s[...] = 0.9 * s + 0.1 * g * g
    return w - lr * g / np.sqrt(s + 1e-7)


def _clip(grads, clipnorm=None, global_clipnorm=None, clipvalue=None):
    if clipnorm:
        return [g * clipnorm / max(np.linalg.norm(g), clipnorm) for g in grads]
    if global_clipnorm:
        n = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        return [g * global_clipnorm / max(n, global_clipnorm) for g in grads]
    if clipvalue:
        return [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads


@pytest.mark.parametrize("opt,name,kw,clip", [
    (lambda: Adam(0.05), "adam", {}, {}),
    (lambda: Adam(learning_rate=0.05, clipnorm=0.01), "adam", {}, {"clipnorm": 0.01}),
    (lambda: SGD(0.3, momentum=0.9, nesterov=True), "sgd", {"momentum": 0.9, "nesterov": True}, {}),
    (lambda: SGD(lr=0.3, momentum=0.5, global_clipnorm=0.02), "sgd", {"momentum": 0.5, "nesterov": False}, {"global_clipnorm": 0.02}),
    (lambda: RMSprop(0.01, clipvalue=1e-3), "rmsprop", {}, {"clipvalue": 1e-3}),
])
def test_optimizer_steps_follow_keras_formulas(rng, opt, name, kw, clip):
    x, y = echo_data(rng, 16)
    m = small_model(4)
    m.compile(opt(), "sparse_categorical_crossentropy")
    state = None
    for step in range(1, 4):
        before = [w.astype(np.float64) for w in m.get_weights()]
        _, grads = m.compute_gradients(x, y)
        grads = _clip([g.astype(np.float64) for g in grads], **clip)
        if state is None:
            state = [[np.zeros_like(w) for _ in range(2 if name == "adam" else 1)] for w in before]
        want = [_keras_update(name, w, g, st, step, m.optimizer.learning_rate, **kw)
                for w, g, st in zip(before, grads, state)]
        m.train_on_batch(x, y)
        for got, w in zip(m.get_weights(), want):
            # float32 kernels vs float64 formula: Adam amplifies rounding where |g| ~ epsilon
            np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-6)


def test_learning_rate_is_settable_between_calls(rng):
    x, y = echo_data(rng, 16)
    m = small_model(4)
    m.compile(SGD(0.1), "sparse_categorical_crossentropy")
    m.optimizer.learning_rate = 0.0
    before = m.get_weights()
    m.train_on_batch(x, y)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    m.optimizer.lr = 0.5  # Keras 2 name
    assert m.optimizer.learning_rate == 0.5
    m.train_on_batch(x, y)
    assert any(np.any(a != b) for a, b in zip(before, m.get_weights()))


def test_keras2_decay_argument(rng):
    opt = SGD(lr=1.0, decay=0.5)
    x, y = echo_data(rng, 8)
    m = small_model(4)
    m.compile(opt, "sparse_categorical_crossentropy")
    w0 = m.get_weights()
    _, g = m.compute_gradients(x, y)
    m.train_on_batch(x, y)  # iteration 0: lr / (1 + 0.5 * 0)
    np.testing.assert_allclose(m.get_weights()[0], w0[0] - 1.0 * g[0], rtol=1e-5, atol=1e-7)
    w1 = m.get_weights()
    _, g = m.compute_gradients(x, y)
    m.train_on_batch(x, y)  # iteration 1: lr / 1.5
    np.testing.assert_allclose(m.get_weights()[0], w1[0] - g[0] / 1.5, rtol=1e-5, atol=1e-7)


def test_fused_softmax_xent_equals_separate_layers(rng):
    x, y = echo_data(rng, 24)
    fused = small_model(6)
    split = Sequential([Input((5, 10)), LSTM(6), Dense(10), Activation("softmax")])
    split.set_weights(fused.get_weights())
    for m in (fused, split):
        m.compile(Adam(0.01), "sparse_categorical_crossentropy", metrics=["acc"])
    assert fused._train_steps is not fused._plan.steps and len(fused._train_steps) == 1
    for _ in range(3):
        a = fused.train_on_batch(x, y)
        b = split.train_on_batch(x, y)
        np.testing.assert_allclose(a, b, rtol=1e-5)
    for u, v in zip(fused.get_weights(), split.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)


def test_embedding_table_and_gather_paths_agree(rng, monkeypatch):
    ids = rng.integers(0, 12, (8, 6))
    ids[0, 3:] = 0
    m = Sequential([Input((6,), dtype="int32"), Embedding(12, 4, mask_zero=True),
                    LSTM(5, return_sequences=True), TimeDistributed(Dense(12, activation="softmax"))])
    m.compile("sgd", "sparse_categorical_crossentropy")
    la, ga = m.compute_gradients(ids, ids)
    monkeypatch.setattr(fusion.EmbeddingLSTM, "_use_table", lambda self, ids, training, want_grads: False)
    lb, gb = m.compute_gradients(ids, ids)
    assert abs(la - lb) < 1e-5
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_masked_loss_is_mean_over_unmasked_steps(rng):
    ids = rng.integers(1, 7, (4, 5))
    ids[1, 3:] = 0
    ids[2, :2] = 0
    y = rng.integers(0, 7, (4, 5))
    m = Sequential([Input((5,), dtype="int32"), Embedding(7, 3, mask_zero=True),
                    LSTM(4, return_sequences=True), Dense(7, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    p = m.predict(ids, verbose=0)
    nll = -np.log(np.clip(np.take_along_axis(p, y[..., None], -1)[..., 0], 1e-7, 1 - 1e-7))
    mask = ids != 0
    loss, acc = m.evaluate(ids, y, verbose=0)
    assert abs(loss - nll[mask].mean()) < 1e-5
    assert abs(acc - (p.argmax(-1) == y)[mask].mean()) < 1e-6
    # sample weights (per sequence) times the mask, normalised by the unmasked count
    sw = rng.random(4).astype("float32")
    loss_w = m.evaluate(ids, y, sample_weight=sw, verbose=0)[0]
    assert abs(loss_w - (nll * sw[:, None])[mask].sum() / mask.sum()) < 1e-5


def test_class_weight_equals_sample_weight(rng):
    x, y = echo_data(rng, 32)
    cw = {k: 1.0 + k for k in range(10)}
    a, b = small_model(4), small_model(4)
    b.set_weights(a.get_weights())
    a.compile("sgd", "sparse_categorical_crossentropy")
    b.compile("sgd", "sparse_categorical_crossentropy")
    la = a.train_on_batch(x, y, class_weight=cw)
    lb = b.train_on_batch(x, y, sample_weight=np.array([cw[int(k)] for k in y], "float32"))
    assert la == lb
    with pytest.raises(ValueError, match="class_weight"):
        a.fit(x, y, class_weight=cw, sample_weight=np.ones(32), verbose=0)


def test_fit_validation_history_and_keras_logs(rng):
    x, y = echo_data(rng, 50)
    m = small_model(4)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    h = m.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    assert set(h.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.epoch == [0, 1, 2] and m.history is h
    # the validation split is the last 20% (10 samples), unshuffled
    val = m.evaluate(x[40:], y[40:], verbose=0, return_dict=True)
    assert abs(val["loss"] - h.history["val_loss"][-1]) < 1e-6
    h2 = m.fit(x[:40], y[:40], validation_data=(x[40:], y[40:]), epochs=5, initial_epoch=3, verbose=0)
    assert h2.epoch == [3, 4]


def test_epoch_loss_is_batch_size_weighted_mean(rng):
    x, y = echo_data(rng, 10)
    m = small_model(4)
    m.compile(SGD(0.0), "sparse_categorical_crossentropy")
    h = m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    parts = [m.evaluate(x[a:b], y[a:b], verbose=0) for a, b in ((0, 4), (4, 8), (8, 10))]
    want = (4 * parts[0] + 4 * parts[1] + 2 * parts[2]) / 10
    assert abs(h.history["loss"][0] - want) < 1e-6


def test_train_on_batch_returns_that_batch(rng):
    x, y = echo_data(rng, 16)
    m = small_model(4)
    m.compile(SGD(0.0), "sparse_categorical_crossentropy", metrics=["acc"])
    a = m.train_on_batch(x, y)
    b = m.train_on_batch(x[:4], y[:4])
    assert isinstance(a, list) and len(a) == 2
    assert abs(b[0] - m.evaluate(x[:4], y[:4], verbose=0)[0]) < 1e-6
    d = m.test_on_batch(x, y, return_dict=True)
    assert set(d) == {"loss", "acc"} and abs(d["loss"] - a[0]) < 1e-6


def test_multi_output_losses_weights_and_metric_names(rng):
    i = Input((4, 3))
    h = LSTM(5)(i)
    m = Model(i, [Dense(3, activation="softmax", name="cls")(h), Dense(1, name="reg")(h)])
    m.compile("adam", {"cls": "categorical_crossentropy", "reg": "mse"},
              loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["acc"], "reg": ["mae"]})
    x = rng.standard_normal((8, 4, 3)).astype("float32")
    ys = [np.eye(3, dtype="float32")[rng.integers(0, 3, 8)], rng.standard_normal((8, 1)).astype("float32")]
    r = m.evaluate(x, ys, verbose=0, return_dict=True)
    assert set(r) == {"loss", "cls_loss", "reg_loss", "cls_acc", "reg_mae"}
    assert abs(r["loss"] - (r["cls_loss"] + 0.5 * r["reg_loss"])) < 1e-6
    assert list(m.evaluate(x, ys, verbose=0)) == [r["loss"], r["cls_loss"], r["reg_loss"], r["cls_acc"], r["reg_mae"]]


class _Batches:
    """A keras.utils.Sequence-like object."""

    def __init__(self, x, y, bs):
        self.x, self.y, self.bs = x, y, bs
        self.epochs_ended = 0

    def __len__(self):
        return int(np.ceil(len(self.x) / self.bs))

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_fit_from_generator_and_sequence(rng):
    x, y = echo_data(rng, 40)
    m = small_model(4)
    m.compile(SGD(0.0), "sparse_categorical_crossentropy")
    want = m.evaluate(x, y, batch_size=10, verbose=0)

    def gen():
        while True:
            for a in range(0, 40, 10):
                yield x[a:a + 10], y[a:a + 10]

    h = m.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0)
    assert abs(h.history["loss"][-1] - want) < 1e-6
    seq = _Batches(x, y, 10)
    h = m.fit(seq, epochs=2, verbose=0, shuffle=False)
    assert seq.epochs_ended == 2 and abs(h.history["loss"][-1] - want) < 1e-6
    assert m.predict(_Batches(x, y, 7), verbose=0).shape == (40, 10)
    assert abs(m.evaluate(gen(), steps=4, verbose=0) - want) < 1e-6


def test_callbacks_hooks_and_early_stopping(rng):
    x, y = echo_data(rng, 20)
    seen = []

    class Record(Callback):
        def on_train_begin(self, logs=None):
            seen.append("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch_end", epoch, sorted(logs)))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("batch", batch))

    m = small_model(4)
    m.compile(SGD(0.0), "sparse_categorical_crossentropy", metrics=["acc"])
    m.fit(x, y, batch_size=10, epochs=2, validation_data=(x, y), callbacks=[Record()], verbose=0)
    assert seen[0] == "train_begin"
    assert ("batch", 1) in seen
    assert ("epoch_end", 1, ["acc", "loss", "val_acc", "val_loss"]) in seen
    stop = EarlyStopping(monitor="loss", patience=1)
    h = m.fit(x, y, epochs=20, callbacks=[stop], shuffle=False, verbose=0)  # lr 0: no improvement
    assert len(h.epoch) == 2


def test_shuffle_modes_are_reproducible(rng, seed):
    x, y = echo_data(rng, 30)
    for shuffle in (True, False, "batch"):
        outs = []
        for _ in range(2):
            set_random_seed(seed)
            m = small_model(4)
            m.compile("adam", "sparse_categorical_crossentropy")
            outs.append(m.fit(x, y, batch_size=7, epochs=2, shuffle=shuffle, verbose=0).history["loss"])
        assert outs[0] == outs[1]


def test_predict_batches_and_stateful_fit(rng):
    x = rng.standard_normal((12, 3, 2)).astype("float32")
    m = Sequential([Input(batch_shape=(4, 3, 2)), LSTM(3, stateful=True), Dense(1)])
    m.compile("sgd", "mse")
    m.fit(x, rng.standard_normal((12, 1)), batch_size=4, shuffle=False, epochs=1, verbose=0)
    m.reset_states()
    p1 = m.predict(x, batch_size=4, verbose=0)
    m.reset_states()
    p2 = np.concatenate([m.predict(x[a:a + 4], batch_size=4, verbose=0) for a in (0, 4, 8)])
    np.testing.assert_array_equal(p1, p2)


def test_binary_and_regression_losses_match_formulas(rng):
    x = rng.standard_normal((6, 4, 3)).astype("float32")
    m = Sequential([Input((4, 3)), LSTM(4), Dense(1, activation="sigmoid")])
    t = (rng.random(6) > 0.5).astype("float32")
    m.compile("sgd", "binary_crossentropy", metrics=["accuracy", "mse"])
    p = m.predict(x, verbose=0)[:, 0].astype(np.float64)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -(t * np.log(pc) + (1 - t) * np.log(1 - pc)).mean()
    loss, acc, mse = m.evaluate(x, t, verbose=0)
    assert abs(loss - bce) < 1e-5 and abs(acc - ((p > 0.5) == t).mean()) < 1e-6
    assert abs(mse - ((p - t) ** 2).mean()) < 1e-6
    assert abs(losses.MeanAbsoluteError()(t, p[:, None]) - np.abs(p - t).mean()) < 1e-6


def test_python_overhead_per_train_step_is_small(rng, monkeypatch):
    """With the kernels stubbed out, one train_on_batch is only the Python orchestration."""
    from fusedlstm import _core
    import fusedlstm.layers.lstm as L
    import fusedlstm.models.step as T  # where the step calls dense_softmax_xent
    import fusedlstm.optimizer_steps as S

    x, y = echo_data(rng, 32)
    m = small_model(8)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.train_on_batch(x, y)
    h = np.zeros((32, 8), "float32")
    p = np.full((32, 10), 0.1, "float32")

    class Stub:
        matmul = staticmethod(_core.matmul)
        lstm_forward = staticmethod(lambda *a, **k: (h, h, h, object()))
        lstm_backward = staticmethod(lambda *a, **k: (None, h, h, np.zeros((10, 32), "float32"),
                                                       np.zeros((8, 32), "float32"), np.zeros(32, "float32")))
        dense_softmax_xent = staticmethod(lambda *a, **k: (1.0, p, h, np.zeros((8, 10), "float32"),
                                                            np.zeros(10, "float32")))

    for mod in (L, T):
        monkeypatch.setattr(mod, "_core", Stub)
    monkeypatch.setitem(S.RULES, "adam", (lambda *a, **k: None, S.RULES["adam"][1]))
    # Counted, not timed (no timing assertions in tests: CI machines are shared and noisy):
    # the Python function calls one step makes. bench/ measures the time.
    calls = [0]

    def count(frame, event, arg):
        if event in ("call", "c_call"):
            calls[0] += 1

    m.train_on_batch(x, y)
    sys.setprofile(count)
    try:
        for _ in range(10):
            m.train_on_batch(x, y)
    finally:
        sys.setprofile(None)
    per_step = calls[0] / 10
    # 182 calls per step when written (Python and C functions); a step's orchestration growing by
    # half again is a regression someone should look at.
    assert per_step < 255, f"{per_step:.0f} function calls per train step"
