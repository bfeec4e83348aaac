"""Saving and loading: fusedlstm's own NumPy-only file format, and the one table of file suffixes.

Formats by suffix (`SUFFIXES`, longest first):

* `.fusedlstm` — a whole model: an uncompressed .npz (zip of .npy arrays) holding
  `__model__` (UTF-8 JSON as a uint8 array: format and version, the model's registered
  class name, its `get_config()` and `get_compile_config()`), the weights `w0000,
  w0001, ...` in `model.weights` order, and the optimizer state (`opt_iterations`,
  `opt_0000, ...`) when the model was compiled and has trained.
* `.weights.npz` — weights only: `__weights__` (JSON: the weights' paths and
  shapes) and `w0000, ...`.
* `.keras`, `.weights.h5`, `.h5`, `.hdf5` — Keras's formats: handed to the reader and
  writer fusedlstm.io registers here (register_format); this module never imports it.

This module knows configs, weights and the registry of classes by name
(fusedlstm.registry), never the model or layer classes: a model is rebuilt by looking
up its class name and calling `from_config`, which rebuilds its layers the same way.

Loading reads plain `.npy` arrays and JSON only, through fusedlstm.untrusted's
checks (no zip bomb, no duplicate or escaping member names, headers that match
their bytes, weights a config declares bounded by what the file holds): it never
unpickles and never imports or runs code named in a file. A config naming a class
that is not registered (Lambda, a custom class) is refused with
NotImplementedError; NaN/Inf weights load with a NonFiniteWeightsWarning.

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

Keras's serialization functions are here under their Keras names:
register_keras_serializable, get_registered_object, get_registered_name,
serialize_keras_object, deserialize_keras_object (fusedlstm.registry).
"""

import json
import os

import numpy as np

from . import registry as _registry
from . import untrusted
from .atomic import atomic_path, digest_arrays
from .registry import (deserialize_keras_object, get_registered_name, get_registered_object,
                       register_keras_serializable, serialize_keras_object)

FORMAT_VERSION = 2
INTEGRITY_KEY = "__integrity__"
MODEL_SUFFIX = ".fusedlstm"
WEIGHTS_SUFFIX = ".weights.npz"

# Suffix -> what the file holds. Longest suffixes first: ".weights.h5" also ends in ".h5".
SUFFIXES = (
    (WEIGHTS_SUFFIX, "weights"),
    (MODEL_SUFFIX, "model"),
    (".weights.h5", "keras3_weights"),
    (".keras", "keras3_archive"),
    (".hdf5", "legacy_h5"),
    (".h5", "legacy_h5"),
)
OWN_KINDS = ("model", "weights")
KERAS_KINDS = ("keras3_weights", "keras3_archive", "legacy_h5")

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "MODEL_SUFFIX", "WEIGHTS_SUFFIX",
           "SUFFIXES", "file_kind", "register_format", "register_exporter", "export_model", "register_keras_serializable", "get_registered_object",
           "get_registered_name", "serialize_keras_object", "deserialize_keras_object"]


