"""fusedlstm's own files: atomic writes, sha256 checksums, refusal of damaged files.

A damaged file (truncated anywhere, a flipped bit, an entry swapped or removed, a
future version) must raise ValueError naming the file and what is wrong, and must
leave the model it was loaded into unchanged; a writer killed mid-save must leave
the previous file loadable.
"""

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import package_parent

from fusedlstm import atomic, saving
from fusedlstm.callbacks import ModelCheckpoint, restore_checkpoint
from fusedlstm.layers import LSTM, Dense, Embedding, Input
from fusedlstm.models import Sequential, load_model

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [package_parent(), os.environ.get("PYTHONPATH", "")]))

REFUSED = r"not a fusedlstm file|truncated or damaged|is damaged|is corrupted|does not match its checksum|unsupported fusedlstm format"


def _model(seed=0):
    m = Sequential([Input((6,), dtype="int32"), Embedding(11, 4), LSTM(5), Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    r = np.random.default_rng(seed)
    m.set_weights([r.standard_normal(w.shape).astype(np.float32) for w in m.get_weights()])
    return m


def _trained(tmp_path, rng):
    """Three files of the three kinds and the weights each holds."""
    m = _model()
    ids = rng.integers(0, 11, (16, 6))
    m.fit(ids, ids[:, 0] % 3, batch_size=4, epochs=1, verbose=0)
    files = {"model": str(tmp_path / "m.fusedlstm"), "weights": str(tmp_path / "w.weights.npz"),
             "checkpoint": str(tmp_path / "c.weights.npz")}
    m.save(files["model"])
    m.save_weights(files["weights"])
    held = {"model": m.get_weights(), "weights": m.get_weights()}
    # 4 batches, a checkpoint every 2nd: the last one holds the final weights
    m.fit(ids, ids[:, 0] % 3, batch_size=4, epochs=1, verbose=0,
          callbacks=[ModelCheckpoint(files["checkpoint"], save_freq=2, save_weights_only=True)])
    held["checkpoint"] = m.get_weights()
    return held, files


def _load(kind, path):
    """Load `path` the way a user would; returns (fresh model's weights, the target model)."""
    target = _model(seed=99)
    if kind == "model":
        return load_model(path).get_weights(), None
    if kind == "weights":
        target.load_weights(path)
    else:
        restore_checkpoint(target, path)
    return target.get_weights(), target


def _expect_refused(kind, path, where):
    target = _model(seed=99)
    before = target.get_weights()
    with pytest.raises(ValueError, match=REFUSED) as info:
        if kind == "model":
            load_model(path)
        elif kind == "weights":
            target.load_weights(path)
        else:
            restore_checkpoint(target, path)
    assert os.fspath(path) in str(info.value), where
    for a, b in zip(before, target.get_weights()):
        assert np.array_equal(a, b), f"{where}: the model changed although the load was refused"
    assert target.optimizer.iterations == 0, where


def _member_data_ranges(data):
    """[start, end) byte ranges of every zip member's stored data (the .npy files)."""
    out = []
    with zipfile.ZipFile(_BytesFile(data)) as z:
        for info in z.infolist():
            off = info.header_offset
            name_len, extra_len = struct.unpack("<HH", data[off + 26: off + 30])
            start = off + 30 + name_len + extra_len
            out.append((start, start + info.compress_size))
    return out


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _BytesFile(data):
    import io
    return io.BytesIO(data)


# --------------------------------------------------------------------------- format


def test_files_carry_version_and_checksum_and_roundtrip(tmp_path, rng):
    held, files = _trained(tmp_path, rng)
    for kind, path in files.items():
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        info = json.loads(arrays.pop(saving.INTEGRITY_KEY).tobytes())
        assert info["algorithm"] == "sha256" and info["digest"] == atomic.digest_arrays(arrays)
        assert sorted(info["entries"]) == sorted(arrays)
        meta = json.loads(arrays["__model__" if kind == "model" else "__weights__"].tobytes())
        assert meta["version"] == saving.FORMAT_VERSION == 2
        weights, _ = _load(kind, path)
        for a, b in zip(weights, held[kind]):
            assert np.array_equal(a, b)
    assert not glob.glob(str(tmp_path / ".*.tmp")), "a successful save leaves no temporary file"


def test_version_1_files_without_checksum_still_load(tmp_path):
    m = _model()
    arrays = saving.file_arrays(m, "weights")
    meta = json.loads(arrays["__weights__"].tobytes())
    meta["version"] = 1
    arrays["__weights__"] = saving.json_entry(meta)
    np.savez(tmp_path / "old.weights.npz", **arrays)
    target = _model(seed=5)
    target.load_weights(tmp_path / "old.weights.npz")
    for a, b in zip(m.get_weights(), target.get_weights()):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------- damage


def test_truncated_files_are_refused_at_every_offset(tmp_path, rng, seed):
    _, files = _trained(tmp_path, rng)
    n_cases = 0
    for kind, path in files.items():
        data = _read_bytes(path)
        size = len(data)
        offsets = {0, 1, 4, 29, 100, size // 4, size // 3, size // 2, size - 200, size - 23, size - 22, size - 1}
        offsets |= {int(o) for o in rng.integers(1, size, 6)}
        for off in sorted(offsets):
            bad = str(tmp_path / f"t{off}_{os.path.basename(path)}")
            with open(bad, "wb") as f:
                f.write(data[:off])
            _expect_refused(kind, bad, f"{kind} truncated to {off} of {size} bytes (seed {seed})")
            n_cases += 1
    assert n_cases >= 3 * 12


def test_bit_flips_are_refused_or_harmless(tmp_path, rng, seed):
    held, files = _trained(tmp_path, rng)
    refused = harmless = 0
    for kind, path in files.items():
        data = _read_bytes(path)
        ranges = _member_data_ranges(data)
        in_data = [int(rng.integers(a, b)) for a, b in ranges for _ in range(2)]
        anywhere = [int(p) for p in rng.integers(0, len(data), 30)]
        for pos in in_data + anywhere:
            bit = int(rng.integers(0, 8))
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            bad = str(tmp_path / f"f{pos}_{bit}_{os.path.basename(path)}")
            with open(bad, "wb") as f:
                f.write(flipped)
            where = f"{kind}: bit {bit} of byte {pos} of {len(data)} flipped (seed {seed})"
            must_refuse = any(a <= pos < b for a, b in ranges)
            try:
                weights, _ = _load(kind, bad)
            except ValueError:
                _expect_refused(kind, bad, where)
                refused += 1
                continue
            # Only zip bookkeeping the reader ignores (a timestamp, a version field) may change.
            assert not must_refuse, f"{where}: a flip in stored data was not detected"
            for a, b in zip(weights, held[kind]):
                assert np.array_equal(a, b), f"{where}: loaded different weights"
            harmless += 1
    assert refused >= 3 * 14, (refused, harmless)


def _rewrite(path, dst, edit):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a.__setitem__("w0001", a["w0001"] + np.float32(1e-3)), r"is corrupted: sha256"),
    (lambda a: a.__setitem__("w0001", a["w0002"].copy()) if a["w0001"].shape == a["w0002"].shape
     else a.__setitem__("w0001", a["w0001"][::-1].copy()), r"is corrupted: sha256"),
    (lambda a: a.pop("w0003"), r"does not match its checksum entry: entries missing \['w0003'\]"),
    (lambda a: a.__setitem__("extra", np.zeros(2)), r"unexpected \['extra'\]"),
    (lambda a: a.pop(saving.INTEGRITY_KEY), r"must hold the __integrity__ checksum entry"),
    (lambda a: a.__setitem__(saving.INTEGRITY_KEY, np.frombuffer(b"{oops", np.uint8)), "checksum entry is unreadable"),
    (lambda a: a.__setitem__("__weights__", saving.json_entry({"format": "fusedlstm", "version": 99})),
     r"version 99 \(this fusedlstm reads versions 1 to 2\)"),
    (lambda a: a.__setitem__("__weights__", np.frombuffer(b"\xff\xfe", np.uint8)), "not valid JSON"),
])
def test_edited_or_mismatched_entries_are_refused(tmp_path, edit, match):
    m = _model()
    m.save_weights(tmp_path / "w.weights.npz")
    bad = tmp_path / "bad.weights.npz"
    _rewrite(tmp_path / "w.weights.npz", bad, edit)
    target = _model(seed=3)
    before = target.get_weights()
    with pytest.raises(ValueError, match=match):
        target.load_weights(bad)
    assert all(np.array_equal(a, b) for a, b in zip(before, target.get_weights()))


