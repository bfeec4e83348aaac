"""Saving and loading: fusedlstm's own NumPy-only file format, chosen by file suffix.

Formats by suffix:

* `.fusedlstm` — a whole model: an uncompressed .npz (zip of .npy arrays) holding
  `__model__` (UTF-8 JSON: architecture, compile settings, format version as a
  uint8 array), the weights `w0000, w0001, ...` in `model.weights` order, and the
  optimizer state (`opt_iterations`, `opt_0000, ...`) when the model was compiled.
* `.weights.npz` — weights only: `__weights__` (JSON: the weights' paths and
  shapes) and `w0000, ...`.
* `.keras`, `.h5`, `.weights.h5` — Keras's own formats: not handled here yet
  (NotImplementedError); they come with the Keras-parity work.

Loading reads arrays with `allow_pickle=False` and JSON only: it never unpickles
and never imports or runs code named in a file. A config naming a layer class we
do not implement (Lambda, a custom class) is refused with NotImplementedError.

Integrity (format version 2): every file also holds `__integrity__` (JSON: the
sha256 of all other entries, fusedlstm.atomic.digest_arrays, and their names).
Files are written atomically (fusedlstm.atomic.atomic_path), so a crash during a
save leaves the previous file intact. A loader reads and checks the whole file
before touching the model: a truncated, bit-flipped or edited file, or one whose
weights do not fit the model, raises ValueError saying what is wrong and changes
nothing. Version-1 files (no checksum) still load.

Checkpoints written by ModelCheckpoint into these formats carry the training
state too (`__train_state__` and the optimizer entries; see fusedlstm.resume);
`fusedlstm.callbacks.restore_checkpoint` reads it back.
"""

import json
import os

import numpy as np

from . import losses as _losses
from . import optimizers as _optimizers
from .atomic import atomic_path, digest_arrays
from .io import load_keras_file, save_keras_file

FORMAT_VERSION = 2
INTEGRITY_KEY = "__integrity__"
MODEL_SUFFIX = ".fusedlstm"
WEIGHTS_SUFFIX = ".weights.npz"
_KERAS_SUFFIXES = (".weights.h5", ".keras", ".h5", ".hdf5")

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "MODEL_SUFFIX", "WEIGHTS_SUFFIX"]


def _suffix_kind(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Received an invalid value for argument `filepath`, expected a str or os.PathLike, got "
            f"{type(path).__name__}: {path!r}.")
    p = os.fspath(path)
    if not isinstance(p, str):
        p = os.fsdecode(p)
    p = p.lower()
    if p.endswith(WEIGHTS_SUFFIX):
        return "weights"
    if p.endswith(MODEL_SUFFIX):
        return "model"
    for s in _KERAS_SUFFIXES:
        if p.endswith(s):
            return "keras:" + s
    return None


def _bad_suffix(path, what, allowed):
    raise ValueError(
        f"Invalid filepath extension for {what}: {os.fspath(path)!r}. Expected a path ending in "
        f"{' or '.join(repr(a) for a in allowed)}.")


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{os.fspath(path)!r} exists and overwrite=False.")