def file_kind(path):
    """What a file holds from its suffix ('model', 'weights', 'keras3_archive', ...), or None."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Received an invalid value for argument `filepath`, expected a str or os.PathLike, got "
            f"{type(path).__name__}: {path!r}.")
    p = os.fspath(path)
    if not isinstance(p, str):
        p = os.fsdecode(p)
    p = p.lower()
    for suffix, kind in SUFFIXES:
        if p.endswith(suffix):
            return kind
    return None


# --- other formats: the Keras files fusedlstm.io reads and writes ------------------------------

_FORMATS = {}  # kind -> (save(model, path, weights_only), load(path, model=None, compile=..., skip_mismatch=...))


def register_format(kinds, save, load):
    """Make model.save / load_model / save_weights / load_weights hand files of `kinds`
    (SUFFIXES' names) to `save(model, path, weights_only=False)` and
    `load(path, model=None, compile=True, skip_mismatch=False)` (fusedlstm.io does, for Keras's)."""
    for kind in kinds:
        _FORMATS[kind] = (save, load)


_EXPORTERS = {}  # format name -> export(model, path, **kwargs)


def register_exporter(fmt, export):
    """Make model.export(path, format=fmt) call `export(model, path, **kwargs)`
    (fusedlstm.io registers "onnx"; this module never imports it)."""
    _EXPORTERS[fmt] = export


def export_model(model, filepath, format, **kwargs):
    """model.export: hand the model to the exporter registered for `format`."""
    if format not in _EXPORTERS:
        known = ", ".join(repr(f) for f in sorted(_EXPORTERS)) or "none"
        hint = " fusedlstm has no TensorFlow: export to ONNX with format='onnx'." if format == "tf_saved_model" else ""
        raise ValueError(f"model.export: format={format!r} is not supported (supported: {known}).{hint}")
    return _EXPORTERS[format](model, filepath, **kwargs)


def _handler(kind, path):
    if kind not in _FORMATS:
        raise NotImplementedError(f"{os.fspath(path)!r}: no reader or writer is registered for {kind} files.")
    return _FORMATS[kind]


def _bad_suffix(path, what, allowed):
    raise ValueError(
        f"Invalid filepath extension for {what}: {os.fspath(path)!r}. Expected a path ending in "
        f"{' or '.join(repr(a) for a in allowed)}.")


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{os.fspath(path)!r} exists and overwrite=False.")


def json_entry(obj):
    """A JSON-able object as the uint8 array our files store it in (never pickled)."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def write_npz(path, arrays):
    """Write `arrays` plus their checksum entry, atomically (see fusedlstm.atomic): the
    container of every file of ours (models, weights, checkpoints)."""
    arrays = dict(arrays)
    arrays[INTEGRITY_KEY] = json_entry(
        {"algorithm": "sha256", "digest": digest_arrays(arrays), "entries": sorted(arrays)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _read_npz(path):
    """Every entry of the file, read in full and checked by fusedlstm.untrusted before anything
    is allocated for it (nothing is applied to a model here)."""
    where = repr(os.fspath(path))
    try:
        return untrusted.read_npz(path, where)
    except ValueError as exc:
        raise ValueError(f"{exc} Refusing to load it: not a fusedlstm file, or a damaged one.") from None


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
        stored, names = str(info["digest"]), info["entries"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("its entries are not a list of names")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is damaged: its checksum entry is unreadable "
                         f"({type(exc).__name__}: {str(exc)[:200]}).") from None
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
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise ValueError(f"{os.fspath(path)!r} is damaged: its {key} entry is not valid JSON "
                         f"({type(exc).__name__}: {str(exc)[:200]}).") from None
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
    path = untrusted.check_regular_file(path, f"a fusedlstm {kind} file")
    arrays = _read_npz(path)
    meta = _read_json(arrays, "__weights__" if kind == "weights" else "__model__", path)
    return arrays, meta


# --- what our files hold ----------------------------------------------------------------------

def _model_class_name(model):
    """The registered model class `model` is saved as (a subclass of Sequential saves as one)."""
    for cls in type(model).__mro__:
        name = _registry.registered_name(cls)
        if _registry.lookup("models", name) is cls:
            return name
    raise NotImplementedError(f"Cannot save a model of class {type(model).__name__}: it is not a registered model class.")


def file_arrays(model, kind, with_optimizer=False):
    """The entries of a 'model' file (weights and optimizer state included) or a 'weights' file
    (optimizer state only when with_optimizer: ModelCheckpoint's weights-only checkpoints)."""
    if kind == "model":
        meta = {"format": "fusedlstm", "version": FORMAT_VERSION, "class_name": _model_class_name(model),
                "config": model.get_config(), "compile_config": model.get_compile_config()}
        arrays = {"__model__": json_entry(meta)}
    else:
        meta = {"format": "fusedlstm", "version": FORMAT_VERSION,
                "weights": [{"path": v.path, "shape": list(v.shape)} for v in model.weights]}
        arrays = {"__weights__": json_entry(meta)}
    for i, v in enumerate(model.weights):
        arrays[f"w{i:04d}"] = np.ascontiguousarray(v.value)
    opt = model.optimizer if model.compiled else None
    if (kind == "model" or with_optimizer) and opt is not None and opt.built:
        arrays.update(optimizer_arrays(opt.get_state()))
    return arrays


def optimizer_arrays(state):
    """The entries of an optimizer's get_state(): `opt_iterations`, the slots `opt_0000, ...`
    and, for Nadam, `opt_u_product`."""
    out = {"opt_iterations": np.array(state["iterations"], dtype=np.int64)}
    for i, s in enumerate(state["slots"]):
        out[f"opt_{i:04d}"] = s
    if "u_product" in state:
        out["opt_u_product"] = np.array(state["u_product"], dtype=np.float64)
    return out


def optimizer_entries(arrays):
    """The optimizer state stored in a file's entries ({"iterations", "slots"[, "u_product"]}), or None."""
    if "opt_iterations" not in arrays:
        return None
    it = arrays["opt_iterations"]
    if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
        raise ValueError(f"the optimizer's step count (opt_iterations) is {it.dtype} of shape {it.shape}, "
                         "expected a non-negative integer.")
    names = sorted(a for a in arrays if a.startswith("opt_0"))
    bad = [k for k in names if arrays[k].dtype.kind not in "fiu"]
    if bad:
        raise ValueError(f"optimizer entry {bad[0]} has dtype {arrays[bad[0]].dtype}, expected numbers.")
    state = {"iterations": int(it), "slots": [arrays[k] for k in names]}
    if "opt_u_product" in arrays:
        u = arrays["opt_u_product"]
        if u.shape != () or u.dtype.kind not in "fiu":
            raise ValueError(f"optimizer entry opt_u_product is {u.dtype} of shape {u.shape}, expected a number.")
        state["u_product"] = float(u)
    return state


def weight_arrays(model, arrays, path):
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
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: warned about below
        values = [np.asarray(a, dtype=p.value.dtype) for p, a in zip(model.weights, weight_arrays(model, arrays, path))]
    untrusted.warn_nonfinite(((p.path, a) for p, a in zip(model.weights, values)), repr(os.fspath(path)))
    for p, a in zip(model.weights, values):
        p._write(a)


def _model_from_meta(meta, arrays, path):
    name = meta.get("class_name")
    cls = _registry.lookup("models", name) if isinstance(name, str) else None
    if not isinstance(cls, type):
        raise NotImplementedError(f"Model class {name!r} is not supported (refusing to load it).")
    config = meta.get("config", {})
    where = repr(os.fspath(path))
    try:
        # The weights the config declares cannot outgrow the arrays the file holds.
        with untrusted.weight_budget(sum(a.nbytes for a in arrays.values()), where):
            return cls.from_config(config)
    except NotImplementedError:
        raise
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        # from_config met a config no writer of ours produces: the file is damaged or forged.
        raise ValueError(f"{where}: its model config cannot be built ({type(exc).__name__}: "
                         f"{str(exc)[:300]}). Refusing to load it.") from None


# --- public API --------------------------------------------------------------------------------

def save_model(model, filepath, overwrite=True, **kwargs):
    """model.save(filepath): the '.fusedlstm' format (architecture, weights, optimizer state),
    or a Keras format by its suffix."""
    if kwargs:
        raise TypeError(f"save() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = file_kind(filepath)
    if kind in KERAS_KINDS:
        _check_overwrite(filepath, overwrite)
        return _handler(kind, filepath)[0](model, filepath)
    if kind != "model":
        _bad_suffix(filepath, "model.save()", [MODEL_SUFFIX])
    if not getattr(model, "built", False):
        raise ValueError("The model is not built yet; build it (or call it on data) before saving.")
    _check_overwrite(filepath, overwrite)
    write_npz(filepath, file_arrays(model, "model"))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by model.save() (weights, and compile settings when compile=True)."""
    if custom_objects:
        raise NotImplementedError("custom_objects are not supported: fusedlstm only loads its own layer classes.")
    kind = file_kind(filepath)
    if kind in KERAS_KINDS:
        return _handler(kind, filepath)[1](filepath, compile=compile)
    if kind != "model":
        _bad_suffix(filepath, "load_model()", [MODEL_SUFFIX])
    arrays, meta = read_checked(filepath, "model")
    model = _model_from_meta(meta, arrays, filepath)
    _assign(model, arrays, filepath)
    cc = meta.get("compile_config")
    if compile and cc:
        try:
            model.compile_from_config(cc)
        except (NotImplementedError, ValueError):
            raise
        except (TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
            raise ValueError(f"{os.fspath(filepath)!r}: its compile config cannot be applied "
                             f"({type(exc).__name__}: {str(exc)[:300]}). Refusing to load it.") from None
        try:
            opt = optimizer_entries(arrays)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(filepath)!r}: {exc}") from None
        if opt is not None:
            try:
                model.set_training_state({"optimizer": opt})
            except ValueError as exc:
                raise ValueError(f"{os.fspath(filepath)!r}: {exc}") from None
    return model


def save_weights(model, filepath, overwrite=True, **kwargs):
    """model.save_weights(filepath): the '.weights.npz' format, or a Keras format by its suffix."""
    if kwargs:
        raise TypeError(f"save_weights() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = file_kind(filepath)
    if kind in KERAS_KINDS:
        _check_overwrite(filepath, overwrite)
        return _handler(kind, filepath)[0](model, filepath, weights_only=True)
    if kind != "weights":
        _bad_suffix(filepath, "save_weights()", [WEIGHTS_SUFFIX])
    _check_overwrite(filepath, overwrite)
    write_npz(filepath, file_arrays(model, "weights"))


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """model.load_weights(filepath) from '.weights.npz' (or the weights of a '.fusedlstm' file),
    or a Keras file by its suffix."""
    if kwargs:
        raise TypeError(f"load_weights() got unexpected keyword argument(s): {sorted(kwargs)}")
    kind = file_kind(filepath)
    if kind in KERAS_KINDS:
        _handler(kind, filepath)[1](filepath, model, skip_mismatch=skip_mismatch)
        return
    if kind not in OWN_KINDS:
        _bad_suffix(filepath, "load_weights()", [WEIGHTS_SUFFIX, MODEL_SUFFIX])
    arrays, _ = read_checked(filepath, kind)
    if skip_mismatch:
        params = model.weights
        keys = sorted(k for k in arrays if k.startswith("w") and k[1:].isdigit())
        for k, p in zip(keys, params):
            if arrays[k].shape == p.shape and arrays[k].dtype.kind in "fiu":
                p._write(arrays[k])
        return
    _assign(model, arrays, filepath)
