"""atheris fuzzer of every file loader: each file a user may load from elsewhere.

    python fuzz/fuzz_loaders.py --loader NAME [libFuzzer options] [corpus_dir]
    python fuzz/fuzz_loaders.py --loader NAME crash-<sha1>      # replay one input
    python fuzz/fuzz_loaders.py --list                           # the loaders
    python fuzz/fuzz_loaders.py --loader NAME --stats 500        # outcome counts of random inputs

Loaders (LOADERS below): `model` (.fusedlstm, load_model), `weights` (.weights.npz,
load_weights), `checkpoint` (ModelCheckpoint files, restore_checkpoint), `keras`
(.keras: load_model and load_weights), `keras_weights` (.weights.h5), `legacy_h5`
(.h5: load_model and load_weights), `torch` (torch.save'd state_dict,
io.torch_io.load_torch_state_dict), `dataset` (imdb/reuters .npz through
load_data), `archive` (tar and zip through download.extract_archive).

The corpus starts from valid files the library writes (written at start-up into the
corpus folder when it is empty). An input's first byte picks how it becomes a file:

* raw (even): the rest of the input is the file, as libFuzzer mutated it
  (truncations, bit flips, spliced files: the container checks);
* built (odd): the rest drives edits of a valid file's parts, and the file is
  written again with valid checksums and containers, so the edit reaches the
  checks behind them: JSON configs (values replaced by huge, negative, NaN, wrong
  types, unknown classes such as Lambda, deep nesting), arrays (dtype, shape,
  NaN, missing, extra, renamed), zip members (duplicates, deflated bombs, traversal
  names, .npy headers that lie), HDF5 objects (external and soft links, hard-link
  cycles, external-storage and virtual datasets, datasets that declare far more
  than they store, odd dtypes and attributes), state_dict entries, dataset
  sequences, archive members (absolute and `..` names, links out, devices).

An input passes when the loader returns or raises one of the library's documented
errors (ALLOWED: ValueError, and NotImplementedError for a class fusedlstm lacks).
A finding is any other exception (atheris reports it with the input), a crash, a
run over `-timeout` seconds (CI: 2), the process's peak RSS growing by more than
RSS_BUDGET_MIB over its size after start-up (checked after every input), or a
file written outside the loader's target (archive extraction).

.ci/fuzz runs every loader for a bounded time; see fuzz/README.md.
"""

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import resource
import shutil
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib

import atheris
import numpy as np

with atheris.instrument_imports(include=["fusedlstm"]):
    import fusedlstm  # noqa: F401  (registers the Keras formats)
    from fusedlstm import download, registry, resume, saving, untrusted
    from fusedlstm.datasets import imdb, reuters
    from fusedlstm.io import torch_io
    from fusedlstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, RepeatVector, TimeDistributed
    from fusedlstm.models import Model, Sequential, load_model

ALLOWED = (ValueError, NotImplementedError)
RSS_BUDGET_MIB = 512


# ---------------------------------------------------------------------------
# Input decoding
# ---------------------------------------------------------------------------

class Gen:
    """Choices drawn from one input's bytes (replaying the input replays them)."""

    def __init__(self, data: bytes):
        self.f = atheris.FuzzedDataProvider(data)

    def int(self, lo, hi):
        return self.f.ConsumeIntInRange(lo, hi)

    def bool(self):
        return self.f.ConsumeBool()

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]

    def bytes(self, n):
        return self.f.ConsumeBytes(n)

    def text(self, n):
        return self.f.ConsumeUnicodeNoSurrogates(n)

    def float(self):
        return self.f.ConsumeRegularFloat() if self.bool() else self.pick(SPECIAL_FLOATS)

    def left(self):
        return self.f.remaining_bytes()


SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e38, 3.5e38, 1e308, math.nan, math.inf, -math.inf]
NEST = "__fuzz_nest__"
INTERESTING = [None, True, False, 0, 1, -1, 2, 3, 7, 2 ** 31, 2 ** 63, 10 ** 12, -10 ** 12, 10 ** 40, 1.5, -0.0,
               1e308, math.nan, math.inf, -math.inf, "", "x", "tanh", "float64", "int8", "bfloat16", "mixed_float16",
               "Lambda", "../../etc/passwd", "x" * 5000, [], {}, [None], [1, 2], [[0, 1, 2]], [None, 10 ** 12],
               [None, -3], [None, 5, 3], {"class_name": "Lambda", "config": {"function": "os.system"}},
               {"class_name": "Dense", "config": {"units": 1}}, {"module": "os", "class_name": "system"}, NEST]
CLASS_NAMES = sorted(set(registry.names("layers")) | {
    "LSTM", "Dense", "Embedding", "Bidirectional", "TimeDistributed", "Dropout", "RepeatVector", "InputLayer",
    "Sequential", "Functional", "Model", "Lambda", "GRU", "SimpleRNN", "Conv1D", "Concatenate", "Add", "Masking",
    "CuDNNLSTM", "CuDNNGRU", "Flatten", "Activation", "TFOpLambda", "__keras_tensor__", "DTypePolicy", "Adam",
    "SGD", "Orthogonal", "GlorotUniform", ""})


