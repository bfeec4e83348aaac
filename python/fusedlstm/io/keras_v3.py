"""Keras 3 files: `.weights.h5` (weights only) and `.keras` (zip: config + metadata + weights).

Layout, as keras/src/saving/saving_lib.py writes it:

    model.keras (zip, stored)             model.weights.h5 / x.weights.h5 (HDF5)
      metadata.json  {"keras_version"}      vars                  (model's own, empty)
      config.json    serialized model       layers/lstm/vars      (empty, attr name)
      model.weights.h5                      layers/lstm/cell/vars/0,1,2
                                            layers/dense/vars/0,1
                                            optimizer/vars/0..n   (when compiled)

Layer group names come from class names, not layer names (see weight_layout).
Files are read into plain arrays keyed by layer name; nothing is unpickled and
no code is imported.
"""

import datetime
import io
import json
import os
import zipfile
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from .._version import __version__
from .. import untrusted
from . import _h5
from ._files import atomic_path, require_h5py
from .model_config import ModelNode, keras3_model_config, parse_model_config
from .weight_layout import keras3_layer_paths, saveables

__all__ = ["KerasFile", "read_keras3_weights", "write_keras3_weights", "read_keras_archive",
           "write_keras_archive", "save_keras3_weights_file", "load_keras3_weights_file", "KERAS_FORMAT_VERSION"]

# The Keras release whose file layout we write (and test against).
KERAS_FORMAT_VERSION = "3.15.1"

_CONFIG = "config.json"
_METADATA = "metadata.json"
_WEIGHTS = "model.weights.h5"
_MAX_CONFIG_BYTES = 64 << 20


class KerasFile(NamedTuple):
    """What a Keras file holds, in plain form."""
    model: Optional[ModelNode]  # None for weights-only files
    weights: Dict[str, List[np.ndarray]]  # layer name -> arrays in get_weights() order
    optimizer: Optional[List[np.ndarray]]  # Keras's optimizer variables in file order, or None
    keras_version: Optional[str]
    notes: List[str]  # conversions applied on the way (CuDNN, Keras 1), for warnings/messages


# ---------------------------------------------------------------------------------------------
# weights (HDF5)
# ---------------------------------------------------------------------------------------------

def _vars_group(h5py, root, path: str, source: str):
    group = _h5.get_group(h5py, root, path, source)
    if group is None and "_layer_checkpoint_dependencies" in root and path.startswith("layers/"):
        # Keras 2.13-2.15 wrote the layer list under this name.
        group = _h5.get_group(h5py, root, "_layer_checkpoint_dependencies" + path[len("layers"):], source)
    return group


def read_keras3_weights(root, model: ModelNode, source: str) -> Dict[str, List[np.ndarray]]:
    """Arrays for every layer of `model` from an open Keras 3 weights file (h5py File/Group).

    Raises ValueError naming the layer and the group when the file lacks a layer's
    weights, holds a different number of them, or holds layers the model does not have.
    """
    h5py = require_h5py()
    out: Dict[str, List[np.ndarray]] = {}
    used_groups = set()
    for node, path in keras3_layer_paths(model):
        arrays: List[np.ndarray] = []
        for s in saveables(node):
            if not s.var_names:
                continue
            vpath = "/".join(p for p in (path, s.subpath, "vars") if p)
            group = _vars_group(h5py, root, vpath, source)
            where = f"{source}: layer {node.name!r} ({node.class_name})"
            if group is None:
                raise ValueError(f"{where}: the file has no weights at {vpath!r} (it holds "
                                 f"{_layer_groups(h5py, root, source) or 'no layer weights'}); the file was "
                                 "saved from a different model.")
            keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if len(keys) != len(s.var_names) or keys != [str(i) for i in range(len(keys))]:
                raise ValueError(f"{where}: expected {len(s.var_names)} arrays ({', '.join(s.var_names)}) at "
                                 f"{vpath!r}, found {len(keys)}.")
            arrays += [_h5.read_dataset(h5py, group, k, source) for k in keys]
            used_groups.add(path.split("/")[1])
        out[node.name] = arrays
    extra = [g for g in _layer_groups(h5py, root, source) if g not in used_groups]
    if extra:
        raise ValueError(f"{source}: the file holds weights for {', '.join('layers/' + g for g in extra)}, which "
                         "the model does not have (its layers would be: "
                         f"{', '.join(p for _, p in keras3_layer_paths(model)) or 'none'}).")
    return out


def _layer_groups(h5py, root, source: str) -> List[str]:
    """Top-level layer groups that hold at least one dataset."""
    out = []
    for top in ("layers", "_layer_checkpoint_dependencies"):
        group = _h5.get_group(h5py, root, top, source)
        if group is None:
            continue
        for name in group:
            found = []
            group[name].visititems(lambda _n, obj: found.append(1) if isinstance(obj, h5py.Dataset) else None)
            if found:
                out.append(name)
    return out


def read_optimizer_vars(root, source: str) -> Optional[List[np.ndarray]]:
    h5py = require_h5py()
    group = _h5.get_group(h5py, root, "optimizer/vars", source)
    if group is None:
        return None
    keys = sorted((k for k in group.keys() if k.isdigit()), key=int)
    return [_h5.read_dataset(h5py, group, k, source) for k in keys]


