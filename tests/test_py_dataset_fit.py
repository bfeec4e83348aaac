"""fit / evaluate / predict on a PyDataset (keras.utils.PyDataset / Sequence) and on generators.

The order of the dataset's calls is checked against real Keras 3.15.1 (torch backend)
in test_keras_calls_the_dataset_as_we_do and the loss history in
test_loss_history_matches_keras; the rest compares a PyDataset with the same batches
given as arrays, where the training curve must be bitwise the same.
"""

import os
import threading
import time
import warnings

import numpy as np
import pytest

from conftest import require
from fusedlstm.layers import LSTM, Dense, Input
from fusedlstm.models import Sequential
from fusedlstm.optimizers import SGD, Adam
from fusedlstm.utils import PyDataset, Sequence, set_random_seed, timeseries_dataset_from_array

T, F, C = 5, 3, 4


def data(rng, n):
    x = rng.standard_normal((n, T, F)).astype("float32")
    return x, rng.integers(0, C, n)


def model(seed, build=True):
    set_random_seed(seed)
    layers = ([Input((T, F))] if build else []) + [LSTM(6), Dense(C, activation="softmax")]
    m = Sequential(layers)
    m.compile(Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def make_dataset_class(base):
    """One user class, written against our base class or Keras's: batch i of `sizes`."""
    class Batches(base):
        def __init__(self, x, y, sizes, sw=None, log=None, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y, self.sw, self.log = x, y, sw, log
            self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

        def __len__(self):
            return len(self.starts) - 1

        def __getitem__(self, i):
            if self.log is not None:
                self.log.append(("get", int(i)))
            s = slice(self.starts[i], self.starts[i + 1])
            return (self.x[s], self.y[s]) if self.sw is None else (self.x[s], self.y[s], self.sw[s])

        def on_epoch_begin(self):
            if self.log is not None:
                self.log.append("begin")

        def on_epoch_end(self):
            if self.log is not None:
                self.log.append("end")
    return Batches


Batches = make_dataset_class(PyDataset)


def regular(n, bs):
    return [bs] * (n // bs) + ([n % bs] if n % bs else [])


def assert_same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


# ---- the same numbers as arrays ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, dict(workers=3, max_queue_size=2), dict(workers=1, use_multiprocessing=True)])
def test_same_training_curve_as_arrays(kwargs, rng, seed):
    x, y = data(rng, 30)  # batches of 8: the last one has 6 samples
    sw = rng.uniform(0.5, 2.0, 30).astype("float32")
    xv, yv = data(rng, 11)
    a, b = model(seed), model(seed)
    ha = a.fit(x, y, sample_weight=sw, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv))
    ds = Batches(x, y, regular(30, 8), sw=sw, **kwargs)
    hb = b.fit(ds, epochs=3, shuffle=False, verbose=0, validation_data=Batches(xv, yv, regular(11, 8), **kwargs))
    assert ha.history == hb.history
    assert_same_weights(a, b)
    assert a.evaluate(x, y, batch_size=8, verbose=0) == b.evaluate(Batches(x, y, regular(30, 8), **kwargs), verbose=0)
    np.testing.assert_array_equal(a.predict(x, batch_size=8, verbose=0),
                                  b.predict(Batches(x, y, regular(30, 8), **kwargs), verbose=0))


def test_batches_of_varying_sizes_train_as_train_on_batch(rng, seed):
    sizes = [7, 1, 5, 3, 9]
    x, y = data(rng, sum(sizes))
    a, b = model(seed), model(seed)
    h = a.fit(Batches(x, y, sizes), epochs=2, shuffle=False, verbose=0)
    losses = []
    for _ in range(2):
        start = 0
        for s in sizes:
            losses.append(b.train_on_batch(x[start:start + s], y[start:start + s])[0])
            start += s
    assert_same_weights(a, b)
    # the epoch's loss is the batch losses' mean weighted by batch size, as for arrays
    per_batch = np.array(losses).reshape(2, len(sizes))
    want = per_batch @ np.array(sizes) / sum(sizes)
    np.testing.assert_allclose(h.history["loss"], want, rtol=1e-6)


def test_x_only_batches_and_dict_inputs_in_predict(rng, seed):
    x, _ = data(rng, 10)

    class XOnly(PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[4 * i:4 * i + 4] if i != 1 else (x[4:8],)
    m = model(seed)
    np.testing.assert_array_equal(m.predict(XOnly(), verbose=0), m.predict(x, batch_size=4, verbose=0))


def test_unbuilt_sequential_builds_from_batch_zero(rng, seed):
    x, y = data(rng, 12)
    a = model(seed, build=False)  # the weights are drawn when fit builds the model
    ha = a.fit(Batches(x, y, [4, 4, 4]), epochs=2, shuffle=False, verbose=0)
    hb = model(seed, build=False).fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert a.built and a.input_shape == (None, T, F)
    assert ha.history == hb.history


def test_timeseries_dataset_trains_and_predicts(rng, seed):
    series = rng.standard_normal((40, F)).astype("float32")
    targets = rng.integers(0, C, 40)
    ds = timeseries_dataset_from_array(series, targets[T:], sequence_length=T, batch_size=8)
    windows = np.stack([series[i:i + T] for i in range(40 - T)])
    a, b = model(seed), model(seed)
    ha = a.fit(ds, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(windows, targets[T:], batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert ha.history == hb.history
    xonly = timeseries_dataset_from_array(series, None, sequence_length=T, batch_size=8)
    np.testing.assert_array_equal(a.predict(xonly, verbose=0),
                                  a.predict(np.stack([series[i:i + T] for i in range(40 - T + 1)]), verbose=0))


def test_class_weight_as_with_arrays(rng, seed):
    x, y = data(rng, 20)
    cw = {0: 1.0, 1: 2.5, 2: 0.5, 3: 1.5}
    a, b = model(seed), model(seed)
    ha = a.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0, class_weight=cw)
    hb = b.fit(Batches(x, y, regular(20, 6)), epochs=2, shuffle=False, verbose=0, class_weight=cw)
    assert ha.history == hb.history
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        b.fit(Batches(x, y, [20], sw=np.ones(20)), class_weight=cw, verbose=0)


def test_keras2_sequence_duck_type(rng, seed):
    """An object with __len__/__getitem__ but no PyDataset base (a Keras 2 Sequence)."""
    x, y = data(rng, 12)

    class Duck:
        ended = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]

        def on_epoch_end(self):
            self.ended += 1
    a, b = model(seed), model(seed)
    duck = Duck()
    assert a.fit(duck, epochs=2, shuffle=False, verbose=0).history == \
        b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    assert duck.ended == 2  # no PyDataset: no extra on_epoch_end before the first epoch
    assert Sequence is PyDataset


# ---- Keras's call order and epochs ---------------------------------------------------------------

def test_call_order_fit_evaluate_predict(rng, seed):
    x, y = data(rng, 10)
    log = []
    m = model(seed)
    m.fit(Batches(x, y, [4, 4, 2], log=log), epochs=2, shuffle=False, verbose=0)
    # the values below are what Keras 3.15.1 logs (test_keras_calls_the_dataset_as_we_do runs it)
    assert log == ["end"] + ["begin", ("get", 0), ("get", 1), ("get", 2), "end"] * 2
    log.clear()
    m.evaluate(Batches(x, y, [4, 4, 2], log=log), verbose=0)
    assert log == ["end", "begin", ("get", 0), ("get", 1), ("get", 2), "end"]
    log.clear()
    m.predict(Batches(x, y, [4, 4, 2], log=log), verbose=0)
    assert log == ["begin", ("get", 0), ("get", 1), ("get", 2), "end"]


def test_steps_per_epoch_carries_the_position_over(rng, seed):
    x, y = data(rng, 12)
    log = []
    m = model(seed)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(Batches(x, y, [4, 4, 4], log=log), epochs=4, steps_per_epoch=2, shuffle=False, verbose=0)
    gets = [e for e in log if e != "begin" and e != "end"]
    assert gets == [("get", i) for i in (0, 1, 2, 0, 1, 2)]
    assert log.count("begin") == 4 and log.count("end") == 5 and len(h.history["loss"]) == 4
    log.clear()
    with pytest.warns(UserWarning, match="ran out of data"):
        m.fit(Batches(x, y, [4, 4, 4], log=log), epochs=2, steps_per_epoch=5, shuffle=False, verbose=0)
    assert log == ["end"] + ["begin", ("get", 0), ("get", 1), ("get", 2), "end"] * 2
    log.clear()
    m.evaluate(Batches(x, y, [4, 4, 4], log=log), steps=2, verbose=0)
    assert log == ["end", "begin", ("get", 0), ("get", 1), "end"]


def test_endless_dataset_needs_steps_and_keeps_counting(rng, seed):
    x, y = data(rng, 8)
    seen = []

    class Endless(PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            seen.append(i)
            return x[(i % 2) * 4:(i % 2) * 4 + 4], y[(i % 2) * 4:(i % 2) * 4 + 4]
    m = model(seed)
    with pytest.raises(ValueError, match="endless.*steps_per_epoch"):
        m.fit(Endless(), verbose=0, shuffle=False)
    m.fit(Endless(), steps_per_epoch=3, epochs=2, verbose=0, shuffle=False)
    assert seen == list(range(6))
    with pytest.warns(UserWarning, match="infinite PyDataset"):
        m.fit(Endless(), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="endless.*`steps`"):
        m.predict(Endless(), verbose=0)


def test_shuffle_permutes_the_batch_order_each_epoch_and_follows_the_seed(rng, seed):
    x, y = data(rng, 40)
    orders = []
    for _ in range(2):
        log = []
        m = model(seed)
        set_random_seed(seed)
        m.fit(Batches(x, y, [4] * 10, log=log), epochs=3, verbose=0)  # shuffle=True is fit's default
        gets = [e[1] for e in log if isinstance(e, tuple)]
        epochs = [gets[i * 10:(i + 1) * 10] for i in range(3)]
        assert all(sorted(e) == list(range(10)) for e in epochs)
        orders.append(epochs)
    assert orders[0] == orders[1]
    assert orders[0][0] != orders[0][1] or orders[0][1] != orders[0][2], "a fresh order every epoch"


def test_workers_fetch_ahead_in_threads_and_keep_the_order(rng, seed):
    x, y = data(rng, 24)
    threads = set()

    class Slow(Batches):
        def __getitem__(self, i):
            threads.add(threading.get_ident())
            time.sleep(0.002 * (3 - i % 3))  # later batches finish first
            return super().__getitem__(i)
    a, b = model(seed), model(seed)
    ha = a.fit(Slow(x, y, [4] * 6, workers=3, max_queue_size=4), epochs=2, shuffle=False, verbose=0)
    hb = b.fit(Batches(x, y, [4] * 6), epochs=2, shuffle=False, verbose=0)
    assert ha.history == hb.history
    assert len(threads - {threading.get_ident()}) >= 2


def test_worker_exception_reaches_the_caller(rng, seed):
    x, y = data(rng, 12)

    class Broken(Batches):
        def __getitem__(self, i):
            if i == 2:
                raise KeyError("no batch two")
            return super().__getitem__(i)
    for kwargs in ({}, dict(workers=2)):
        with pytest.raises(KeyError, match="no batch two"):
            model(seed).fit(Broken(x, y, [4, 4, 4], **kwargs), shuffle=False, verbose=0)


def test_checkpoint_resume_mid_epoch_is_exact_with_a_shuffled_dataset(tmp_path, rng, seed):
    from fusedlstm.callbacks import Callback, ModelCheckpoint, restore_checkpoint

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == 8:
                raise Crash
    x, y = data(rng, 30)
    ds = Batches(x, y, [7, 7, 7, 7, 2])  # shuffle=True (fit's default): a drawn batch order per epoch
    ref = model(seed)
    ref_hist = ref.fit(ds, epochs=3, verbose=0).history
    path = str(tmp_path / "ck.fusedlstm")
    with pytest.raises(Crash):
        model(seed).fit(ds, epochs=3, verbose=0, callbacks=[ModelCheckpoint(path, save_freq=3), CrashAt()])
    r = model(seed)
    info = restore_checkpoint(r, path)
    assert (info["epoch"], info["batch"]) == (1, 1)  # saved after 6 batches: 5 + 1
    hist = r.fit(ds, epochs=3, verbose=0, initial_epoch=info["initial_epoch"]).history
    assert_same_weights(ref, r)
    for k in ref_hist:
        assert hist[k] == ref_hist[k][info["initial_epoch"]:], k


# ---- bad input -------------------------------------------------------------------------------------

def _broken(x, y, bad_index, bad):
    class Bad(PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            s = slice(4 * i, 4 * i + 4)
            return bad(x[s], y[s]) if i == bad_index else (x[s], y[s])
    return Bad()


@pytest.mark.parametrize("bad, pattern", [
    (lambda x, y: (x, y, y, y), r"batch 2 of the PyDataset Bad: __getitem__\(\) must return .*tuple of 4"),
    (lambda x, y: {1, 2}, r"batch 2 of the PyDataset Bad: .*got a set"),
    (lambda x, y: (x[:, :, :2], y), r"batch 2 of the PyDataset Bad: Input 0 .* expected shape \(None, 5, 3\)"),
    (lambda x, y: (x, y[:3]), r"batch 2 of the PyDataset Bad: x has 4 samples but y has 3"),
    (lambda x, y: (x, y, np.ones(2)), r"batch 2 of the PyDataset Bad: x has 4 samples but sample_weight has 2"),
    (lambda x, y: (x,), r"batch 2 of the PyDataset Bad: fit: the batch has no targets"),
    (lambda x, y: (x, y + 7), r"batch 2 of the PyDataset Bad: .*class id"),
    (lambda x, y: (np.full_like(x, np.nan), y), r"batch 2 of the PyDataset Bad: .*(NaN|finite)"),
])
def test_bad_batches_name_their_index(bad, pattern, rng, seed):
    x, y = data(rng, 12)
    with pytest.raises(ValueError, match=pattern):
        model(seed).fit(_broken(x, y, 2, bad), shuffle=False, verbose=0)


def test_bad_batch_in_evaluate_and_predict(rng, seed):
    x, y = data(rng, 12)
    m = model(seed)
    with pytest.raises(ValueError, match="evaluate: batch 1 of the PyDataset Bad: Input 0"):
        m.evaluate(_broken(x, y, 1, lambda a, b: (a[..., :1], b)), verbose=0)
    with pytest.raises(ValueError, match="predict: batch 0 of the PyDataset Bad: .*tuple of 5"):
        m.predict(_broken(x, y, 0, lambda a, b: (a,) * 5), verbose=0)


def test_bad_generator_batch_names_its_index(rng, seed):
    x, y = data(rng, 12)

    def gen():
        yield x[:4], y[:4]
        yield x[4:8], y[4:8], y[4:8], y[4:8]
    with pytest.raises(ValueError, match="batch 1 of the generator"):
        model(seed).fit(gen(), verbose=0)


def test_arguments_a_dataset_refuses_or_ignores(rng, seed):
    x, y = data(rng, 12)
    m = model(seed)
    ds = Batches(x, y, [4, 4, 4])
    # Keras 3.15.1 ignores batch sizes given with a dataset; a Keras program passing one still runs here.
    with pytest.warns(UserWarning, match="batch_size=4.*no effect.*PyDataset"):
        m.fit(ds, batch_size=4, verbose=0)
    with pytest.warns(UserWarning, match="batch_size"):
        m.predict(ds, batch_size=4, verbose=0)
    with pytest.warns(UserWarning, match="validation_batch_size"):
        m.fit(x, y, batch_size=4, validation_data=ds, validation_batch_size=4, verbose=0)
    m.fit(x, y, batch_size=4, validation_data=ds, verbose=0)  # fit's batch_size is x's
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.fit(ds, y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` should not be passed"):
        m.evaluate(ds, sample_weight=np.ones(12), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(ds, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="length 0"):
        m.fit(Batches(x, y, []), verbose=0)
    with pytest.warns(UserWarning, match="batch_size.*generator"):
        m.fit(iter([(x, y)]), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="class_weight.*generator"):
        m.fit(iter([(x, y)]), class_weight={0: 1.0}, verbose=0)


# ---- against Keras 3.15.1 ------------------------------------------------------------------------

def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("torch", "compare")
    return require("keras", "compare")


KERAS_WARNINGS = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
def test_keras_calls_the_dataset_as_we_do(rng, seed):
    keras = _keras()
    x, y = data(rng, 12)
    KBatches = make_dataset_class(keras.utils.PyDataset)
    km = keras.Sequential([keras.Input((T, F)), keras.layers.LSTM(6), keras.layers.Dense(C, activation="softmax")])
    km.compile("adam", "sparse_categorical_crossentropy")
    ours = model(seed)
    km.fit(KBatches(x, y, [4, 4, 4]), verbose=0)  # Keras's first fit also reads batch 0 to build its metrics

    def logs(m, cls, run):
        log = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(m, lambda sizes=(4, 4, 4): cls(x, y, list(sizes), log=log))
        return log

    runs = {
        "fit": lambda m, ds: m.fit(ds(), epochs=2, shuffle=False, verbose=0),
        "fit+validation": lambda m, ds: m.fit(ds(), epochs=2, shuffle=False, verbose=0, validation_data=ds((4, 4))),
        "steps_per_epoch<len": lambda m, ds: m.fit(ds(), epochs=4, steps_per_epoch=2, shuffle=False, verbose=0),
        "steps_per_epoch>len": lambda m, ds: m.fit(ds(), epochs=2, steps_per_epoch=5, shuffle=False, verbose=0),
        "evaluate": lambda m, ds: m.evaluate(ds(), verbose=0),
        "evaluate steps": lambda m, ds: m.evaluate(ds(), steps=2, verbose=0),
        "predict": lambda m, ds: m.predict(ds(), verbose=0),
        "predict steps": lambda m, ds: m.predict(ds(), steps=2, verbose=0),
    }
    for what, run in runs.items():
        assert logs(ours, Batches, run) == logs(km, KBatches, run), what
    # shuffle=True: Keras shuffles the batch order too (Python's random there, our Generator here)
    keras.utils.set_random_seed(seed)
    klog = logs(km, KBatches, lambda m, ds: m.fit(ds([1] * 12), epochs=3, verbose=0))
    olog = logs(ours, Batches, lambda m, ds: m.fit(ds([1] * 12), epochs=3, verbose=0))
    for log in (klog, olog):
        gets = [e[1] for e in log if isinstance(e, tuple)]
        assert [sorted(gets[i * 12:(i + 1) * 12]) for i in range(3)] == [list(range(12))] * 3
        assert gets != list(range(12)) * 3
    assert [e for e in klog if isinstance(e, str)] == [e for e in olog if isinstance(e, str)]


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNINGS)
def test_loss_history_matches_keras(rng, seed):
    keras = _keras()
    import keras_parity_support as ps

    x, y = data(rng, 26)
    sw = rng.uniform(0.5, 2.0, 26).astype("float32")
    xv, yv = data(rng, 9)
    sizes = [8, 8, 7, 3]

    def build(lib):
        return lib.Sequential([lib.Input((T, F)), lib.layers.LSTM(6), lib.layers.Dense(C, activation="softmax")])
    pair = ps.Pair(keras, build, rng).compile("sparse_categorical_crossentropy", "adam", metrics=["accuracy"])
    KBatches = make_dataset_class(keras.utils.PyDataset)
    hk = pair.k.fit(KBatches(x, y, sizes, sw=sw), epochs=4, shuffle=False, verbose=0,
                    validation_data=KBatches(xv, yv, [5, 4]))
    ho = pair.o.fit(Batches(x, y, sizes, sw=sw, workers=2), epochs=4, shuffle=False, verbose=0,
                    validation_data=Batches(xv, yv, [5, 4]))
    assert sorted(hk.history) == sorted(ho.history)
    for key in hk.history:
        a, b = np.array(hk.history[key]), np.array(ho.history[key])
        err = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-3)))
        assert err <= ps.TRAIN_TOL, f"{key}: keras {a} vs ours {b} (rel {err:.3g})"
    ek = pair.k.evaluate(KBatches(xv, yv, [5, 4]), verbose=0, return_dict=True)
    eo = pair.o.evaluate(Batches(xv, yv, [5, 4]), verbose=0, return_dict=True)
    assert sorted(ek) == sorted(eo)
    for key in ek:
        assert abs(ek[key] - eo[key]) <= ps.TRAIN_TOL * max(1.0, abs(ek[key])), key
    assert ps.max_diff(pair.k.predict(KBatches(xv, yv, [5, 4]), verbose=0),
                       pair.o.predict(Batches(xv, yv, [5, 4]), verbose=0)) <= ps.TRAIN_TOL