def test_weights_of_another_model_are_refused_before_any_assignment(tmp_path):
    other = Sequential([Input((6,), dtype="int32"), Embedding(11, 4), LSTM(5), Dense(4)])
    other.save_weights(tmp_path / "o.weights.npz")
    target = _model()
    before = target.get_weights()
    # the first three weights fit; the Dense kernel (5, 4) does not: nothing may be assigned
    with pytest.raises(ValueError, match=r"dense.*kernel.*\(5, 3\) in the model but \(5, 4\) in the file"):
        target.load_weights(tmp_path / "o.weights.npz")
    assert all(np.array_equal(a, b) for a, b in zip(before, target.get_weights()))


# --------------------------------------------------------------------------- crashes while writing


def test_failure_during_the_write_keeps_the_old_file(tmp_path, monkeypatch):
    old, new = _model(seed=1), _model(seed=2)
    path = tmp_path / "w.weights.npz"
    old.save_weights(path)
    real_savez = np.savez

    def savez_then_fail(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(f.tell() // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saving.np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space left"):
        new.save_weights(path)
    monkeypatch.setattr(saving.np, "savez", real_savez)

    def interrupted_rename(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "m.fusedlstm")
    with pytest.raises(KeyboardInterrupt):
        new.save_weights(path)
    monkeypatch.undo()
    target = _model(seed=3)
    target.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(old.get_weights(), target.get_weights()))
    assert not os.path.exists(tmp_path / "m.fusedlstm")
    assert sorted(os.listdir(tmp_path)) == ["w.weights.npz"], "temporary files must be removed on failure"


def test_sigkill_during_saves_leaves_a_complete_file(tmp_path, rng, seed):
    from helpers.write_loop import model as big_model

    path = str(tmp_path / "big.weights.npz")
    mid_write = 0
    for attempt in range(3):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "helpers", "write_loop.py"), path],
                             env=ENV, stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(int(rng.integers(1, 4))):
                assert p.stdout.readline().strip() == "saved"
            # Kill while a save is in progress: its temporary file exists.
            deadline = time.monotonic() + 20
            while not glob.glob(str(tmp_path / ".big.weights.npz.*.tmp")) and time.monotonic() < deadline:
                time.sleep(0.0005)
            p.send_signal(signal.SIGKILL)
            mid_write += bool(glob.glob(str(tmp_path / ".big.weights.npz.*.tmp")))
        finally:
            p.stdout.close()
            p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        m = big_model()
        m.load_weights(path)
        values = {float(w.flat[0]) for w in m.get_weights()}
        assert values in ({1.0}, {2.0}), f"attempt {attempt}: a mixture of saves {values} (seed {seed})"
        assert all(np.all(w == w.flat[0]) for w in m.get_weights())
        for stray in glob.glob(str(tmp_path / ".*.tmp")):
            os.unlink(stray)
    assert mid_write == 3, f"only {mid_write} of 3 kills landed during a save (seed {seed})"