def mutate_json(obj, g: Gen, edits: int):
    """`obj` (parsed JSON) after `edits` random edits; returns the new text."""
    for _ in range(edits):
        slots = []

        def walk(x, depth):
            if len(slots) > 4000 or depth > 60:
                return
            if isinstance(x, dict):
                for k in list(x):
                    slots.append((x, k))
                    walk(x[k], depth + 1)
            elif isinstance(x, list):
                for i in range(len(x)):
                    slots.append((x, i))
                    walk(x[i], depth + 1)

        walk(obj, 0)
        if not slots:
            obj = g.pick(INTERESTING)
            continue
        parent, key = g.pick(slots)
        op = g.int(0, 8)
        if op == 0:
            parent[key] = g.pick(INTERESTING)
        elif op == 1:
            parent[key] = g.int(-2 ** 40, 2 ** 40) if g.bool() else g.int(-3, 70000)
        elif op == 2:
            parent[key] = g.pick(CLASS_NAMES)
        elif op == 3:
            del parent[key]
        elif op == 4 and isinstance(parent[key], list) and parent[key]:
            parent[key].append(parent[key][g.int(0, len(parent[key]) - 1)])
        elif op == 5:
            parent[key] = g.float()
        elif op == 6:
            parent[key] = g.text(40)
        elif op == 7 and isinstance(parent, dict):
            parent[g.pick(["units", "input_dim", "output_dim", "batch_shape", "batch_input_shape", "dtype", "name",
                           "layers", "layer", "backward_layer", "merge_mode", "n", "rate", "activation",
                           "recurrent_activation", "return_sequences", "return_state", "stateful", "go_backwards",
                           "seed", "noise_shape", "mask_zero", "config", "class_name", "module", "registered_name",
                           "inbound_nodes", "nodes", "inputs", "outputs", "input_layers", "output_layers",
                           "n_state", "compile_config", "optimizer", "loss", "metrics", "format", "version",
                           "weights", "path", "shape", "position", "rng", "layer_states", "iterations"])] = \
                g.pick(INTERESTING)
        else:
            parent[key] = NEST
    text = json.dumps(obj)
    depth = g.int(1, 5000)
    return text.replace(f'"{NEST}"', "[" * depth + "]" * depth)


# ---------------------------------------------------------------------------
# The valid files everything starts from
# ---------------------------------------------------------------------------