def _json_array(obj):
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def _write_npz(path, arrays):
    """Write `arrays` plus their checksum entry, atomically (see fusedlstm.atomic)."""
    arrays = dict(arrays)
    arrays[INTEGRITY_KEY] = _json_array(
        {"algorithm": "sha256", "digest": digest_arrays(arrays), "entries": sorted(arrays)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _read_npz(path):
    """Every entry of the file, read in full (nothing is applied to a model here)."""
    try:
        # Our own handle: np.load leaks the one it opens when the archive is damaged.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 -- any decoding failure of a damaged archive
        size = os.path.getsize(path) if os.path.exists(path) else 0
        raise ValueError(
            f"{os.fspath(path)!r} is not a fusedlstm file, or it is truncated or damaged "
            f"({size} bytes; {type(exc).__name__}: {exc}). Refusing to load it.") from None


def _verify_integrity(arrays, path, version):
    """Raise ValueError unless the stored sha256 matches the entries read."""
    if INTEGRITY_KEY not in arrays:
        if version >= 2:
            raise ValueError(
                f"{os.fspath(path)!r} is damaged: a format-{version} file must hold the {INTEGRITY_KEY} "
                "checksum entry, and it is missing. Refusing to load it.")
        return
    try:
        info = json.loads(arrays[INTEGRITY_KEY].tobytes().decode("utf-8"))
        stored, names = str(info["digest"]), list(info["entries"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is damaged: its checksum entry is unreadable ({exc}).") from None
    body = {k: v for k, v in arrays.items() if k != INTEGRITY_KEY}
    if sorted(body) != sorted(names):
        missing = sorted(set(names) - set(body))
        extra = sorted(set(body) - set(names))
        raise ValueError(
            f"{os.fspath(path)!r} does not match its checksum entry: entries missing {missing}, "
            f"unexpected {extra}. Refusing to load it.")
    actual = digest_arrays(body)
    if actual != stored:
        raise ValueError(
            f"{os.fspath(path)!r} is corrupted: sha256 of its contents is {actual[:16]}..., the file "
            f"records {stored[:16]}... (changed after it was written). Refusing to load it.")


def _read_json(arrays, key, path):
    """The JSON entry `key`, after checking the format, its version and the checksum."""
    if key not in arrays:
        raise ValueError(f"{os.fspath(path)!r} is not a fusedlstm file (no {key} entry).")
    try:
        meta = json.loads(arrays[key].tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is damaged: its {key} entry is not valid JSON ({exc}).") from None
    version = meta.get("version", 0) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "fusedlstm" or not isinstance(version, int) \
            or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r}: unsupported fusedlstm format {meta.get('format') if isinstance(meta, dict) else meta!r} "
            f"version {version!r} (this fusedlstm reads versions 1 to {FORMAT_VERSION}).")
    _verify_integrity(arrays, path, version)
    return meta


def read_checked(path, kind):
    """(arrays, meta) of a fusedlstm file of `kind` ('model' or 'weights'), fully verified."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {os.fspath(path)!r}.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{os.fspath(path)!r} is a directory, not a fusedlstm {kind} file.")
    arrays = _read_npz(path)
    meta = _read_json(arrays, "__weights__" if kind == "weights" else "__model__", path)
    return arrays, meta


# --- architecture configs ---------------------------------------------------------------------

def _layer_entry(layer):
    from .layers import serialize
    return serialize(layer)


def sequential_config(model):
    return {
        "name": model.name,
        "layers": [_layer_entry(layer) for layer in model.layers],
        "batch_input_shape": list(model._input_layer.batch_shape) if model.built else None,
        "input_dtype": model._input_layer.input_dtype if model.built else None,
    }


def functional_config(model):
    """Layers plus the node list in plan order; tensors are (layer, node index, output index)."""
    from .layers.core import InputLayer

    node_index = {}  # id(node) -> (layer name, index among this model's nodes of that layer)
    counts = {}
    entries = []

    def ref(t):
        layer, node, i = t._keras_history
        return [layer.name, node_index[id(node)][1], i]

    layer_cfgs, seen = [], set()
    for t in model.inputs:
        layer = t._keras_history[0]
        node_index[id(t._keras_history[1])] = (layer.name, 0)
        counts[layer.name] = 1
        seen.add(id(layer))
        layer_cfgs.append(_layer_entry(layer))
    for node in _model_nodes(model):
        layer = node.layer
        if isinstance(layer, InputLayer):
            continue
        if id(layer) not in seen:
            seen.add(id(layer))
            layer_cfgs.append(_layer_entry(layer))
        k = counts.get(layer.name, 0)
        counts[layer.name] = k + 1
        entries.append({"layer": layer.name, "inputs": [ref(t) for t in node.inputs],
                        "n_state": node.n_state, "training": node.training})
        node_index[id(node)] = (layer.name, k)
    return {
        "name": model.name,
        "layers": layer_cfgs,
        "nodes": entries,
        "inputs": [ref(t) for t in model.inputs],
        "outputs": [ref(t) for t in model.outputs],
        "inputs_list": model._inputs_list,
        "outputs_list": model._outputs_list,
    }


def _model_nodes(model):
    from .models.functional import nodes_in_call_order
    return nodes_in_call_order(model.outputs)


def model_from_config(meta):
    from .layers import deserialize
    from .layers.core import InputLayer
    from .models import Model, Sequential

    cls, cfg = meta.get("class_name"), meta.get("config", {})
    if cls == "Sequential":
        model = Sequential(name=cfg.get("name"))
        layers = [deserialize(c) for c in cfg["layers"]]
        for layer in layers:
            model.add(layer, rebuild=False)
        if cfg.get("batch_input_shape") is not None:
            from .layers.core import Input
            inp = Input(batch_shape=cfg["batch_input_shape"], dtype=cfg.get("input_dtype"))
            model._input_layer = inp._keras_history[0]
            model._build_graph(tuple(cfg["batch_input_shape"]))
        return model
    if cls in ("Functional", "Model"):
        by_name = {}
        for c in cfg["layers"]:
            layer = deserialize(c)
            if layer.name in by_name:
                raise ValueError(f"Model config has two layers named {layer.name!r}.")
            by_name[layer.name] = layer
        produced = {}  # (layer name, node index) -> list of output tensors
        for name, layer in by_name.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = [layer.output]

        def tensor(r):
            key = (r[0], int(r[1]))
            if key not in produced:
                raise ValueError(f"Model config refers to the missing tensor {r}.")
            return produced[key][int(r[2])]

        counts = {}
        for e in cfg["nodes"]:
            layer = by_name.get(e["layer"])
            if layer is None:
                raise ValueError(f"Model config has a node for unknown layer {e['layer']!r}.")
            ins = [tensor(r) for r in e["inputs"]]
            n_state = int(e.get("n_state", 0))
            kw = {}
            if e.get("training") is not None:
                kw["training"] = e["training"]
            if n_state:
                out = layer(ins[0], initial_state=ins[1:], **kw)
            else:
                out = layer(ins if len(ins) > 1 else ins[0], **kw)
            outs = out if isinstance(out, list) else [out]
            k = counts.get(layer.name, 0)
            counts[layer.name] = k + 1
            produced[(layer.name, k)] = outs
        inputs = [tensor(r) for r in cfg["inputs"]]
        outputs = [tensor(r) for r in cfg["outputs"]]
        return Model(inputs if cfg.get("inputs_list", True) else inputs[0],
                     outputs if cfg.get("outputs_list", True) else outputs[0], name=cfg.get("name"))
    raise NotImplementedError(f"Model class {cls!r} is not supported (refusing to load it).")


# --- compile config ---------------------------------------------------------------------------

def _ser_loss(l):
    if l is None or isinstance(l, str):
        return l
    if isinstance(l, _losses.Loss):
        return {"class_name": type(l).__name__, "config": l.get_config()}
    name = getattr(l, "__name__", None)
    if name and getattr(l, "_cls", None) is not None:
        return name
    raise NotImplementedError(f"Cannot save the loss {l!r}.")


def _de_loss(c):
    if c is None or isinstance(c, str):
        return c
    cls = _losses._BY_NAME.get(c.get("class_name"))
    if cls is None or not isinstance(cls, type):
        raise NotImplementedError(f"Loss class {c.get('class_name')!r} is not supported (refusing to load it).")
    cfg = dict(c.get("config", {}))
    return cls(**cfg)


def _map(x, fn):
    if isinstance(x, dict):
        return {k: _map(v, fn) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_map(v, fn) for v in x]
    return fn(x)


def _ser_metric(m):
    if m is None or isinstance(m, str):
        return m
    raise NotImplementedError(f"Cannot save the metric object {m!r}; compile with metric names to save the model.")


def compile_config(model):
    if not model.compiled:
        return None
    loss, loss_weights, metrics, weighted = model._compile_args
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": _map(loss, _ser_loss),
        "loss_weights": loss_weights,
        "metrics": _map(metrics, _ser_metric),
        "weighted_metrics": _map(weighted, _ser_metric),
    }


# --- public API --------------------------------------------------------------------------------

def save_model(model, filepath, overwrite=True, **kwargs):
    """model.save(filepath): the '.fusedlstm' format (architecture, weights, optimizer state)."""
    if kwargs:
        raise TypeError(f"save() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = _suffix_kind(filepath)
    if kind is not None and kind.startswith("keras:"):
        _check_overwrite(filepath, overwrite)
        return save_keras_file(model, filepath)
    if kind != "model":
        _bad_suffix(filepath, "model.save()", [MODEL_SUFFIX])
    if not getattr(model, "built", False):
        raise ValueError("The model is not built yet; build it (or call it on data) before saving.")
    _check_overwrite(filepath, overwrite)
    _write_npz(filepath, file_arrays(model, "model"))


def file_arrays(model, kind, with_optimizer=False):
    """The entries of a 'model' file (weights and optimizer state included) or a 'weights' file
    (optimizer state only when with_optimizer: ModelCheckpoint's weights-only checkpoints)."""
    if kind == "model":
        meta = {"format": "fusedlstm", "version": FORMAT_VERSION, "class_name": _class_name(model),
                "config": model.get_config(), "compile_config": compile_config(model)}
        arrays = {"__model__": _json_array(meta)}
    else:
        meta = {"format": "fusedlstm", "version": FORMAT_VERSION,
                "weights": [{"path": v.path, "shape": list(v.shape)} for v in model.weights]}
        arrays = {"__weights__": _json_array(meta)}
    for i, v in enumerate(model.weights):
        arrays[f"w{i:04d}"] = np.ascontiguousarray(v.value)
    opt = model.optimizer if model.compiled else None
    if (kind == "model" or with_optimizer) and opt is not None and opt._size is not None:
        st = opt.get_state()
        arrays["opt_iterations"] = np.array(st["iterations"], dtype=np.int64)
        for i, s in enumerate(st["slots"]):
            arrays[f"opt_{i:04d}"] = s
    return arrays


def optimizer_entries(arrays):
    """(iterations, slot arrays) stored in a file's entries, or None."""
    if "opt_iterations" not in arrays:
        return None
    return int(arrays["opt_iterations"]), [arrays[k] for k in sorted(a for a in arrays if a.startswith("opt_0"))]


def _class_name(model):
    from .models import Sequential
    return "Sequential" if isinstance(model, Sequential) else "Functional"


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by model.save() (weights, and compile settings when compile=True)."""
    if custom_objects:
        raise NotImplementedError("custom_objects are not supported: fusedlstm only loads its own layer classes.")
    kind = _suffix_kind(filepath)
    if kind is not None and kind.startswith("keras:"):
        return load_keras_file(filepath, compile=compile)
    if kind != "model":
        _bad_suffix(filepath, "load_model()", [MODEL_SUFFIX])
    arrays, meta = read_checked(filepath, "model")
    model = model_from_config(meta)
    _assign(model, arrays, filepath)
    cc = meta.get("compile_config")
    if compile and cc:
        model.compile(optimizer=_optimizers.deserialize(cc["optimizer"]),
                      loss=_map(cc["loss"], _de_loss), loss_weights=cc.get("loss_weights"),
                      metrics=cc.get("metrics"), weighted_metrics=cc.get("weighted_metrics"))
        opt = optimizer_entries(arrays)
        if opt is not None:
            store = model._ensure_store()
            check_optimizer_slots(model.optimizer, opt[1], store.size, filepath)
            model.optimizer.set_state({"iterations": opt[0], "slots": opt[1]}, store.size)
    return model


def check_optimizer_slots(optimizer, slots, size, path):
    """Raise ValueError unless `slots` are the optimizer's state for `size` weights."""
    n = optimizer._n_slots()
    if len(slots) != n or any(s.shape != (size,) or s.dtype.kind != "f" for s in slots):
        raise ValueError(
            f"{os.fspath(path)!r}: the optimizer state does not fit this model's "
            f"{type(optimizer).__name__}: expected {n} float slot array(s) of shape ({size},), the file "
            f"has {[(s.shape, str(s.dtype)) for s in slots]}.")


def _check_weights(model, arrays, path):
    """The file's weight arrays in model order, after checking count, shape and dtype."""
    params = model.weights
    keys = sorted(k for k in arrays if k.startswith("w") and k[1:].isdigit())
    if len(keys) != len(params):
        raise ValueError(f"{os.fspath(path)!r} holds {len(keys)} weights, the model has {len(params)}.")
    for k, p in zip(keys, params):
        a = arrays[k]
        if a.shape != p.shape:
            raise ValueError(f"{os.fspath(path)!r}: weight {p.path!r} has shape {p.shape} in the model but {a.shape} in the file.")
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{os.fspath(path)!r}: weight {p.path!r} must be a numeric array, the file holds dtype {a.dtype}.")
    return [arrays[k] for k in keys]


def _assign(model, arrays, path):
    # Everything is checked before the first weight changes: a bad file never half-loads.
    values = _check_weights(model, arrays, path)
    for p, a in zip(model.weights, values):
        p.value[...] = a


def save_weights(model, filepath, overwrite=True, **kwargs):
    """model.save_weights(filepath): the '.weights.npz' format."""
    if kwargs:
        raise TypeError(f"save_weights() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = _suffix_kind(filepath)
    if kind is not None and kind.startswith("keras:"):
        _check_overwrite(filepath, overwrite)
        return save_keras_file(model, filepath, weights_only=True)
    if kind != "weights":
        _bad_suffix(filepath, "save_weights()", [WEIGHTS_SUFFIX])
    _check_overwrite(filepath, overwrite)
    _write_npz(filepath, file_arrays(model, "weights"))


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """model.load_weights(filepath) from '.weights.npz' (or the weights of a '.fusedlstm' file)."""
    if kwargs:
        raise TypeError(f"load_weights() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = _suffix_kind(filepath)
    if kind is not None and kind.startswith("keras:"):
        load_keras_file(filepath, model, skip_mismatch=skip_mismatch)
        return
    if kind not in ("weights", "model"):
        _bad_suffix(filepath, "load_weights()", [WEIGHTS_SUFFIX, MODEL_SUFFIX])
    arrays, _ = read_checked(filepath, kind)
    if skip_mismatch:
        params = model.weights
        keys = sorted(k for k in arrays if k.startswith("w") and k[1:].isdigit())
        for k, p in zip(keys, params):
            if arrays[k].shape == p.shape and arrays[k].dtype.kind in "fiu":
                p.value[...] = arrays[k]
        return
    _assign(model, arrays, filepath)
