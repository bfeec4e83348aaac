"""Legacy HDF5 files (`.h5`/`.hdf5`): Keras 1/2 `model.save`/`save_weights`, Keras 3's legacy writer.

Layout, as Keras 2's hdf5_format.py and Keras 3's legacy_h5_format.py write it:

    attrs: keras_version, backend, model_config (JSON; full-model files only),
           training_config (JSON, when compiled)
    model_weights/                  (full-model files; weights-only files use the root)
      attrs: layer_names [...], keras_version, backend
      <layer name>/  attrs: weight_names ['lstm_1/kernel:0', ...]  -> datasets at those paths

Loading pairs the file's layers that have weights with the model's layers that
have weights, in order (Keras's topological loading), converting CuDNNLSTM,
CuDNNGRU and Keras 1 LSTM weights as Keras 2's loader did. 'hard_sigmoid' in a config
written by Keras < 3 is Keras 2's clip(0.2x+0.5, 0, 1): it loads as our
'hard_sigmoid_k2'. A weights-only file from Keras < 2.3 (whose LSTM default
recurrent_activation was hard_sigmoid, as was GRU's) loaded into a model with sigmoid
LSTMs or GRUs raises a warning: the file cannot say which the original model used
(CuDNN weights can: cuDNN's gates are sigmoid).
"""

import json
import os
import warnings
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from .. import untrusted
from . import _h5
from ._files import atomic_path, require_h5py
from .keras_v3 import KERAS_FORMAT_VERSION, KerasFile
from .model_config import ModelNode, keras3_model_config, parse_model_config
from .weight_layout import (convert_legacy_layer_weights, keras_layer_order, layers_with_weights,
                            legacy_weight_names)

__all__ = ["read_legacy_h5", "write_legacy_h5", "LegacyActivationWarning"]


class LegacyActivationWarning(UserWarning):
    """Weights from Keras < 2.3 went into an LSTM or GRU whose recurrent_activation may not be the original one."""


def _attr_str(obj, name: str) -> Optional[str]:
    value = obj.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
        return value.decode("utf8") if isinstance(value, bytes) else str(value)
    return str(value)


def _version_tuple(version: Optional[str]):
    parts = []
    for p in (version or "1").split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
        if not p.isdigit():
            break
    return tuple(parts + [0, 0])[:3]


def read_legacy_h5(path, model: Optional[ModelNode] = None) -> KerasFile:
    """Read a legacy .h5 file.

    model: load weights laid out for this model (topological, like Keras's
        load_weights); None: the file must be a full-model file, whose model_config
        is parsed (a weights-only file then raises ValueError saying so).
    """
    h5py = require_h5py()
    source = untrusted.check_regular_file(path, "a Keras .h5 file")
    with _h5.open_file(h5py, source, source) as f:
        version = _attr_str(f, "keras_version")
        if model is None:
            raw = _attr_str(f, "model_config")
            if raw is None:
                raise ValueError(f"{source}: the file holds weights only (no model_config); build the model in "
                                 "code and call model.load_weights on it.")
            try:
                config = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"{source}: model_config is not JSON: {str(exc)[:200]}.") from None
            model = parse_model_config(config, keras_version=version or "1", source=source)
            model.compile_config = _compile_config_from_training(_attr_str(f, "training_config"), source)
            from_config = True
        else:
            from_config = False
        group = _h5.get_group(h5py, f, "model_weights", source) if "model_weights" in f else f
        version = _attr_str(group, "keras_version") or version
        notes: List[str] = []
        weights, from_cudnn = _read_layers(h5py, group, model, source, notes)
    if not from_config:
        _warn_pre_23_recurrent(version, model, source, from_cudnn)
    return KerasFile(model, weights, None, version, notes)


def _read_layers(h5py, group, model: ModelNode, source: str,
                 notes: List[str]) -> Tuple[Dict[str, List[np.ndarray]], Set[str]]:
    """The file's arrays per layer of `model`, converted; and the layers whose arrays were CuDNN's."""
    names = _h5.attr_strings(group, "layer_names")
    if not names and "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
        raise ValueError(f"{source}: not a Keras weights file (no layer_names attribute).")
    saved = []
    for name in names:
        layer_group = _h5.get_group(h5py, group, name, source)
        if layer_group is None:
            raise ValueError(f"{source}: layer_names lists {name!r} but the file has no such group.")
        weight_names = _h5.attr_strings(layer_group, "weight_names")
        if weight_names:
            saved.append((name, [_h5.read_dataset(h5py, layer_group, w, source) for w in weight_names]))
    targets = layers_with_weights(model)
    if len(saved) != len(targets):
        raise ValueError(
            f"{source}: the file holds weights for {len(saved)} layers ({', '.join(n for n, _ in saved) or 'none'}) "
            f"but the model has {len(targets)} layers with weights "
            f"({', '.join(n.name for n in targets) or 'none'}).")
    out: Dict[str, List[np.ndarray]] = {n.name: [] for n in keras_layer_order(model)}
    from_cudnn = set()
    for node, (saved_name, arrays) in zip(targets, saved):
        where = f"{source}: layer {node.name!r} ({node.class_name}, {saved_name!r} in the file)"
        before = len(notes)
        out[node.name] = convert_legacy_layer_weights(node, arrays, where, notes)
        if any("CuDNN" in note for note in notes[before:]):
            from_cudnn.add(node.name)
    return out, from_cudnn