def _seq_model():
    m = Sequential([Input((5, 3)), LSTM(4), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _functional_model():
    i = Input((6,), dtype="int32")
    e = Embedding(11, 4)(i)
    b = Bidirectional(LSTM(3, return_sequences=True))(e)
    d = Dropout(0.1, seed=1)(b)
    o = TimeDistributed(Dense(2, activation="softmax"))(d)
    m = Model(i, o)
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _seq2seq_model():
    m = Sequential([Input((4, 3)), LSTM(5), RepeatVector(2), LSTM(5, return_sequences=True),
                    TimeDistributed(Dense(3, activation="softmax"))])
    m.compile("rmsprop", "sparse_categorical_crossentropy")
    return m


MODELS = [_seq_model, _functional_model, _seq2seq_model]


def _trained(make):
    m = make()
    rng = np.random.default_rng(0)
    shape = m.inputs[0].shape[1:]
    x = rng.integers(0, 11, (8,) + tuple(shape)).astype("int32") if m.inputs[0].dtype == "int32" else \
        rng.normal(size=(8,) + tuple(shape)).astype("float32")
    out = m.outputs[0].shape[1:-1] if hasattr(m, "outputs") else ()
    y = rng.integers(0, 2, (8,) + tuple(out))
    m.train_on_batch(x, y)
    return m


def _file_bytes(write, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f" + suffix)
        write(path)
        with open(path, "rb") as f:
            return f.read()


def _imdb_like(rng, n=6):
    def seqs(k):
        out = np.empty(k, dtype=object)
        out[:] = [list(rng.integers(1, 30, rng.integers(1, 9))) for _ in range(k)]
        return out
    buf = io.BytesIO()
    np.savez(buf, x_train=seqs(n), y_train=rng.integers(0, 2, n), x_test=seqs(n), y_test=rng.integers(0, 2, n))
    return buf.getvalue()


def _reuters_like(rng, n=8):
    xs = np.empty(n, dtype=object)
    xs[:] = [list(rng.integers(1, 30, rng.integers(1, 9))) for _ in range(n)]
    buf = io.BytesIO()
    np.savez(buf, x=xs, y=rng.integers(0, 46, n))
    return buf.getvalue()


def _tar_bytes(members, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _zip_bytes(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def seeds(loader):
    """The valid files of a loader (bytes), written by the library itself."""
    out = []
    if loader in ("model", "weights", "checkpoint", "keras", "keras_weights", "legacy_h5"):
        for make in MODELS:
            m = _trained(make)
            if loader == "model":
                out.append(_file_bytes(lambda p: m.save(p), ".fusedlstm"))
            elif loader == "weights":
                out.append(_file_bytes(lambda p: m.save_weights(p), ".weights.npz"))
            elif loader == "checkpoint":
                out.append(_file_bytes(lambda p: resume.save_checkpoint(m, p, True), ".weights.npz"))
                out.append(_file_bytes(lambda p: resume.save_checkpoint(m, p, False), ".fusedlstm"))
            elif loader == "keras":
                out.append(_file_bytes(lambda p: m.save(p), ".keras"))
            elif loader == "keras_weights":
                out.append(_file_bytes(lambda p: m.save_weights(p), ".weights.h5"))
            else:
                out.append(_file_bytes(lambda p: m.save(p), ".h5"))
                out.append(_file_bytes(lambda p: m.save_weights(p), ".h5"))
    elif loader == "torch":
        import torch  # the torch loader's own dependency
        torch.manual_seed(0)
        for kw in ({}, {"num_layers": 2}, {"bidirectional": True}, {"bias": False}):
            buf = io.BytesIO()
            torch.save(torch.nn.LSTM(3, 4, batch_first=True, **kw).state_dict(), buf)
            out.append(buf.getvalue())
        buf = io.BytesIO()
        torch.save(torch.nn.LSTM(3, 4), buf)  # a pickled module: must be refused
        out.append(buf.getvalue())
    elif loader == "dataset":
        rng = np.random.default_rng(0)
        out += [_imdb_like(rng), _reuters_like(rng)]
    elif loader == "archive":
        info = tarfile.TarInfo("data/a.txt")
        info.size = 5
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        link = tarfile.TarInfo("data/l")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        members = [(d, None), (info, b"hello"), (link, None)]
        out += [_tar_bytes(members), _tar_bytes(members, "w:gz"), _tar_bytes(members, "w:bz2"),
                _zip_bytes([("data/a.txt", b"hello"), ("data/b/c.txt", b"x" * 100)]),
                _zip_bytes([("a.txt", b"hello" * 50)], zipfile.ZIP_DEFLATED)]
    return out


# ---------------------------------------------------------------------------
# Building files from a valid one
# ---------------------------------------------------------------------------

ARRAY_DTYPES = [np.float64, np.float16, np.int32, np.int8, np.uint8, np.bool_, np.complex64, ">f4", "<U3", "V4",
                "M8[s]", object]
BOMB = {}


def bomb_member():
    """A deflated member of 1 GiB of zeros (~1 MB stored), made once."""
    if "data" not in BOMB:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        chunk = bytes(1 << 24)
        parts = [c.compress(chunk) for _ in range(64)]
        BOMB["data"] = b"".join(parts) + c.flush()
        BOMB["size"] = 64 << 24
        BOMB["crc"] = 0
        crc = 0
        for _ in range(64):
            crc = zlib.crc32(chunk, crc)
        BOMB["crc"] = crc
    return BOMB


def _write_raw_member(zf: zipfile.ZipFile, name: str, data: bytes, size: int, crc: int):
    """A member whose deflated bytes are given (a bomb), written without inflating it."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size, info.compress_size, info.CRC = size, len(data), crc
    zf.fp.write(info.FileHeader(zip64=size > 0x7FFFFFFF))
    zf.fp.write(data)
    info.header_offset = zf.start_dir
    zf.start_dir = zf.fp.tell()
    zf.filelist.append(info)
    zf.NameToInfo[name] = info


def _lying_npy(g: Gen) -> bytes:
    shape = g.pick([(10 ** 12,), (2 ** 40, 4), (-1,), (3, 4), (), (0,), (2 ** 62, 2 ** 62)])
    descr = g.pick(["<f4", "<f8", "|O", "<U100000", "|V0", "<f4'}", "x"])
    head = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, g.pick(["False", "True", "1"]), shape)
    head = head.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode("latin1") + g.bytes(g.int(0, 64))


def npz_from_arrays(arrays, g: Gen, reseal: bool) -> bytes:
    """An .npz image of `arrays` (resealed with a valid checksum unless told), with zip-level edits."""
    arrays = dict(arrays)
    if reseal:
        arrays.pop(saving.INTEGRITY_KEY, None)
        arrays[saving.INTEGRITY_KEY] = saving.json_entry(
            {"algorithm": "sha256", "digest": untrusted_digest(arrays), "entries": sorted(arrays)})
    buf = io.BytesIO()
    zop = g.int(0, 7)
    if zop >= 3:
        np.savez(buf, **arrays)
        return buf.getvalue()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if zop == 0 else zipfile.ZIP_STORED) as zf:
        for k, v in arrays.items():
            vb = io.BytesIO()
            np.lib.format.write_array(vb, np.asanyarray(v), allow_pickle=True)
            zf.writestr(k + ".npy", vb.getvalue())
        if zop == 1:
            name = g.pick(sorted(arrays)) + ".npy" if arrays and g.bool() else g.pick(["w0000.npy", "x.npy", "../x.npy"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
                zf.writestr(name, _lying_npy(g))
        elif zop == 2:
            b = bomb_member()
            _write_raw_member(zf, g.pick(["w0000.npy", "__model__.npy", "bomb.npy"]), b["data"], b["size"], b["crc"])
    return buf.getvalue()


def untrusted_digest(arrays):
    from fusedlstm.atomic import digest_arrays  # the same checksum the writer stores
    return digest_arrays(arrays)


def edit_arrays(arrays, g: Gen):
    """Array-level edits of an npz file's entries (JSON entries edited as JSON)."""
    arrays = dict(arrays)
    for _ in range(g.int(1, 3)):
        if not arrays:
            break
        name = g.pick(sorted(arrays))
        op = g.int(0, 8)
        a = arrays[name]
        if name.startswith("__") and name != saving.INTEGRITY_KEY and op <= 2:
            try:
                obj = json.loads(a.tobytes().decode("utf-8"))
            except ValueError:
                obj = None
            arrays[name] = np.frombuffer(mutate_json(obj, g, g.int(1, 4)).encode("utf-8"), np.uint8)
        elif op == 3:
            dt = g.pick(ARRAY_DTYPES)
            try:
                arrays[name] = a.astype(dt) if dt is not object else np.array([a], dtype=object)
            except (ValueError, TypeError):
                arrays[name] = np.zeros(a.shape, dtype=dt)
        elif op == 4:
            arrays[name] = g.pick([a.T, a.reshape(-1), a[None], a.reshape(a.shape + (1,)), a[:0], a[..., :1],
                                   np.zeros((0,), a.dtype), np.float32(1.0)])
        elif op == 5 and a.dtype.kind == "f" and a.size:
            a = a.copy()
            a.reshape(-1)[g.int(0, a.size - 1)] = g.pick([np.nan, np.inf, -np.inf, 3e38])
            arrays[name] = a
        elif op == 6:
            del arrays[name]
        elif op == 7:
            new = g.pick(["w0000", "w9999", "w-001", "opt_0000", "opt_9999", "opt_iterations", "state:x:0",
                          "__model__", "__weights__", "__train_state__", "__integrity__", "x", "w0001"])
            arrays[new] = g.pick([a, np.zeros(3, np.float32), np.array(2 ** 62), np.zeros((2, 0)),
                                  np.frombuffer(b"{}", np.uint8)])
        else:
            arrays[g.pick(["w0000", "w0003", "x", "opt_0001"])] = arrays.pop(name)
    return arrays


def _npz_arrays(blob):
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def build_npz(seed: bytes, g: Gen) -> bytes:
    arrays = edit_arrays(_npz_arrays(seed), g)
    return npz_from_arrays(arrays, g, reseal=g.int(0, 7) != 0)


# --- HDF5 ----------------------------------------------------------------------

def _h5_objects(f):
    names = []
    f.visit(names.append)
    return names


def edit_h5(blob: bytes, g: Gen) -> bytes:
    import h5py  # the Keras loaders' dependency
    buf = io.BytesIO(blob)
    with h5py.File(buf, "r+") as f:
        for _ in range(g.int(1, 3)):
            names = _h5_objects(f)
            target = g.pick(names) if names else ""
            parent = f[os.path.dirname(target)] if os.path.dirname(target) else f
            base = os.path.basename(target) or "x"
            obj = f[target] if target else f
            op = g.int(0, 11)
            with contextlib.suppress(Exception):  # an edit h5py refuses is simply not made
                if op == 0 and target:
                    del parent[base]
                elif op == 1 and target and isinstance(obj, h5py.Dataset):
                    shape, dtype = obj.shape, obj.dtype
                    del parent[base]
                    kind = g.int(0, 7)
                    if kind == 0:
                        parent.create_dataset(base, data=np.zeros(shape, g.pick(["f2", "f8", "i4", "u1", "?"])))
                    elif kind == 1:
                        parent.create_dataset(base, data=np.zeros(g.pick([(), (0,), (2, 3, 4), (1,)]), "f4"))
                    elif kind == 2:
                        parent.create_dataset(base, data=np.array([b"abc", b"de"]))
                    elif kind == 3:
                        parent.create_dataset(base, data=np.zeros(3, [("a", "f4"), ("b", "i4")]))
                    elif kind == 4:
                        parent.create_dataset(base, data=np.array(["x", "yz"], dtype=h5py.string_dtype()))
                    elif kind == 5:  # declares 4 GiB, stores one chunk
                        d = parent.create_dataset(base, shape=(2 ** 30,), dtype="f4", chunks=(1024,),
                                                  fillvalue=1.0)
                        d[:4] = 2.0
                    elif kind == 6:  # declares 64 MiB of fill value, stores nothing
                        parent.create_dataset(base, shape=(4096, 4096), dtype="f4", chunks=(64, 64))
                    else:
                        parent.create_dataset(base, data=np.full(shape or (1,), g.pick([np.nan, np.inf]), dtype))
                elif op == 2:
                    parent[g.pick([base, "ext", "layers", "vars"])] = h5py.ExternalLink(
                        g.pick(["/etc/passwd", "other.h5", "/proc/self/environ"]), g.pick(["/", "/x"]))
                elif op == 3:
                    parent[g.pick([base + "_s", "vars", "0"])] = h5py.SoftLink(g.pick(["/", "/layers", target or "/"]))
                elif op == 4 and isinstance(obj, h5py.Group):
                    obj[g.pick(["loop", "vars", "0"])] = obj  # a hard-link cycle
                elif op == 5:
                    name = g.pick([base + "_e", "0", "1"])
                    if name in parent:
                        del parent[name]
                    parent.create_dataset(name, shape=(16,), dtype="f4",
                                          external=[(g.pick(["/etc/hostname", "/etc/passwd", "missing.bin"]), 0, 64)])
                elif op == 6:
                    name = g.pick([base + "_v", "0", "1"])
                    if name in parent:
                        del parent[name]
                    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
                    layout[:] = h5py.VirtualSource(g.pick(["/etc/passwd", "other.h5"]), "data", shape=(4,))
                    parent.create_virtual_dataset(name, layout, fillvalue=0)
                elif op in (7, 8):
                    holder = g.pick([f, obj, parent])
                    attr = g.pick(["layer_names", "weight_names", "model_config", "keras_version", "training_config",
                                   "backend", "name", "layer_names0", "weight_names0"])
                    old = holder.attrs.get(attr)
                    if attr in ("model_config", "training_config") and old is not None and g.bool():
                        text = old.decode() if isinstance(old, bytes) else str(old)
                        try:
                            holder.attrs[attr] = mutate_json(json.loads(text), g, g.int(1, 4))
                        except ValueError:
                            holder.attrs[attr] = text[: g.int(0, len(text))]
                    else:
                        holder.attrs[attr] = g.pick([
                            np.array([b"nope", b"lstm"]), np.array([], dtype="S1"), b"2.1.6", "0.9", 12,
                            np.arange(3), np.array([b"model_weights/../x"]), g.text(20), b"\xff\xfe",
                            np.array([b"x" * 5000]), np.array([[b"a", b"b"]]), np.float64(np.nan)])
                elif op == 9 and target:
                    parent.move(base, g.pick([base + "x", "0", "vars", "layers"]))
                elif op == 10 and isinstance(obj, h5py.Dataset) and obj.size:
                    data = obj[()]
                    if data.dtype.kind == "f":
                        data.reshape(-1)[0] = g.pick([np.nan, np.inf])
                        obj[...] = data
                else:
                    parent.create_group(g.pick(["extra", "layers/zz", "vars/9", "optimizer/vars"]))
    return buf.getvalue()


def build_keras(seed: bytes, g: Gen) -> bytes:
    with zipfile.ZipFile(io.BytesIO(seed)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for _ in range(g.int(1, 3)):
        op = g.int(0, 7)
        if op <= 2 and "config.json" in members:
            members["config.json"] = mutate_json(json.loads(members["config.json"]), g, g.int(1, 4)).encode()
        elif op == 3 and "model.weights.h5" in members:
            members["model.weights.h5"] = edit_h5(members["model.weights.h5"], g)
        elif op == 4 and "metadata.json" in members:
            members["metadata.json"] = mutate_json(json.loads(members["metadata.json"]), g, 1).encode()
        elif op == 5 and members:
            del members[g.pick(sorted(members))]
        elif op == 6:
            members[g.pick(["../evil.txt", "/abs.txt", "assets/x", "model.weights.npz"])] = b"x"
        else:
            members[g.pick(sorted(members))] = g.bytes(g.int(0, 200))
    buf = io.BytesIO()
    zop = g.int(0, 5)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if zop == 0 else zipfile.ZIP_STORED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
        if zop == 1 and members:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                zf.writestr(g.pick(sorted(members)), g.bytes(50))
        elif zop == 2:
            b = bomb_member()
            _write_raw_member(zf, g.pick(["config.json", "model.weights.h5", "metadata.json"]), b["data"],
                              b["size"], b["crc"])
    return buf.getvalue()


# --- torch, datasets, archives -------------------------------------------------

def build_torch(seed: bytes, g: Gen) -> bytes:
    import torch  # the torch loader's own dependency
    state = torch.load(io.BytesIO(seed), weights_only=False)  # our own seed file
    if not isinstance(state, dict):
        state = {"weight_ih_l0": torch.zeros(16, 3)}
    for _ in range(g.int(1, 3)):
        keys = sorted(state)
        key = g.pick(keys) if keys else "weight_ih_l0"
        op = g.int(0, 8)
        if op == 0 and keys:
            del state[key]
        elif op == 1:
            state[g.pick(["weight_ih_l5", "weight_hr_l0", "bias_ih_l0_reverse", "weight_hh_l0", "x.weight",
                          "weight_ih_l99999999999", "weight_ih_l-1", ""])] = torch.zeros(g.pick([(16, 3), (4,), ()]))
        elif op == 2:
            state[key] = torch.zeros(g.pick([(0, 3), (16, 0), (1,), (16, 4, 1), (2 ** 20,), (), (4, 16)]))
        elif op == 3:
            state[key] = torch.zeros(4, dtype=g.pick([torch.int64, torch.bool, torch.complex64, torch.bfloat16,
                                                      torch.float16, torch.uint8]))
        elif op == 4:
            state[key] = g.pick([1, "x", [torch.zeros(2)], {"a": torch.zeros(1)}, None, 2.5])
        elif op == 5:
            state[key] = torch.zeros(16, 3).to_sparse()
        elif op == 6 and key in state and isinstance(state[key], torch.Tensor) and state[key].numel():
            state[key] = state[key].clone()
            state[key].view(-1)[0] = g.pick([float("nan"), float("inf")])
        elif op == 7:
            state = g.pick([[state], (1, 2), torch.zeros(3), "state", {1: torch.zeros(2)}])
            break
        else:
            state[key] = torch.zeros(16, 3)[:, ::2]  # a strided view
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def build_dataset(g: Gen) -> bytes:
    def element():
        k = g.int(0, 9)
        if k < 6:
            return g.int(-3, 60)
        return g.pick([2 ** 62, -2 ** 63, 1.5, "w", None, [1, 2], True, np.int8(3), 10 ** 30])

    def seqs():
        k = g.int(0, 6)
        form = g.int(0, 4)
        if form == 0:
            return np.zeros((k, 3), g.pick(["int32", "float32", "int64", "U2"]))
        out = np.empty(k, dtype=object)
        out[:] = [[element() for _ in range(g.int(0, 5))] if g.int(0, 9) else g.pick([5, "s", None, ()])
                  for _ in range(k)]
        return out

    def labels():
        return g.pick([np.arange(g.int(0, 6)), np.array([0.5, 1.5]), np.array(["a"]), np.zeros((2, 2)),
                       np.array([2 ** 40, -1])])

    buf = io.BytesIO()
    if g.bool():
        np.savez(buf, **{k: (seqs() if k.startswith("x") else labels())
                         for k in ("x_train", "y_train", "x_test", "y_test") if g.int(0, 9)})
    else:
        np.savez(buf, **{k: (seqs() if k == "x" else labels()) for k in ("x", "y") if g.int(0, 9)})
    return buf.getvalue()


ARCHIVE_NAMES = ["ok.txt", "dir/", "dir/a.txt", "../x.txt", "/abs.txt", "a/../../b.txt", "a/./b.txt", "", ".",
                 "..", "C:\\x.txt", "a\\..\\..\\b.txt", "dir/../ok2.txt", "x" * 300, "dir/sub/f", "link", "dir/link"]
LINK_TARGETS = ["ok.txt", "../outside", "/etc/passwd", "dir", "..", "dir/../../x", "link", "."]


def build_archive(g: Gen) -> bytes:
    n = g.int(0, 5)
    if g.bool():
        members = []
        for _ in range(n):
            info = tarfile.TarInfo(g.pick(ARCHIVE_NAMES))
            kind = g.int(0, 9)
            data = None
            if kind <= 4:
                data = g.bytes(g.int(0, 40))
                info.size = len(data)
            elif kind == 5:
                info.type = tarfile.DIRTYPE
            elif kind == 6:
                info.type, info.linkname = tarfile.SYMTYPE, g.pick(LINK_TARGETS)
            elif kind == 7:
                info.type, info.linkname = tarfile.LNKTYPE, g.pick(LINK_TARGETS)
            elif kind == 8:
                info.type = g.pick([tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
            else:
                info.type = tarfile.REGTYPE
                info.size = g.pick([10 ** 9, 2 ** 40, 64 << 30])  # declared, never written
            info.mode = g.pick([0o644, 0o4755, 0o777, 0o000])
            members.append((info, data))
        blob = _tar_bytes([(i, d) for i, d in members if i.size < 1 << 30])
        big = [i for i, _ in members if i.size >= 1 << 30]
        if big:  # a header that declares more than the archive holds
            hdr = big[0].tobuf(tarfile.GNU_FORMAT)
            blob = blob[:-1024] + hdr + bytes(512) + bytes(1024)
        mode = g.pick(["", "gz", "bz2", "xz"])
        if mode == "gz":
            blob = __import__("gzip").compress(blob)
        elif mode == "bz2":
            blob = __import__("bz2").compress(blob)
        elif mode == "xz":
            blob = __import__("lzma").compress(blob)
        return blob
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", g.pick([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as zf:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                name = g.pick(ARCHIVE_NAMES)
                if g.int(0, 5) == 0:
                    info = zipfile.ZipInfo(name)
                    info.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP marks it
                    zf.writestr(info, g.pick(LINK_TARGETS))
                else:
                    zf.writestr(name, g.bytes(g.int(0, 40)))
        if g.int(0, 3) == 0:
            b = bomb_member()
            _write_raw_member(zf, "bomb.bin", b["data"], b["size"], b["crc"])
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Loaders: file bytes -> one call into the library
# ---------------------------------------------------------------------------

class Loader:
    suffix = ""
    build = None  # (seed bytes or None, Gen) -> file bytes

    def __init__(self, work):
        self.work = work
        self.seed_files = []

    def file(self, data: bytes) -> bytes:
        if not data or data[0] % 2 == 0 or self.build is None:
            return data[1:]
        g = Gen(data[1:])
        seed = g.pick(self.seed_files) if self.seed_files else None
        return type(self).build(seed, g)

    def load(self, path):
        raise NotImplementedError


def _fresh_models():
    return [make() for make in MODELS]


class ModelFile(Loader):
    suffix = ".fusedlstm"
    build = staticmethod(build_npz)

    def load(self, path):
        load_model(path)


class WeightsFile(Loader):
    suffix = ".weights.npz"
    build = staticmethod(build_npz)

    def load(self, path):
        for m in _fresh_models():
            with contextlib.suppress(*ALLOWED):
                m.load_weights(path)


class CheckpointFile(Loader):
    suffix = ".weights.npz"
    build = staticmethod(build_npz)

    def load(self, path):
        for m in _fresh_models():
            with contextlib.suppress(*ALLOWED):
                resume.restore_checkpoint(m, path)
        whole = path[: -len(self.suffix)] + ".fusedlstm"  # the same bytes as a whole-model checkpoint
        os.replace(path, whole)
        with contextlib.suppress(*ALLOWED):
            load_model(whole)


class KerasArchive(Loader):
    suffix = ".keras"
    build = staticmethod(build_keras)

    def load(self, path):
        with contextlib.suppress(*ALLOWED):
            load_model(path)
        for m in _fresh_models():
            with contextlib.suppress(*ALLOWED):
                m.load_weights(path)


class KerasWeights(Loader):
    suffix = ".weights.h5"
    build = staticmethod(lambda seed, g: edit_h5(seed, g))

    def load(self, path):
        for m in _fresh_models():
            with contextlib.suppress(*ALLOWED):
                m.load_weights(path)


class LegacyH5(KerasWeights):
    suffix = ".h5"

    def load(self, path):
        with contextlib.suppress(*ALLOWED):
            load_model(path)
        super().load(path)


class TorchFile(Loader):
    suffix = ".pt"
    build = staticmethod(build_torch)

    def load(self, path):
        for kw in ({}, {"num_layers": 2}, {"bidirectional": True}):
            layers = []
            for _ in range(kw.get("num_layers", 1)):
                cell = LSTM(4, return_sequences=True)
                layers.append(Bidirectional(cell) if kw.get("bidirectional") else cell)
            Sequential([Input((2, 3))] + layers)
            with contextlib.suppress(*ALLOWED):
                torch_io.load_torch_state_dict(layers, path)


class DatasetFile(Loader):
    suffix = ".npz"
    build = staticmethod(lambda seed, g: build_dataset(g))

    def load(self, path):
        for module, extra in ((imdb, {}), (reuters, {"test_split": 0.5})):
            module.get_file = lambda *a, **k: path  # the file as if fetched and its hash checked
            with contextlib.suppress(*ALLOWED):
                module.load_data(num_words=7, skip_top=1, maxlen=6, **extra)
            with contextlib.suppress(*ALLOWED):
                module.load_data()


class ArchiveFile(Loader):
    suffix = ".archive"
    build = staticmethod(lambda seed, g: build_archive(g))

    def load(self, path):
        box = os.path.dirname(path)
        dest = os.path.join(box, "out")
        before = sorted(os.listdir(box))
        outer = sorted(os.listdir(os.path.dirname(box)))
        try:
            download.extract_archive(path, dest)
            ok = True
        except ALLOWED:
            ok = False
        finally:
            after = sorted(os.listdir(box))
            if sorted(os.listdir(os.path.dirname(box))) != outer:
                raise AssertionError(f"extraction wrote outside its folder: {os.listdir(os.path.dirname(box))}")
            extra = set(after) - set(before) - {"out"}
            if extra:
                raise AssertionError(f"extraction left {sorted(extra)} beside its target")
        if not ok and os.path.lexists(dest):
            raise AssertionError("a refused archive left a partial extraction folder")
        if ok and os.path.isdir(dest):
            real = os.path.realpath(dest)
            for root, dirs, files in os.walk(dest):
                for n in dirs + files:
                    p = os.path.join(root, n)
                    if os.path.islink(p) and os.path.commonpath([os.path.realpath(p), real]) != real:
                        raise AssertionError(f"extracted link {p} points outside: {os.readlink(p)}")
            shutil.rmtree(dest)


LOADERS = {"model": ModelFile, "weights": WeightsFile, "checkpoint": CheckpointFile, "keras": KerasArchive,
           "keras_weights": KerasWeights, "legacy_h5": LegacyH5, "torch": TorchFile, "dataset": DatasetFile,
           "archive": ArchiveFile}
SEED_KIND = {"model": "model", "weights": "weights", "checkpoint": "checkpoint", "keras": "keras",
             "keras_weights": "keras_weights", "legacy_h5": "legacy_h5", "torch": "torch", "dataset": "dataset",
             "archive": "archive"}


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def _max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Harness:
    """One loader, or all of them (name "all": an input's first byte picks the loader)."""

    def __init__(self, name, root, stats_file=None):
        # libFuzzer ends the process without unwinding: the work folder is wiped at the next start instead.
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        self.box = os.path.join(self.root, "box")
        os.makedirs(self.box)
        self.names = list(LOADERS) if name == "all" else [name]
        self.loaders = []
        for n in self.names:
            loader = LOADERS[n](self.box)
            loader.seed_files = seeds(SEED_KIND[n])
            self.loaders.append(loader)
        self.loader = self.loaders[0]
        self.all = name == "all"
        bomb_member()  # made once before fuzzing: compressing 1 GiB takes seconds, which is not the loader's time
        self.rss0 = None
        self.counts = {n: 0 for n in self.names}
        self.stats_file = stats_file
        self.last_write = 0.0
        self.artifact_prefix = None

    def pick(self, data: bytes):
        """(loader name, loader, the loader's input)."""
        if not self.all:
            return self.names[0], self.loader, data
        if not data:
            return self.names[0], self.loaders[0], data
        k = data[0] % len(self.loaders)
        return self.names[k], self.loaders[k], data[1:]

    def one(self, data: bytes):
        try:
            return self._one(data)
        except Exception:
            # Kept before libFuzzer reports it: its own crash dump can lose the race with its timeout alarm.
            if self.artifact_prefix is not None:
                with open(f"{self.artifact_prefix}finding-{hashlib.sha1(data).hexdigest()}", "wb") as f:
                    f.write(data)
            raise

    def _one(self, data: bytes):
        name, loader, data = self.pick(data)
        self.counts[name] += 1
        if self.stats_file and time.monotonic() - self.last_write > 1.0:
            self.write_stats()
        try:
            blob = loader.file(data)
        except Exception:  # noqa: BLE001 -- a build the writers refuse is not the loader's input
            return "unbuildable"
        path = os.path.join(self.box, "f" + loader.suffix)
        with open(path, "wb") as f:
            f.write(blob)
        try:
            loader.load(path)
            outcome = "ok"
        except ALLOWED as exc:
            outcome = type(exc).__name__
        finally:
            for n in os.listdir(self.box):
                p = os.path.join(self.box, n)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
        if self.rss0 is None:
            self.rss0 = _max_rss_mib()
        elif _max_rss_mib() > self.rss0 + RSS_BUDGET_MIB:
            raise MemoryError(f"peak RSS {_max_rss_mib():.0f} MiB, {RSS_BUDGET_MIB} MiB over the "
                              f"{self.rss0:.0f} MiB after the first input")
        return outcome

    def write_stats(self):
        """Executions per loader so far (libFuzzer exits without running Python's atexit)."""
        self.last_write = time.monotonic()
        tmp = self.stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f)
        os.replace(tmp, self.stats_file)


def write_corpus(names, folder):
    """Seed the corpus (when empty) with the loaders' valid files and random build recipes."""
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        head = bytes([k]) if len(names) > 1 else b""
        for i, blob in enumerate(seeds(SEED_KIND[name])):
            with open(os.path.join(folder, f"seed-{name}-raw-{i}"), "wb") as f:
                f.write(head + b"\x00" + blob)
        for i in range(16):
            with open(os.path.join(folder, f"seed-{name}-built-{i}"), "wb") as f:
                f.write(head + b"\x01" + rng.bytes(int(rng.integers(8, 200))))


def main():
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--loader")
    p.add_argument("--list", action="store_true")
    p.add_argument("--stats", type=int)
    p.add_argument("--work", default=None, help="scratch folder (default: a fixed one under the temp folder)")
    p.add_argument("--stats-file", default=None, help="write the executions per loader here (JSON, every second)")
    args, rest = p.parse_known_args()
    if args.list:
        print("\n".join(LOADERS))
        return
    if args.loader not in LOADERS and args.loader != "all":
        sys.exit(f"--loader must be all or one of {', '.join(LOADERS)}; got {args.loader!r}")
    fusedlstm.set_num_threads(1)
    h = Harness(args.loader, args.work or os.path.join(tempfile.gettempdir(), f"fusedlstm-fuzz-{args.loader}"),
                args.stats_file)
    try:
        if args.stats:
            rng = np.random.default_rng(1)
            counts = {}
            findings = {}
            for i in range(args.stats):
                k = i // 2 % len(h.loaders)
                head = bytes([k]) if h.all else b""
                if i % 2:
                    data = head + b"\x01" + rng.bytes(int(rng.integers(1, 300)))
                else:  # a seed file with a few bytes flipped
                    files = h.loaders[k].seed_files
                    blob = bytearray(files[i // 2 % len(files)])
                    for _ in range(int(rng.integers(1, 4))):
                        blob[int(rng.integers(0, len(blob)))] ^= 1 << int(rng.integers(0, 8))
                    data = head + b"\x00" + bytes(blob)
                try:
                    out = h.one(data)
                except Exception as exc:  # noqa: BLE001 -- a finding: counted by where it was raised
                    tb = exc.__traceback__
                    where = "?"
                    while tb is not None:
                        if "fusedlstm" in tb.tb_frame.f_code.co_filename:
                            where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
                        tb = tb.tb_next
                    out = f"FINDING {type(exc).__name__} at {where}"
                    findings.setdefault(out, (data, str(exc)[:200]))
                counts[out] = counts.get(out, 0) + 1
            print(args.loader, json.dumps(counts, indent=1))
            for out, (data, msg) in findings.items():
                print(out, "|", msg)
            return
        h.artifact_prefix = next((a.split("=", 1)[1] for a in rest if a.startswith("-artifact_prefix=")), "./")
        corpus = [a for a in rest if not a.startswith("-") and not os.path.isfile(a)]  # folders (made if missing)
        for folder in corpus[:1]:
            write_corpus(h.names, folder)
        atheris.Setup([sys.argv[0]] + rest, h.one)
        atheris.Fuzz()
    finally:
        shutil.rmtree(h.root, ignore_errors=True)


if __name__ == "__main__":
    main()
