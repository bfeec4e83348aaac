"""Parity with Keras 3.15.1 (torch backend) on the classic task models, at small sizes.

Where a task module has a model builder it is called as is, once with Keras as its
engine and once with fusedlstm (echo, echo-sequence, seq2seq, chars-seq); the
others are written here as their modules build them (chars, digitsum, addition).
Data comes from the tasks' own generators, so inputs are the one-hot arrays the
tasks train on (our engine takes its one-hot fast path on them).

Each model: predictions, the training loss and every gradient, then 20 Adam steps
(the tasks' optimizer). The two stateful models (echo-sequence, seq2seq) are
compared forward over consecutive calls against Keras's stateful layers; Keras-torch
cannot train stateful LSTMs, so their training is compared against Keras training
the same computation with the state carried explicitly (echo-sequence) or, for
seq2seq whose state is reset before every batch, against the stateless model.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import require
import keras_parity_support as ps

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]


@pytest.fixture(scope="module")
def keras():
    require("torch", "compare")
    return require("keras", "compare")


def _ctx(lib, lr=1e-2):
    engine = SimpleNamespace(models=SimpleNamespace(Sequential=lib.Sequential, Model=lib.Model), layers=lib.layers,
                             optimizers=lib.optimizers)
    return SimpleNamespace(engine=engine, adam=lambda rate=lr, clipnorm=0.0: lib.optimizers.Adam(
        learning_rate=rate, clipnorm=clipnorm or None))


def _compiled(build, loss):
    def wrapped(lib):
        model = build(lib)
        model.compile(optimizer=lib.optimizers.Adam(learning_rate=1e-2), loss=loss, metrics=["acc"])
        return model
    return wrapped


def _check_all(keras, build, x, y, rng, seed, steps=20):
    pair = ps.Pair(keras, build, rng)
    ps.check_predictions(pair, x, f"seed={seed}")
    ps.check_loss_and_gradients(pair, x, y, f"seed={seed}")
    pair = ps.Pair(keras, build, rng)
    lk, lo, loss_err, w_err = ps.train_steps(pair, x, y, steps)
    assert loss_err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {loss_err:.3g}\n{lk}\n{lo}"
    assert w_err <= ps.TRAIN_TOL, f"seed={seed}: final weights differ by {w_err:.3g}"


def test_echo(keras, rng, seed):
    from fusedlstm.tasks import echo, generate_batch

    x, y = generate_batch(8, 5, 10, 2, rng=rng)
    _check_all(keras, lambda lib: echo.build_model(_ctx(lib), length=5, features=10, units=12, lr=1e-2),
               x, y, rng, seed)


def test_motif_order(keras, rng, seed):
    """The CNN-LSTM (Conv1D(relu) -> MaxPooling1D -> LSTM -> Dense(sigmoid)) and the bag-of-motifs
    baseline, built by tasks/motif_order.py, on its own data (30 steps, binary cross-entropy)."""
    from fusedlstm.tasks import motif_order
    from fusedlstm.tasks.generators import motif_order_dataset

    x, y, _ = motif_order_dataset(8, length=30, symbols=10, rng=rng)
    for bag in (0, 1):
        cfg = SimpleNamespace(length=30, symbols=10, filters=6, units=8, bag=bag)
        build = _compiled(lambda lib: motif_order.build(_ctx(lib).engine, cfg), "binary_crossentropy")
        _check_all(keras, build, x, y.reshape(-1, 1).astype(np.float32), rng, f"{seed} bag={bag}")


CELLS = pytest.mark.parametrize("cell", ["lstm", "gru"])  # the tasks' --cell


@CELLS
def test_chars(keras, rng, seed, cell):
    from fusedlstm.tasks import N_CHARS, char_windows, encode_text, load_sonnets

    ids = encode_text(load_sonnets()[:400])
    x, y = char_windows(ids, 10)
    x, y = x[:16], y[:16]

    def build(lib):  # tasks/chars.py run_chars
        L = lib.layers
        rnn = L.GRU if cell == "gru" else L.LSTM
        return lib.Sequential([lib.Input(shape=(10,), dtype="int32"), L.Embedding(N_CHARS, 8), rnn(16),
                               L.Dense(N_CHARS, activation="softmax")])

    _check_all(keras, _compiled(build, "sparse_categorical_crossentropy"), x, y, rng, seed)


@CELLS
def test_chars_seq(keras, rng, seed, cell):
    from fusedlstm.tasks import char_windows, encode_text, load_sonnets
    from fusedlstm.tasks.chars import build_seq_model

    ids = encode_text(load_sonnets()[:400])
    x, y = char_windows(ids, 10, many_to_many=True)
    x, y = x[:16], y[:16]
    cfg = SimpleNamespace(cell=cell, window=10, embed=8, units=16)
    _check_all(keras, _compiled(lambda lib: build_seq_model(_ctx(lib).engine, cfg), "sparse_categorical_crossentropy"),
               x, y, rng, seed)


def test_digitsum(keras, rng, seed):
    from fusedlstm.tasks import digitsum_dataset

    _, x, y = digitsum_dataset(3)
    pick = rng.choice(len(x), size=32, replace=False)
    x, y = x[pick], y[pick]

    def build(lib):  # tasks/digitsum.py
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(3, 10)), L.LSTM(16), L.Dense(10, activation="softmax")])

    _check_all(keras, _compiled(build, "sparse_categorical_crossentropy"), x, y, rng, seed)


def test_addition(keras, rng, seed):
    from fusedlstm.tasks import ADDITION_ALPHABET, addition_dataset, addition_widths

    in_w, out_w = addition_widths(2, 10)
    x, y, _, _ = addition_dataset(16, 2, 10, rng=rng)
    n = len(ADDITION_ALPHABET)

    def build(lib):  # tasks/addition.py
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(in_w, n)), L.LSTM(16), L.RepeatVector(out_w),
                               L.LSTM(12, return_sequences=True), L.TimeDistributed(L.Dense(n, activation="softmax"))])

    _check_all(keras, _compiled(build, "categorical_crossentropy"), x, y, rng, seed)


# ---------------------------------------------------------------------------------------------
# stateful task models
# ---------------------------------------------------------------------------------------------

def _reset(model):
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()


def _forward_over_calls(pair, batches, seed, batch_size):
    for k, x in enumerate(batches):
        err = ps.max_diff(pair.k.predict(x, verbose=0, batch_size=batch_size),
                          pair.o.predict(x, verbose=0, batch_size=batch_size))
        assert err <= ps.PRED_TOL, f"seed={seed}: call {k} differs by {err:.3g}"


def test_echo_sequence(keras, rng, seed):
    from fusedlstm.tasks import echo_sequence, echo_windows

    cfg = SimpleNamespace(batch_size=4, window=5, features=10, units=12, lr=1e-2)
    x, y = echo_windows(12, 10, 5, 5, rng=rng)  # 8 windows: two batches of 4 carry the state
    pair = ps.Pair(keras, lambda lib: echo_sequence.build_model(_ctx(lib), cfg), rng)
    _forward_over_calls(pair, [x[:4], x[4:], x[:4]], seed, 4)

    # Training: ours stateful as the task runs it (fit per sequence, shuffle=False, reset after);
    # Keras the same LSTM with the state as explicit inputs/outputs.
    klib = ps.keras_lib(keras)
    L = klib.layers
    xin, h0, c0 = klib.Input(batch_shape=(4, 5, 10)), klib.Input(batch_shape=(4, 12)), klib.Input(batch_shape=(4, 12))
    seq_out, h, c = L.LSTM(12, return_sequences=True, return_state=True)(xin, initial_state=[h0, c0])
    out = L.TimeDistributed(L.Dense(10, activation="softmax"))(seq_out)
    ktrain, kstate = klib.Model([xin, h0, c0], out), klib.Model([xin, h0, c0], [h, c])
    ours = echo_sequence.build_model(_ctx(ps.ours_lib()), cfg)
    ps.randomize(ktrain, rng)
    ps.copy_weights(ktrain, ours)
    ktrain.compile(optimizer=klib.optimizers.Adam(learning_rate=1e-2), loss="categorical_crossentropy")
    lk, lo = [], []
    for _ in range(5):
        xs, ys = echo_windows(12, 10, 5, 5, rng=rng)
        lo += ours.fit(xs, ys, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"]
        _reset(ours)
        state = [np.zeros((4, 12), np.float32)] * 2
        losses = []
        for b in range(2):
            xb, yb = xs[4 * b:4 * b + 4], ys[4 * b:4 * b + 4]
            nxt = kstate.predict([xb] + state, verbose=0, batch_size=4)
            losses.append(float(ktrain.train_on_batch([xb] + state, yb)))
            state = list(nxt)
        lk.append(float(np.mean(losses)))  # fit's epoch loss: the mean of two equal batches
    lk, lo = np.array(lk), np.array(lo)
    err = float(np.max(np.abs(lk - lo) / lk))
    assert err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {err:.3g}\n{lk}\n{lo}"


@CELLS
def test_seq2seq(keras, rng, seed, cell):
    from fusedlstm.tasks import echo_windows, seq2seq

    cfg = SimpleNamespace(cell=cell, length=10, window=5, features=10, units=12, n_out=2, lr=1e-2)
    x, y = echo_windows(10, 10, 5, 2, rng=rng)  # 6 windows = the stateful batch
    pair = ps.Pair(keras, lambda lib: seq2seq.build_model(_ctx(lib), cfg), rng)
    _forward_over_calls(pair, [x, x[::-1].copy(), x], seed, 6)

    def stateless(lib):  # tasks/seq2seq.py's model without stateful=True
        L = lib.layers
        rnn = L.GRU if cell == "gru" else L.LSTM
        return lib.Sequential([lib.Input(batch_shape=(6, 5, 10)), rnn(12), L.RepeatVector(2),
                               rnn(12, return_sequences=True),
                               L.TimeDistributed(L.Dense(10, activation="softmax"))])

    klib = ps.keras_lib(keras)
    kmodel = stateless(klib)
    kmodel.compile(optimizer=klib.optimizers.Adam(learning_rate=1e-2), loss="categorical_crossentropy")
    ours = seq2seq.build_model(_ctx(ps.ours_lib()), cfg)
    ps.randomize(kmodel, rng)
    ps.copy_weights(kmodel, ours)
    lk, lo = [], []
    for _ in range(20):
        xs, ys = echo_windows(10, 10, 5, 2, rng=rng)
        lo += ours.fit(xs, ys, batch_size=6, epochs=1, shuffle=False, verbose=0).history["loss"]
        _reset(ours)
        lk.append(float(kmodel.train_on_batch(xs, ys)))
    lk, lo = np.array(lk), np.array(lo)
    err = float(np.max(np.abs(lk - lo) / lk))
    assert err <= ps.TRAIN_TOL, f"seed={seed}: loss curves differ by {err:.3g}\n{lk}\n{lo}"
    for layer in (layer for layer in kmodel.layers if layer.get_weights()):
        for a, b in zip(layer.get_weights(), ours.get_layer(layer.name).get_weights()):
            assert np.max(np.abs(a - b)) <= ps.TRAIN_TOL * np.max(np.abs(a)), f"seed={seed}: {layer.name}"