def _warn_pre_23_recurrent(version: Optional[str], model: ModelNode, source: str, from_cudnn: Set[str]) -> None:
    if _version_tuple(version) >= (2, 3, 0):
        return
    sigmoid = []
    for node in layers_with_weights(model):
        if node.name in from_cudnn:
            continue  # cuDNN's gates are sigmoid: the file says so by its layout
        for cell in _gated(node):
            if cell.args["recurrent_activation"] == "sigmoid":
                sigmoid.append(node.name)
    if sigmoid:
        warnings.warn(
            f"{source} was written by Keras {version or '1'}, whose LSTM and GRU default recurrent_activation was "
            f"'hard_sigmoid' (clip(0.2x+0.5, 0, 1)); the layer(s) {', '.join(sorted(set(sigmoid)))} use "
            "'sigmoid'. If the original model kept the default, build these layers with "
            "recurrent_activation='hard_sigmoid_k2' or the predictions will differ.",
            LegacyActivationWarning, stacklevel=3)


def _gated(node):
    """The LSTM/GRU cells of a layer (those with a recurrent_activation), RNN(cell) and Bidirectional included."""
    if node.class_name in ("LSTM", "GRU"):
        return [node]
    if node.class_name == "RNN" and node.args["cell"].class_name in ("LSTMCell", "GRUCell"):
        return [node.args["cell"]]
    if node.class_name == "Bidirectional":
        return _gated(node.args["layer"]) + _gated(node.args["backward_layer"])
    return []


def write_legacy_h5(path, model: ModelNode, weights: Dict[str, List[np.ndarray]], *, include_config: bool,
                    compile_config: Optional[dict] = None) -> None:
    """Write a legacy .h5 file as Keras 3's legacy writer does (atomically).

    include_config: a full-model file (model_config + model_weights group) that
        keras.models.load_model reads; else a weights-only file for load_weights.
    """
    h5py = require_h5py()
    config = keras3_model_config(model)  # also refuses what Keras 3 cannot represent (hard_sigmoid_k2)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = "numpy"
            f.attrs["keras_version"] = KERAS_FORMAT_VERSION
            if include_config:
                f.attrs["model_config"] = json.dumps(config)
                if compile_config:
                    f.attrs["training_config"] = json.dumps(_training_config(compile_config))
                group = f.create_group("model_weights")
                group.attrs["backend"] = "numpy"
                group.attrs["keras_version"] = KERAS_FORMAT_VERSION
            else:
                group = f
            layers = keras_layer_order(model)
            group.attrs["layer_names"] = [n.name.encode("utf8") for n in layers]
            for node in sorted(layers, key=lambda n: n.name):
                layer_group = group.create_group(node.name)
                names = legacy_weight_names(model.name, node)
                arrays = list(weights.get(node.name, []))
                if len(arrays) != len(names):
                    raise ValueError(f"layer {node.name!r} ({node.class_name}): expected {len(names)} weight "
                                     f"arrays, got {len(arrays)}.")
                layer_group.attrs["weight_names"] = np.array([n.encode("utf8") for n in names], dtype=object) \
                    if names else np.array([], dtype=np.float64)
                for name, value in zip(names, arrays):
                    layer_group.create_dataset(name, data=np.asarray(value, dtype=np.float32))
            group.create_group("top_level_model_weights").attrs["weight_names"] = np.array([], dtype=np.float64)


def _compile_config_from_training(raw: Optional[str], source: str) -> Optional[dict]:
    """Keras's legacy training_config attribute, in Keras 3's compile_config shape."""
    if not raw:
        return None
    try:
        tc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{source}: training_config is not JSON: {str(exc)[:200]}.") from None
    if not isinstance(tc, dict):
        return None
    return {"optimizer": tc.get("optimizer_config"), "loss": tc.get("loss"), "metrics": tc.get("metrics"),
            "loss_weights": tc.get("loss_weights")}


def _training_config(compile_config: dict) -> dict:
    """Keras 3 writes training_config with the optimizer under 'optimizer_config' in legacy form."""
    out = {k: v for k, v in compile_config.items() if k != "optimizer"}
    opt = compile_config.get("optimizer")
    if isinstance(opt, dict):
        out["optimizer_config"] = {"class_name": opt.get("class_name"), "config": opt.get("config", {})}
    elif isinstance(opt, str):
        out["optimizer_config"] = {"class_name": opt, "config": {}}
    return out
