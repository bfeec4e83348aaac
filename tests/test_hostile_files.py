"""Hostile files: every loader refuses a crafted or damaged file with a ValueError naming
what is wrong, without inflating a bomb, without following links out of the file and
without writing anywhere (issue 26; the promises are in docs/reliability.md).

Memory is bounded by tracemalloc's peak (NumPy, zlib and zipfile allocate through it):
a loader that inflated a bomb or allocated a config's huge shape would pass it by
hundreds of MiB. fuzz/fuzz_loaders.py attacks the same loaders with random edits.
"""

import io
import json
import os
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from conftest import require

from fusedlstm import atomic, resume, saving, untrusted
from fusedlstm.download import extract_archive
from fusedlstm.layers import LSTM, Dense, Input
from fusedlstm.models import Model, Sequential, load_model

MiB = 1 << 20
BOMB_BYTES = 256 * MiB  # inflated size of the bomb members (~256 KB stored)


def _model():
    m = Sequential([Input((5, 3)), LSTM(4), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.train_on_batch(np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32"), np.array([0, 1, 1, 0]))
    return m


@pytest.fixture(scope="module")
def model():
    return _model()


def _tree(folder):
    """Every path under folder (to show a refused load wrote nothing)."""
    out = set()
    for root, dirs, files in os.walk(folder):
        out.update(os.path.relpath(os.path.join(root, n), folder) for n in dirs + files)
    return out


def refused(fn, path, match, exc=ValueError, peak_mib=64):
    """fn() raises `exc` matching `match`, allocates at most peak_mib and writes nothing beside path."""
    folder = os.path.dirname(os.fspath(path))
    before = _tree(folder)
    tracemalloc.start()
    try:
        with pytest.raises(exc, match=match) as info:
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < peak_mib * MiB, f"refusing {os.path.basename(os.fspath(path))} took {peak / MiB:.0f} MiB"
    assert _tree(folder) == before, "a refused load wrote files"
    return info.value


def _bomb():
    """Raw-deflate bytes of BOMB_BYTES zeros, and their CRC."""
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = bytes(16 * MiB)
    data = b"".join(c.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + c.flush()
    crc = 0
    for _ in range(BOMB_BYTES // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return data, crc


@pytest.fixture(scope="module")
def bomb():
    return _bomb()


def _zip(path, members, bomb_member=None, bomb=None):
    """A zip of (name, bytes) members, plus a deflate bomb member written without inflating it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
            if bomb_member is not None:
                data, crc = bomb
                info = zipfile.ZipInfo(bomb_member)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size, info.compress_size, info.CRC = BOMB_BYTES, len(data), crc
                zf.fp.write(info.FileHeader(zip64=False))
                zf.fp.write(data)
                info.header_offset = zf.start_dir
                zf.start_dir = zf.fp.tell()
                zf.filelist.append(info)
                zf.NameToInfo[bomb_member] = info


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _resealed(arrays):
    """Our container's entries with a freshly computed checksum (a forger's file)."""
    arrays = {k: v for k, v in arrays.items() if k != saving.INTEGRITY_KEY}
    arrays[saving.INTEGRITY_KEY] = saving.json_entry(
        {"algorithm": "sha256", "digest": atomic.digest_arrays(arrays), "entries": sorted(arrays)})
    return arrays


def _write_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _own_arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _edit_model_config(path, out, edit):
    arrays = _own_arrays(path)
    meta = json.loads(arrays["__model__"].tobytes())
    edit(meta["config"])
    arrays["__model__"] = saving.json_entry(meta)
    _write_npz(out, _resealed(arrays))


def _first_lstm(config):
    return next(l for l in config["layers"] if l["class_name"] == "LSTM")


# ---------------------------------------------------------------------------------------------
# zip containers: bombs, traversal names, duplicates
# ---------------------------------------------------------------------------------------------

def test_zip_bomb_in_our_model_file_is_refused_before_inflating(model, tmp_path, bomb):
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    bad = tmp_path / "box" / "bomb.fusedlstm"
    bad.parent.mkdir()
    _zip(bad, _members(good), bomb_member="w9999.npy", bomb=bomb)
    refused(lambda: load_model(bad), bad, "zip bomb")


def test_zip_bomb_in_keras_archive_is_refused_before_inflating(model, tmp_path, bomb):
    require("h5py", "h5")
    good = tmp_path / "good.keras"
    model.save(good)
    bad = tmp_path / "box" / "bomb.keras"
    bad.parent.mkdir()
    _zip(bad, [(n, d) for n, d in _members(good) if n != "model.weights.h5"], bomb_member="model.weights.h5",
         bomb=bomb)
    refused(lambda: load_model(bad), bad, "zip bomb")
    refused(lambda: _model().load_weights(bad), bad, "zip bomb")


def test_nested_archives_are_never_unpacked(model, tmp_path, bomb):
    require("h5py", "h5")
    # A .keras whose weights member is itself a zip holding a bomb: read as HDF5, refused, nothing inflated.
    inner = tmp_path / "inner.zip"
    _zip(inner, [], bomb_member="x", bomb=bomb)
    good = tmp_path / "good.keras"
    model.save(good)
    bad = tmp_path / "box" / "nested.keras"
    bad.parent.mkdir()
    _zip(bad, [(n, d) for n, d in _members(good) if n != "model.weights.h5"] +
         [("model.weights.h5", inner.read_bytes())])
    refused(lambda: load_model(bad), bad, "not a readable HDF5 file")
    # Extracting an archive that holds a bomb zip writes the small inner zip only.
    outer = tmp_path / "outer.zip"
    _zip(outer, [("inner.zip", inner.read_bytes())])
    assert extract_archive(outer, tmp_path / "out")
    assert _tree(tmp_path / "out") == {"inner.zip"}
    assert (tmp_path / "out" / "inner.zip").stat().st_size == inner.stat().st_size


def test_zip_bomb_is_not_extracted(tmp_path, bomb):
    path = tmp_path / "box" / "bomb.zip"
    path.parent.mkdir()
    _zip(path, [("ok.txt", b"fine")], bomb_member="big.bin", bomb=bomb)
    refused(lambda: extract_archive(path, tmp_path / "box" / "out"), path, "zip bomb")


@pytest.mark.parametrize("name", ["../evil.npy", "/abs/evil.npy", "a/../../evil.npy", "C:\\evil.npy"])
def test_member_names_leaving_the_archive_are_refused(model, tmp_path, name):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    bad = tmp_path / "box" / "names.weights.npz"
    bad.parent.mkdir()
    _zip(bad, _members(good) + [(name, untrusted.npy_bytes(np.zeros(2)))])
    refused(lambda: _model().load_weights(bad), bad, "absolute or climbs out")


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "dir/../../evil.txt"])
def test_extraction_never_writes_outside_its_folder(tmp_path, name):
    import tarfile
    path = tmp_path / "box" / "evil.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo(name)
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    refused(lambda: extract_archive(path, tmp_path / "box" / "out"), path, "outside the extraction folder")
    assert not os.path.exists("/tmp/evil.txt") or name != "/tmp/evil.txt"


def test_symlinks_out_of_an_archive_are_refused_and_zip_links_stay_files(tmp_path):
    import tarfile
    path = tmp_path / "box" / "link.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("data/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    refused(lambda: extract_archive(path, tmp_path / "box" / "out"), path, "link .* points outside")
    # Info-ZIP's symlink marking: extracted as a small regular file holding the target's name.
    zpath = tmp_path / "link.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo("passwd")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    assert extract_archive(zpath, tmp_path / "zout")
    out = tmp_path / "zout" / "passwd"
    assert not out.is_symlink() and out.read_bytes() == b"/etc/passwd"


def test_a_symlink_or_fifo_named_like_a_model_is_refused(model, tmp_path):
    fifo = tmp_path / "fifo.fusedlstm"
    os.mkfifo(fifo)
    refused(lambda: load_model(fifo), fifo, "is a FIFO")
    dev = tmp_path / "zero.weights.npz"
    dev.symlink_to("/dev/zero")
    refused(lambda: _model().load_weights(dev), dev, "is a device")
    # A symbolic link to a regular file is followed: it is the user's own file system.
    real = tmp_path / "real.fusedlstm"
    model.save(real)
    (tmp_path / "link.fusedlstm").symlink_to(real)
    np.testing.assert_array_equal(load_model(tmp_path / "link.fusedlstm").get_weights()[0], model.get_weights()[0])


def test_duplicate_members_are_refused(model, tmp_path):
    require("h5py", "h5")
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    bad = tmp_path / "dup.fusedlstm"
    members = _members(good)
    _zip(bad, members + [("w0000.npy", untrusted.npy_bytes(np.zeros((3, 16), np.float32)))])
    refused(lambda: load_model(bad), bad, "two members named 'w0000.npy'")
    kgood = tmp_path / "good.keras"
    model.save(kgood)
    kbad = tmp_path / "dup.keras"
    _zip(kbad, _members(kgood) + [("config.json", b'{"class_name": "Lambda"}')])
    refused(lambda: load_model(kbad), kbad, "two members named 'config.json'")


def test_npy_header_that_lies_about_its_size_is_refused_before_allocation(model, tmp_path):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }".ljust(117) + "\n"
    lying = b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode() + bytes(64)
    bad = tmp_path / "lying.weights.npz"
    _zip(bad, [(n, d) for n, d in _members(good) if n != "w0000.npy"] + [("w0000.npy", lying)])
    refused(lambda: _model().load_weights(bad), bad, r"declares shape \(1000000, 1000000\)")


# ---------------------------------------------------------------------------------------------
# configs: classes and shapes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ["Lambda", "EvilCustomLayer"])
def test_a_config_naming_a_class_we_do_not_have_is_refused(model, tmp_path, cls):
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    bad = tmp_path / "cls.fusedlstm"

    def edit(config):
        layer = _first_lstm(config)
        layer["class_name"] = cls
        layer["config"]["function"] = "os.system"

    _edit_model_config(good, bad, edit)
    refused(lambda: load_model(bad), bad, cls, exc=NotImplementedError)


@pytest.mark.parametrize("cls", ["Lambda", "EvilCustomLayer"])
def test_a_keras_config_naming_a_class_we_do_not_have_is_refused(model, tmp_path, cls):
    require("h5py", "h5")
    good = tmp_path / "good.keras"
    model.save(good)
    members = dict(_members(good))
    config = json.loads(members["config.json"])
    lstm = _first_lstm(config["config"])
    lstm["class_name"] = cls
    lstm["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "os.system('touch pwned')"}}
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "cls.keras"
    _zip(bad, list(members.items()))
    refused(lambda: load_model(bad), bad, cls)
    assert not os.path.exists("pwned")


@pytest.mark.parametrize("units, match", [(10 ** 9, "declares weights of more than"),
                                          (2 ** 40, "declares weights of more than"),
                                          (-4, "shape|negative|units")])
def test_huge_or_negative_shapes_in_our_config_are_refused_before_allocation(model, tmp_path, units, match):
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    bad = tmp_path / "shape.fusedlstm"
    _edit_model_config(good, bad, lambda c: _first_lstm(c)["config"].update(units=units))
    refused(lambda: load_model(bad), bad, match)


def test_huge_shapes_in_a_keras_config_are_refused_before_allocation(model, tmp_path):
    require("h5py", "h5")
    good = tmp_path / "good.keras"
    model.save(good)
    members = dict(_members(good))
    config = json.loads(members["config.json"])
    _first_lstm(config["config"])["config"]["units"] = 10 ** 9
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "shape.keras"
    _zip(bad, list(members.items()))
    refused(lambda: load_model(bad), bad, r"shape|declares|expected")


def test_deeply_nested_json_is_refused(model, tmp_path):
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    arrays = _own_arrays(good)
    arrays["__model__"] = np.frombuffer(("[" * 100000 + "]" * 100000).encode(), np.uint8)
    bad = tmp_path / "deep.fusedlstm"
    _write_npz(bad, _resealed(arrays))
    refused(lambda: load_model(bad), bad, "not valid JSON")


def test_a_forged_config_of_wrong_types_is_a_value_error(model, tmp_path):
    good = tmp_path / "good.fusedlstm"
    model.save(good)
    bad = tmp_path / "types.fusedlstm"
    _edit_model_config(good, bad, lambda c: c.update(layers={"not": "a list"}))
    refused(lambda: load_model(bad), bad, "types.fusedlstm")


@pytest.mark.parametrize("ref, match", [
    (["dense", 0, 3], "which has 1 output"),
    (["dense", 0], "malformed tensor reference"),
    (["dense", None, 0], "malformed tensor reference"),
    ([7, 0, 0], "malformed tensor reference"),
    ("dense", "malformed tensor reference"),
    (["nowhere", 0, 0], "missing tensor"),
])
def test_forged_tensor_references_in_a_functional_config_are_refused(tmp_path, ref, match):
    # Found by the loader fuzzer: an output index past the node's outputs raised IndexError.
    inp = Input((5, 3))
    m = Model(inp, Dense(2, name="dense")(LSTM(4)(inp)))
    good = tmp_path / "good.fusedlstm"
    m.save(good)
    bad = tmp_path / "refs.fusedlstm"
    _edit_model_config(good, bad, lambda c: c.update(outputs=[ref]))
    refused(lambda: load_model(bad), bad, match)


def test_forged_tensor_references_in_a_keras_config_are_refused(tmp_path):
    require("h5py", "h5")  # a .keras file holds its weights in HDF5
    inp = Input((5, 3))
    m = Model(inp, Dense(2, name="dense")(LSTM(4)(inp)))
    good = tmp_path / "good.keras"
    m.save(good)
    members = dict(_members(good))
    config = json.loads(members["config.json"])
    config["config"]["output_layers"] = [["dense", 0, 5]]
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "refs.keras"
    _zip(bad, members.items())
    refused(lambda: load_model(bad), bad, "refs.keras")


# ---------------------------------------------------------------------------------------------
# weights: dtype, count, values
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.complex64, "<U3", np.bool_])
def test_weights_of_the_wrong_dtype_are_refused(model, tmp_path, dtype):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    arrays = _own_arrays(good)
    arrays["w0000"] = np.zeros(arrays["w0000"].shape, dtype)
    bad = tmp_path / "dtype.weights.npz"
    _write_npz(bad, _resealed(arrays))
    refused(lambda: _model().load_weights(bad), bad, "numeric array|dtype")


def test_object_arrays_are_never_unpickled(model, tmp_path):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    arrays = _own_arrays(good)
    arrays["w0000"] = np.array([os.system], dtype=object)
    bad = tmp_path / "pickle.weights.npz"
    with open(bad, "wb") as f:
        np.savez(f, **arrays)
    refused(lambda: _model().load_weights(bad), bad, "pickle")


def test_a_missing_weight_is_refused_and_the_model_is_unchanged(model, tmp_path):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    arrays = _own_arrays(good)
    del arrays["w0002"]
    bad = tmp_path / "count.weights.npz"
    _write_npz(bad, _resealed(arrays))
    target = _model()
    before = target.get_weights()
    refused(lambda: target.load_weights(bad), bad, "holds 4 weights, the model has 5")
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nan_and_inf_weights_load_with_a_warning_naming_them(model, tmp_path):
    good = tmp_path / "good.weights.npz"
    model.save_weights(good)
    arrays = _own_arrays(good)
    arrays["w0001"] = arrays["w0001"].copy()
    arrays["w0001"][0, :3] = [np.nan, np.inf, -np.inf]
    arrays["w0003"] = np.full_like(arrays["w0003"], 1e300, dtype=np.float64)  # inf once cast to float32
    bad = tmp_path / "nan.weights.npz"
    _write_npz(bad, _resealed(arrays))
    target = _model()
    with pytest.warns(untrusted.NonFiniteWeightsWarning, match=r"recurrent_kernel \(3 values\).*kernel \(8 values\)"):
        target.load_weights(bad)
    assert np.isnan(target.get_weights()[1][0, 0])


def test_nan_weights_in_a_keras_file_warn_too(model, tmp_path):
    h5py = require("h5py", "h5")
    path = tmp_path / "nan.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r+") as f:
        ds = f["layers/dense/vars/0"]
        ds[0, 0] = np.nan
    with pytest.warns(untrusted.NonFiniteWeightsWarning, match="dense"):
        _model().load_weights(path)


@pytest.mark.parametrize("var, value, match", [
    ("1", np.zeros((2, 3), np.float32), "learning_rate should be one number"),
    ("0", np.array(2.5), "iterations should be one integer"),
    ("0", np.array(-4), "iterations should be >= 0"),
    ("4", np.zeros(5, np.float32), "should hold 64 numbers"),
    ("4", np.zeros((4, 16), "S1"), r"vars/4 has dtype \|S1, expected numbers"),
])
def test_a_keras_optimizer_state_of_the_wrong_shape_is_refused(model, tmp_path, var, value, match):
    # Found by the loader fuzzer: a non-scalar learning_rate variable raised TypeError from float().
    h5py = require("h5py", "h5")
    good = tmp_path / "good.keras"
    model.save(good)
    members = dict(_members(good))
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        del f[f"optimizer/vars/{var}"]
        f[f"optimizer/vars/{var}"] = value
    members["model.weights.h5"] = buf.getvalue()
    bad = tmp_path / "bad.keras"
    _zip(bad, members.items())
    refused(lambda: load_model(bad), bad, match)


# ---------------------------------------------------------------------------------------------
# HDF5: data outside the file, sizes that lie
# ---------------------------------------------------------------------------------------------

def _weights_h5(model, tmp_path):
    h5py = require("h5py", "h5")
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    return h5py, path


def test_hdf5_virtual_dataset_pointing_outside_is_refused(model, tmp_path):
    h5py, path = _weights_h5(model, tmp_path)
    with h5py.File(path, "r+") as f:
        group = f["layers/dense/vars"]
        del group["1"]
        layout = h5py.VirtualLayout(shape=(2,), dtype="f4")
        layout[:] = h5py.VirtualSource("/etc/passwd", "data", shape=(2,))
        group.create_virtual_dataset("1", layout, fillvalue=0)
    refused(lambda: _model().load_weights(path), path, "external/virtual dataset")


def test_hdf5_external_storage_pointing_outside_is_refused(model, tmp_path):
    h5py, path = _weights_h5(model, tmp_path)
    with h5py.File(path, "r+") as f:
        group = f["layers/dense/vars"]
        del group["1"]
        group.create_dataset("1", shape=(2,), dtype="f4", external=[("/etc/hostname", 0, 8)])
    refused(lambda: _model().load_weights(path), path, "external/virtual dataset")


def test_hdf5_external_and_soft_links_are_refused(model, tmp_path):
    h5py, path = _weights_h5(model, tmp_path)
    with h5py.File(path, "r+") as f:
        f["layers/dense/vars/1"].attrs["x"] = 1
        group = f["layers/dense"]
        del group["vars"]
        group["vars"] = h5py.ExternalLink("/etc/passwd", "/")
    refused(lambda: _model().load_weights(path), path, "ExternalLink")
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars"]
        f["layers/dense/vars"] = h5py.SoftLink("/layers/lstm/cell/vars")
    refused(lambda: _model().load_weights(path), path, "SoftLink")


def test_hdf5_dataset_declaring_far_more_than_it_stores_is_refused(model, tmp_path):
    h5py, path = _weights_h5(model, tmp_path)
    with h5py.File(path, "r+") as f:
        f.create_dataset("layers/dense/vars_big", shape=(2 ** 28,), dtype="f4", chunks=(1024,), fillvalue=1.0)
        group = f["layers/dense/vars"]
        del group["1"]
        group["1"] = f["layers/dense/vars_big"]
        del f["layers/dense/vars_big"]
    refused(lambda: _model().load_weights(path), path, "declares .* bytes but stores")


# ---------------------------------------------------------------------------------------------
# truncated and bit-flipped files of every format
# ---------------------------------------------------------------------------------------------

def _torch_file(path):
    torch = require("torch", "compare")
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 4, batch_first=True).state_dict(), path)


def _dataset_file(path):
    xs = np.empty(4, dtype=object)
    xs[:] = [[1, 5, 7], [2, 3], [9, 9, 9, 9], [4]]
    with open(path, "wb") as f:
        np.savez(f, x=xs, y=np.array([0, 1, 2, 1]))


def _load_dataset(path, monkeypatch):
    from fusedlstm.datasets import reuters
    monkeypatch.setattr(reuters, "get_file", lambda *a, **k: os.fspath(path))
    return reuters.load_data()


FORMATS = {
    # name: (suffix, write(model, path), load(path, monkeypatch), extra needed)
    "model": (".fusedlstm", lambda m, p: m.save(p), lambda p, mp: load_model(p), None),
    "weights": (".weights.npz", lambda m, p: m.save_weights(p), lambda p, mp: _model().load_weights(p), None),
    "checkpoint": (".weights.npz", lambda m, p: resume.save_checkpoint(m, p, True),
                   lambda p, mp: resume.restore_checkpoint(_model(), p), None),
    "keras": (".keras", lambda m, p: m.save(p), lambda p, mp: load_model(p), "h5py"),
    "keras_weights": (".weights.h5", lambda m, p: m.save_weights(p), lambda p, mp: _model().load_weights(p), "h5py"),
    "legacy_h5": (".h5", lambda m, p: m.save(p), lambda p, mp: load_model(p), "h5py"),
    "torch": (".pt", lambda m, p: _torch_file(p), lambda p, mp: _torch_io().load_torch_state_dict(
        [Sequential([Input((2, 3)), LSTM(4)]).layers[0]], p), "torch"),
    "dataset": (".npz", lambda m, p: _dataset_file(p), _load_dataset, None),
}


def _torch_io():
    from fusedlstm.io import torch_io
    return torch_io


def _damaged(blob, rng):
    """Truncations at the edges and the middle, and single-bit flips spread over the file."""
    n = len(blob)
    out = [("empty", b""), ("one byte", blob[:1]), ("half", blob[: n // 2]), ("last byte cut", blob[:-1]),
           ("tail only", blob[n // 2:])]
    for k in range(24):
        pos = int(rng.integers(0, n))
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        out.append((f"bit flipped at {pos}", bytes(flipped)))
    return out


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_truncated_and_bit_flipped_files_are_refused_or_load(model, tmp_path, fmt, monkeypatch):
    suffix, write, load, extra = FORMATS[fmt]
    if extra:
        require(extra, "compare" if extra == "torch" else "h5")
    good = tmp_path / ("good" + suffix)
    write(model, good)
    blob = good.read_bytes()
    box = tmp_path / "box"
    box.mkdir()
    rng = np.random.default_rng(26)
    outcomes = {"refused": 0, "loaded": 0}
    for what, data in _damaged(blob, rng):
        path = box / ("f" + suffix)
        path.write_bytes(data)
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NaN weights from a flipped exponent warn
                load(path, monkeypatch)
            outcomes["loaded"] += 1
        except ValueError as exc:
            assert str(exc), f"{fmt}, {what}: empty message"
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 -- any other exception is the failure under test
            pytest.fail(f"{fmt}, {what}: {type(exc).__name__}: {exc}")
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 128 * MiB, f"{fmt}, {what}: {peak / MiB:.0f} MiB"
        assert _tree(box) == {"f" + suffix}, f"{fmt}, {what}: wrote {_tree(box)}"
    # Every truncation is refused; so are most flips (a flip in zip metadata our checksum
    # does not cover, or in HDF5/torch data bytes, can leave a loadable file).
    assert outcomes["refused"] >= 5, outcomes
    if fmt in ("model", "weights", "checkpoint"):
        assert outcomes["refused"] >= 20, outcomes  # sha256 covers every array byte


# ---------------------------------------------------------------------------------------------
# code in pickles (torch, datasets)
# ---------------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_torch_file_naming_code_is_refused_and_never_runs(tmp_path):
    torch = require("torch", "compare")
    marker = tmp_path / "pwned"
    path = tmp_path / "box" / "evil.pt"
    path.parent.mkdir()
    state = torch.nn.LSTM(3, 4).state_dict()
    state["weight_ih_l0"] = _Evil(marker)
    torch.save(state, path)
    lstm = Sequential([Input((2, 3)), LSTM(4)]).layers[0]
    refused(lambda: _torch_io().load_torch_state_dict([lstm], path), path, "refused by torch.load")
    assert not marker.exists()
    torch.save(torch.nn.LSTM(3, 4), path)  # a pickled module, not a state_dict
    refused(lambda: _torch_io().load_torch_state_dict([lstm], path), path, "refused by torch.load")


def test_a_dataset_pickle_naming_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    xs = np.empty(2, dtype=object)
    xs[:] = [_Evil(marker), [1, 2]]
    path = tmp_path / "box" / "evil.npz"
    path.parent.mkdir()
    with open(path, "wb") as f:
        np.savez(f, x=xs, y=np.array([0, 1]))
    refused(lambda: _load_dataset(path, monkeypatch), path, "Refusing to deserialize `posix.system`|refused")
    assert not marker.exists()


@pytest.mark.parametrize("x, match", [(["a", "b"], "expected word ids"), ([[1, 2], [-3]], "expected word ids"),
                                      ([[1, 2], [2 ** 40]], "expected word ids"), ([[1.5], [2]], "word ids")])
def test_dataset_sequences_of_the_wrong_kind_are_refused(tmp_path, monkeypatch, x, match):
    xs = np.empty(len(x), dtype=object)
    xs[:] = x
    path = tmp_path / "box" / "bad.npz"
    path.parent.mkdir()
    with open(path, "wb") as f:
        np.savez(f, x=xs, y=np.arange(len(x)))
    refused(lambda: _load_dataset(path, monkeypatch), path, match)


def test_torch_state_dict_round_trip(tmp_path, rng):
    torch = require("torch", "compare")
    from fusedlstm.io import torch_io
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    path = tmp_path / "lstm.pt"
    torch.save(lstm.state_dict(), path)
    from fusedlstm.layers import Bidirectional
    a = [Bidirectional(LSTM(4, return_sequences=True)) for _ in range(2)]
    b = [Bidirectional(LSTM(4, return_sequences=True)) for _ in range(2)]
    ma, mb = Sequential([Input((5, 3))] + a), Sequential([Input((5, 3))] + b)
    torch_io.load_torch_state_dict(a, path)
    torch_io.load_torch_lstm(b, lstm)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_array_equal(ma.predict(x, verbose=0), mb.predict(x, verbose=0))
    with torch.no_grad():
        ref = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ma.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-5)
    # The same file with a key renamed names the missing entry.
    state = lstm.state_dict()
    state["weight_hh_l1_reverse_x"] = state.pop("weight_hh_l1_reverse")
    torch.save(state, path)
    with pytest.raises(ValueError, match="weight_hh_l1_reverse_x"):
        torch_io.load_torch_state_dict(a, path)


def _central_version_raised(src, dst, version=0x6B):
    """A copy of a zip whose first central-directory entry needs zip version 10.7 to
    extract (a one-byte flip zipfile meets as NotImplementedError, not BadZipFile)."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"PK\x01\x02")  # central directory file header; "version needed" at +6
    assert at >= 0
    data[at + 6] = version
    with open(dst, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("kind", ["model", "weights", "checkpoint", "keras", "dataset", "torch"])
def test_a_zip_directory_asking_an_unknown_version_is_refused_by_every_loader(model, tmp_path, kind):
    # Found by test_file_integrity's bit flips: "zip file version 10.9" escaped as NotImplementedError.
    box = tmp_path / "box"
    box.mkdir()
    good = tmp_path / f"good.{kind}"
    if kind == "model":
        model.save(good.with_suffix(".fusedlstm"))
        good = good.with_suffix(".fusedlstm")
        load = load_model
    elif kind in ("weights", "checkpoint"):
        good = tmp_path / "good.weights.npz"
        model.save_weights(good)
        load = _model().load_weights if kind == "weights" else (lambda p: resume.restore_checkpoint(_model(), p))
    elif kind == "keras":
        require("h5py", "h5")
        good = good.with_suffix(".keras")
        model.save(good)
        load = load_model
    elif kind == "dataset":
        from fusedlstm.datasets import _sequence_files

        good = good.with_suffix(".npz")
        np.savez(good, x=np.arange(6))
        load = _sequence_files.load_npz
    else:
        torch = require("torch", "compare")
        from fusedlstm.io import torch_state_dict

        good = good.with_suffix(".pt")
        torch.save({"w": torch.zeros(3)}, good)
        load = torch_state_dict.read_torch_state_dict
    bad = box / good.name
    _central_version_raised(good, bad)
    refused(lambda: load(bad), bad, r"(?i)(damaged|unreadable|not a readable|version)")