def write_keras3_weights(root, model: ModelNode, weights: Dict[str, List[np.ndarray]],
                         optimizer: Optional[List[np.ndarray]] = None, optimizer_name: str = "optimizer") -> None:
    """Write the Keras 3 weights layout into an open, empty h5py File."""
    root.create_group("vars").attrs["name"] = model.name
    for node, path in keras3_layer_paths(model):
        arrays = list(weights.get(node.name, []))
        expected = sum(len(s.var_names) for s in saveables(node))
        if len(arrays) != expected:
            raise ValueError(f"layer {node.name!r} ({node.class_name}): expected {expected} weight arrays, "
                             f"got {len(arrays)}.")
        for s in saveables(node):
            group = root.create_group("/".join(p for p in (path, s.subpath, "vars") if p))
            group.attrs["name"] = s.group_name
            for i in range(len(s.var_names)):
                group.create_dataset(str(i), data=np.asarray(arrays.pop(0), dtype=np.float32))
    if optimizer is not None:
        group = root.create_group("optimizer/vars")
        group.attrs["name"] = optimizer_name
        for i, value in enumerate(optimizer):
            value = np.asarray(value)
            group.create_dataset(str(i), data=value)


def load_keras3_weights_file(path, model: ModelNode) -> KerasFile:
    """Read a `.weights.h5` file for `model` (its layer structure decides the paths)."""
    h5py = require_h5py()
    source = untrusted.check_regular_file(path, "a Keras weights file")
    with _h5.open_file(h5py, source, source) as f:
        weights = read_keras3_weights(f, model, source)
        optimizer = read_optimizer_vars(f, source)
    return KerasFile(None, weights, optimizer, None, [])


def save_keras3_weights_file(path, model: ModelNode, weights: Dict[str, List[np.ndarray]],
                             optimizer: Optional[List[np.ndarray]] = None, optimizer_name: str = "optimizer") -> None:
    h5py = require_h5py()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_keras3_weights(f, model, weights, optimizer, optimizer_name)


# ---------------------------------------------------------------------------------------------
# .keras archives
# ---------------------------------------------------------------------------------------------

def _member(zf: zipfile.ZipFile, name: str, source: str, limit: Optional[int] = None) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(f"{source}: not a Keras archive: it has no {name} (members: {zf.namelist()[:20]}).") from None
    return bytes(untrusted.read_member(zf, info, source, limit))


def _json_member(zf: zipfile.ZipFile, name: str, source: str):
    try:
        return json.loads(_member(zf, name, source, _MAX_CONFIG_BYTES))
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested deeper than Python recurses
        raise ValueError(f"{source}: {name} is not JSON ({type(exc).__name__}: {str(exc)[:200]}).") from None


def read_keras_archive(path, model: Optional[ModelNode] = None) -> KerasFile:
    """Read a `.keras` archive.

    model: read only the weights, laid out for this model (like keras load_weights on a
        .keras file); None: parse the archive's config into a ModelNode and read its weights.
    The archive is checked first (fusedlstm.untrusted: distinct member names, no zip bomb,
    at most MAX_EXPANSION times the file's size in all); nothing is extracted to disk.
    """
    h5py = require_h5py()
    source = untrusted.check_regular_file(path, "a Keras archive")
    size = os.path.getsize(source)
    with untrusted.open_zip(source, source, "a Keras archive (a zip file)") as zf:
        untrusted.zip_members(zf, source, untrusted.EXPANSION_FLOOR + untrusted.MAX_EXPANSION * size)
        names = zf.namelist()
        version = None
        if _METADATA in names:
            meta = _json_member(zf, _METADATA, source)
            version = meta.get("keras_version") if isinstance(meta, dict) else None
            version = version if isinstance(version, str) else None
        if model is None:
            config = _json_member(zf, _CONFIG, source)
            model = parse_model_config(config, keras_version=version or "3", source=source)
        if _WEIGHTS not in names:
            other = [n for n in names if n.startswith("model.weights")]
            what = f"weights in {other[0]!r}, a layout fusedlstm does not read" if other else "no model.weights.h5"
            raise ValueError(f"{source}: the archive has {what}.")
        data = io.BytesIO(_member(zf, _WEIGHTS, source))
    with _h5.open_file(h5py, data, f"{source}: {_WEIGHTS}") as f:
        weights = read_keras3_weights(f, model, source)
        optimizer = read_optimizer_vars(f, source)
    return KerasFile(model, weights, optimizer, version, [])


def write_keras_archive(path, model: ModelNode, weights: Dict[str, List[np.ndarray]],
                        compile_config: Optional[dict] = None, optimizer: Optional[List[np.ndarray]] = None,
                        optimizer_name: str = "optimizer") -> None:
    """Write a `.keras` archive that keras.models.load_model reads (atomically)."""
    h5py = require_h5py()
    config = keras3_model_config(model, compile_config)
    metadata = {"keras_version": KERAS_FORMAT_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": f"fusedlstm {__version__}"}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        write_keras3_weights(f, model, weights, optimizer, optimizer_name)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:  # stored, not deflated: what Keras writes
            zf.writestr(_METADATA, json.dumps(metadata))
            zf.writestr(_CONFIG, json.dumps(config))
            zf.writestr(_WEIGHTS, buf.getvalue())

