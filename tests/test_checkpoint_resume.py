"""ModelCheckpoint + restore_checkpoint: a run killed mid-training resumes bit for bit.

The subprocess tests kill a real training process with SIGKILL at a random batch
(seeded; the seed is printed on failure), restore its last checkpoint in a fresh
process and require the final weights, optimizer step count and the History of
the resumed epochs to equal those of an uninterrupted run exactly. The in-process
tests cover more stop points quickly, and the refusals (wrong model, optimizer,
data) leave the model untouched.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import package_parent

from fusedlstm import optimizers
from fusedlstm.callbacks import Callback, ModelCheckpoint, restore_checkpoint
from fusedlstm.layers import LSTM, Dense, Dropout, Input
from fusedlstm.models import Sequential
from fusedlstm.utils import set_random_seed

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "helpers", "train_resume.py")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [package_parent(), os.environ.get("PYTHONPATH", "")]))


# --------------------------------------------------------------------------- subprocess runs


def _run(cfg, *args):
    subprocess.run([sys.executable, SCRIPT, json.dumps(cfg), *args], env=ENV, check=True, timeout=120,
                   stdout=subprocess.DEVNULL)


def _run_and_kill(cfg, ckpt, mode, after_lines, extra=()):
    """Start a checkpointed run, SIGKILL it once it has printed `after_lines` batch lines."""
    cfg = dict(cfg, sleep=0.02)
    p = subprocess.Popen([sys.executable, SCRIPT, json.dumps(cfg), mode, ckpt, *extra], env=ENV,
                         stdout=subprocess.PIPE, text=True)
    seen = 0
    try:
        for line in p.stdout:
            if line.startswith("batch"):
                seen += 1
            if seen >= after_lines:
                p.send_signal(signal.SIGKILL)
                break
    finally:
        p.stdout.close()
        p.wait(timeout=60)
    return p.returncode, seen


def _load(out):
    with np.load(out, allow_pickle=False) as z:
        ws = [z[f"arr_{i}"] for i in range(len([k for k in z.files if k.startswith("arr_")]))]
        return ws, int(z["iterations"]), json.loads(str(z["history"]))


def _assert_same_run(ref_out, res_out, where):
    ref_w, ref_it, ref_h = _load(ref_out)
    res_w, res_it, res_h = _load(res_out)
    assert res_it == ref_it, where
    for k, (a, b) in enumerate(zip(ref_w, res_w)):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{where}: weight {k} differs"
    first = res_h["epoch"][0]
    for key, values in res_h.items():
        assert values == ref_h[key][first:], f"{where}: history {key!r} differs"


CONFIGS = {
    "weights-adam-shuffle": dict(variant="lstm", ckpt="weights", optimizer="adam", shuffle=True,
                                 epochs=4, batch_size=16, save_freq=7),
    "model-sgd-batchshuffle": dict(variant="embed", ckpt="model", optimizer="sgd", shuffle="batch",
                                   epochs=3, batch_size=16, save_freq=5),
    "model-rmsprop-metrics": dict(variant="lstm", ckpt="model", optimizer="rmsprop", shuffle=True,
                                  epochs=3, batch_size=16, save_freq=4, metrics="many"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sigkill_then_resume_is_bitwise_equal(name, tmp_path, rng, seed):
    cfg = dict(CONFIGS[name], seed=seed % 10000)
    total = cfg["epochs"] * -(-150 // cfg["batch_size"])
    ref, res, ckpt = str(tmp_path / "ref.npz"), str(tmp_path / "res.npz"), str(
        tmp_path / ("ckpt.weights.npz" if cfg["ckpt"] == "weights" else "ckpt.fusedlstm"))
    _run(cfg, "ref", ref)
    kill_at = int(rng.integers(cfg["save_freq"], total - 4))
    code, seen = _run_and_kill(cfg, ckpt, "run", kill_at)
    where = f"{name}: killed after {seen} batches (seed {seed})"
    assert code == -signal.SIGKILL, where
    _run(cfg, "resume", ckpt, res)
    _assert_same_run(ref, res, where)


def test_killed_twice_resumes_twice(tmp_path, rng, seed):
    cfg = dict(CONFIGS["weights-adam-shuffle"], seed=seed % 10000, optimizer="rmsprop")
    ref, res, ckpt = (str(tmp_path / n) for n in ("ref.npz", "res.npz", "c.weights.npz"))
    _run(cfg, "ref", ref)
    first = int(rng.integers(cfg["save_freq"], 15))
    code1, _ = _run_and_kill(cfg, ckpt, "run", first)
    code2, _ = _run_and_kill(cfg, ckpt, "resume", 10, extra=(str(tmp_path / "unused.npz"),))
    assert code1 == code2 == -signal.SIGKILL
    _run(cfg, "resume", ckpt, res)
    _assert_same_run(ref, res, f"killed after {first} then 10 more batches (seed {seed})")


# --------------------------------------------------------------------------- in process


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, n):
        super().__init__()
        self.n, self.seen = n, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.n:
            raise Crash


def _model(opt="adam", seed=0):
    set_random_seed(seed)
    m = Sequential([Input((5, 3)), LSTM(6, dropout=0.25, seed=2), Dropout(0.2), Dense(3, activation="softmax")])
    m.compile(optimizers.get(opt), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(seed):
    r = np.random.default_rng(seed)
    return r.standard_normal((45, 5, 3)).astype("float32"), r.integers(0, 3, 45)


@pytest.mark.parametrize("suffix", [".weights.npz", ".fusedlstm"])
def test_crash_at_every_kind_of_point_resumes_exactly(tmp_path, suffix, seed):
    x, y = _data(seed)
    kw = dict(batch_size=8, epochs=3, verbose=0)  # 6 batches per epoch, the last one partial
    ref = _model(seed=seed)
    ref_hist = ref.fit(x, y, **kw).history
    path = str(tmp_path / ("ck" + suffix))
    weights_only = suffix == ".weights.npz"
    # crash points: mid-epoch, right after a save, at an epoch's last batch, in the last epoch
    for crash in (4, 6, 8, 12, 17):
        m = _model(seed=seed)
        with pytest.raises(Crash):
            m.fit(x, y, callbacks=[ModelCheckpoint(path, save_freq=2, save_weights_only=weights_only),
                                   CrashAt(crash)], **kw)
        r = _model(seed=seed)
        info = restore_checkpoint(r, path)
        saved = crash - crash % 2  # the last save: every 2nd batch, counted across epochs
        assert (info["epoch"], info["batch"], info["iterations"]) == ((saved - 1) // 6, (saved - 1) % 6 + 1, saved)
        hist = r.fit(x, y, initial_epoch=info["initial_epoch"],
                     callbacks=[ModelCheckpoint(path, save_freq=2, save_weights_only=weights_only)], **kw).history
        for a, b in zip(ref.get_weights(), r.get_weights()):
            assert np.array_equal(a, b), f"crash after {crash} batches (seed {seed})"
        assert r.optimizer.iterations == ref.optimizer.iterations
        for k in ref_hist:
            assert hist[k] == ref_hist[k][info["initial_epoch"]:], (crash, k)


def test_epoch_checkpoint_and_learning_rate_are_restored(tmp_path, seed):
    x, y = _data(seed)
    ref = _model("sgd", seed)
    ref.optimizer.learning_rate = 0.2
    ref.fit(x, y, batch_size=10, epochs=3, verbose=0)
    m = _model("sgd", seed)
    m.optimizer.learning_rate = 0.2
    path = str(tmp_path / "e{epoch}.fusedlstm")
    with pytest.raises(Crash):
        m.fit(x, y, batch_size=10, epochs=3, verbose=0, callbacks=[ModelCheckpoint(path), CrashAt(7)])
    r = _model("sgd", seed)  # default learning rate 0.01: the checkpoint brings back 0.2
    info = restore_checkpoint(r, str(tmp_path / "e1.fusedlstm"))
    assert info["initial_epoch"] == 1 and info["batch"] == 0 and r.optimizer.learning_rate == 0.2
    r.fit(x, y, batch_size=10, epochs=3, verbose=0, initial_epoch=1)
    for a, b in zip(ref.get_weights(), r.get_weights()):
        assert np.array_equal(a, b)


def test_stateful_lstm_states_travel_with_the_checkpoint(tmp_path, rng):
    def build():
        set_random_seed(3)
        m = Sequential([Input(batch_shape=(4, 5, 2)), LSTM(3, stateful=True), Dense(1)])
        m.compile("adam", "mse")
        return m

    x, y = rng.standard_normal((8, 5, 2)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")
    ref = build()
    ref.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    m = build()
    path = str(tmp_path / "s.weights.npz")
    with pytest.raises(Crash):
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
              callbacks=[ModelCheckpoint(path, save_freq=1, save_weights_only=True), CrashAt(3)])
    r = build()
    info = restore_checkpoint(r, path)
    np.testing.assert_array_equal(r.layers[0].states[0], m.layers[0].states[0])
    r.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, initial_epoch=info["initial_epoch"])
    for a, b in zip(ref.get_weights(), r.get_weights()):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def checkpoint(tmp_path, seed):
    x, y = _data(seed)
    m = _model(seed=seed)
    path = str(tmp_path / "ck.weights.npz")
    m.fit(x, y, batch_size=8, epochs=1, verbose=0,
          callbacks=[ModelCheckpoint(path, save_freq=4, save_weights_only=True)])
    return path, x, y


def _unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize("make, match", [
    (lambda: _model("sgd"), r"optimizer 'Adam'.*'SGD'"),
    (lambda: Sequential([Input((5, 3)), LSTM(7), Dense(3, activation="softmax")]), r"shape \(3, 28\).*\(3, 24\)"),
    (lambda: Sequential([Input((5, 3)), LSTM(6), Dropout(0.2), Dense(3, activation="softmax")]),
     r"random generators for layers \['0:LSTM'\].*seeded layers are \[\]"),
])
def test_restore_into_a_different_model_is_refused_and_harmless(checkpoint, make, match):
    path, _, _ = checkpoint
    m = make()
    if not m.compiled:
        m.compile("adam", "sparse_categorical_crossentropy")
    before = m.get_weights()
    state = np.random.default_rng(0).bit_generator.state
    with pytest.raises(ValueError, match=match):
        restore_checkpoint(m, path)
    assert _unchanged(m, before) and m.optimizer.iterations == 0
    assert np.random.default_rng(0).bit_generator.state == state


def test_restore_refuses_plain_files_uncompiled_models_and_other_suffixes(tmp_path, checkpoint):
    path, _, _ = checkpoint
    m = _model()
    m.save_weights(tmp_path / "plain.weights.npz")
    with pytest.raises(ValueError, match="holds no training state.*load_weights"):
        restore_checkpoint(m, str(tmp_path / "plain.weights.npz"))
    raw = Sequential([Input((5, 3)), LSTM(6, seed=2), Dropout(0.2), Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="compile the model"):
        restore_checkpoint(raw, path)
    with pytest.raises(ValueError, match=r"not a fusedlstm checkpoint.*\.weights\.npz"):
        restore_checkpoint(m, str(tmp_path / "c.keras"))
    with pytest.raises(TypeError, match="expected a fusedlstm model, got str"):
        restore_checkpoint("model", path)
    with pytest.raises(FileNotFoundError):
        restore_checkpoint(m, str(tmp_path / "absent.weights.npz"))


def test_resuming_with_other_data_or_epoch_is_caught(checkpoint):
    path, x, y = checkpoint
    m = _model()
    restore_checkpoint(m, path)
    with pytest.raises(ValueError, match=r"stopped after batch 4 of epoch index 0 with 6 batches per epoch; this fit has 3"):
        m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    restore_checkpoint(m, path)
    with pytest.warns(UserWarning, match="continues at epoch index 0, but fit was called with initial_epoch=1"):
        m.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0)
