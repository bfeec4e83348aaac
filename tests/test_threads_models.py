"""Models under several Python threads: the same bits as one thread, and a fork-safe pool.

test_threads_core.py drives the kernels directly; these tests drive them the way
users do: several threads predicting with one model, several models training at
once, the thread count changed while they run, short-lived threads, and a
forked child that trains and predicts after the parent's pool has started (and
while another parent thread is inside a kernel). Each result is compared bitwise
with the same work done on one thread. `.ci/sanitize --thread` runs this file
under ThreadSanitizer.

Dropout draws from each layer's own seeded generator and fit runs with
shuffle=False, so no step draws from the global stream, whose order of draws
between threads is not deterministic (that is the only thing that is not).
"""

import os
import threading
import time

import numpy as np
import pytest

import fusedlstm
from fusedlstm.layers import LSTM, Dense, Embedding, Input, TimeDistributed
from fusedlstm.models import Sequential
from fusedlstm.optimizers import Adam, RMSprop
from fusedlstm.utils import set_random_seed
from test_threads_core import assert_same_bits, run_in_child, run_threads


@pytest.fixture
def restore_threads():
    before = fusedlstm.get_num_threads()
    yield
    fusedlstm.set_num_threads(before)


def one_hot_model(T=12, V=20, H=48):
    return Sequential([Input((T, V)), LSTM(H, return_sequences=True), LSTM(H // 2),
                       Dense(V, activation="softmax")])


def ids_model(T=15, V=30, H=40, seed=None):
    # masked ids, dropout from the layer's own generator, a sequence output
    return Sequential([Input((T,), dtype="int32"), Embedding(V, 16, mask_zero=True),
                       LSTM(H, return_sequences=True, dropout=0.1, recurrent_dropout=0.1, seed=seed),
                       TimeDistributed(Dense(V, activation="softmax"))])


def one_hot_data(rng, n, T=12, V=20):
    ids = rng.integers(0, V, (n, T))
    return np.eye(V, dtype="float32")[ids], ids[:, 3]


def ids_data(rng, n, T=15, V=30):
    x = rng.integers(1, V, (n, T)).astype("int32")
    x[:, -rng.integers(0, 5):] = 0  # padded tails: the mask takes part
    return x, np.roll(x, 1, axis=1)


# ---------------------------------------------------------------------------
# Inference on one model from several threads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("nthreads", [1, 2])
def test_concurrent_predict_on_one_model(nthreads, rng, seed, restore_threads):
    """predict, predict_on_batch and model(x) on one shared model, all at once."""
    fusedlstm.set_num_threads(nthreads)
    set_random_seed(seed)
    m = one_hot_model()
    inputs = [one_hot_data(rng, n)[0] for n in (1, 7, 64, 200)]
    calls = [lambda x=inputs[0]: m.predict(x, verbose=0),
             lambda x=inputs[1]: m.predict_on_batch(x),
             lambda x=inputs[2]: m(x),
             lambda x=inputs[3]: m.predict(x, batch_size=50, verbose=0),
             lambda x=inputs[3]: m.predict(x, batch_size=50, verbose=0)]  # the same call twice at once
    weights = [w.copy() for w in m.get_weights()]
    sequential = [np.asarray(c()) for c in calls]
    results = run_threads([lambda c=c: np.asarray(c()) for c in calls])
    for k, want in enumerate(sequential):
        for rep, got in enumerate(results[k]):
            assert_same_bits(got, want, f"call {k} repeat {rep} (threads={nthreads}, seed={seed})")
    for w, before in zip(m.get_weights(), weights):
        assert w.tobytes() == before.tobytes(), "predict changed the weights"


def test_concurrent_predict_with_masks(rng, seed):
    set_random_seed(seed)
    m = ids_model()
    xs = [ids_data(rng, n)[0] for n in (5, 33, 128)]
    sequential = [m.predict(x, verbose=0) for x in xs]
    results = run_threads([lambda x=x: m.predict(x, verbose=0) for x in xs])
    for k, want in enumerate(sequential):
        for rep, got in enumerate(results[k]):
            assert_same_bits(got, want, f"input {k} repeat {rep} seed={seed}")


# ---------------------------------------------------------------------------
# Several models training at once
# ---------------------------------------------------------------------------

def training_jobs(rng, seed):
    """(build, fit) pairs: build() makes the model with fixed weights, fit(m) trains it
    and returns the history and the weights."""
    xa, ya = one_hot_data(rng, 96)
    xb, yb = ids_data(rng, 80)
    xc, yc = one_hot_data(rng, 64, T=7, V=11)

    def built(make, opt, loss, s):
        def build():
            set_random_seed(s)
            m = make()
            m.compile(opt(), loss)
            return m
        return build

    def fitter(x, y, batch_size, epochs=2):
        def fit(m):
            h = m.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
            return h.history["loss"], m.get_weights()
        return fit

    return [
        (built(one_hot_model, lambda: Adam(1e-2), "sparse_categorical_crossentropy", seed),
         fitter(xa, ya, 32)),
        (built(lambda: ids_model(seed=seed + 1), lambda: RMSprop(1e-2), "sparse_categorical_crossentropy",
               seed + 2), fitter(xb, yb, 16)),
        (built(lambda: one_hot_model(T=7, V=11, H=24), lambda: Adam(1e-3), "sparse_categorical_crossentropy",
               seed + 3), fitter(xc, yc, 64, epochs=3)),
    ]


def train_concurrently(jobs, repeats=2, during=None):
    """Every job trained on one thread and on `repeats` threads at once (fresh models
    with the same weights); returns (sequential, concurrent[k][rep])."""
    sequential = [fit(build()) for build, fit in jobs]
    models = [[build() for _ in range(repeats)] for build, _ in jobs]
    flat = [(k, r) for k in range(len(jobs)) for r in range(repeats)]
    stop = threading.Event()
    side = threading.Thread(target=during, args=(stop,)) if during else None
    if side:
        side.start()
    try:
        out = run_threads([lambda k=k, r=r: jobs[k][1](models[k][r]) for k, r in flat], repeats=1)
    finally:
        stop.set()
        if side:
            side.join()
    concurrent = [[None] * repeats for _ in jobs]
    for (k, r), res in zip(flat, out):
        concurrent[k][r] = res[0]
    return sequential, concurrent


@pytest.mark.parametrize("nthreads", [1, 2])
def test_training_several_models_on_several_threads(nthreads, rng, seed, restore_threads):
    fusedlstm.set_num_threads(nthreads)
    sequential, concurrent = train_concurrently(training_jobs(rng, seed))
    for k, want in enumerate(sequential):
        for r, got in enumerate(concurrent[k]):
            assert_same_bits(got, want, f"model {k} copy {r} (threads={nthreads}, seed={seed})")


def test_thread_count_changes_while_models_train(rng, seed, restore_threads):
    """fusedlstm.set_num_threads from another thread, mid-fit: the results never depend on it."""
    def toggle(stop):
        n = 0
        while not stop.is_set():
            fusedlstm.set_num_threads(1 + n % 3)
            n += 1
            time.sleep(0.001)

    sequential, concurrent = train_concurrently(training_jobs(rng, seed)[:2], during=toggle)
    for k, want in enumerate(sequential):
        for r, got in enumerate(concurrent[k]):
            assert_same_bits(got, want, f"model {k} copy {r} seed={seed}")


def test_short_lived_threads(rng, seed, restore_threads):
    """Threads that run one training step and exit: each leaves behind its per-thread
    scratch buffers, freed at its exit; results as on the main thread."""
    fusedlstm.set_num_threads(2)
    set_random_seed(seed)
    m = one_hot_model()
    m.compile(Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = one_hot_data(rng, 64)
    start = [w.copy() for w in m.get_weights()]
    want = m.train_on_batch(x, y), m.get_weights()
    got = []
    for _ in range(6):
        m.set_weights(start)
        m.compile(Adam(1e-3), "sparse_categorical_crossentropy")  # a fresh optimizer state
        t = threading.Thread(target=lambda: got.append((m.train_on_batch(x, y), m.get_weights())))
        t.start()
        t.join()
    assert len(got) == 6
    for k, g in enumerate(got):
        assert_same_bits(g, want, f"thread {k} seed={seed}")


# ---------------------------------------------------------------------------
# fork(): a child trains and predicts with the parent's model
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_trains_while_parent_threads_run_kernels(rng, seed, restore_threads):
    """fork() while another parent thread is inside kernels (pool busy, buffer cache in
    use): the child starts with its own pool and cache and gets the parent's numbers."""
    fusedlstm.set_num_threads(2)
    set_random_seed(seed)
    m = one_hot_model()
    m.compile(Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = one_hot_data(rng, 128)
    m.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)  # the pool and the cache are up
    start = [w.copy() for w in m.get_weights()]
    want_pred = m.predict(x, verbose=0)
    m.compile(Adam(1e-3), "sparse_categorical_crossentropy")  # a fresh optimizer state, as the child's
    want_loss = m.train_on_batch(x, y)
    want_w = m.get_weights()

    busy = Sequential([Input((40, 64)), LSTM(256), Dense(8)])
    xb = rng.standard_normal((64, 40, 64)).astype("float32")
    stop = threading.Event()
    calls = [0]

    def spin():
        while not stop.is_set():
            busy.predict(xb, verbose=0)
            calls[0] += 1

    def child():
        got_pred = m.predict(x, verbose=0)
        m.set_weights(start)
        m.compile(Adam(1e-3), "sparse_categorical_crossentropy")
        got_loss = m.train_on_batch(x, y)
        assert_same_bits((got_pred, got_loss, m.get_weights()), (want_pred, want_loss, want_w), "child")
        return True

    m.set_weights(start)
    m.compile(Adam(1e-3), "sparse_categorical_crossentropy")
    t = threading.Thread(target=spin)
    t.start()
    try:
        while calls[0] == 0:
            time.sleep(0.001)
        oks = [run_in_child(child) for _ in range(3)]
    finally:
        stop.set()
        t.join()
    assert all(oks), f"a forked child failed or differed: {oks} (seed={seed})"
