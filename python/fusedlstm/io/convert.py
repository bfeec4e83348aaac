"""Our model's description <-> the neutral (ModelNode, weights) form, and the public entry points.

A model describes itself once: `model.get_config()` (the layers' configs and the calls
between them) and `Model.from_config()` (fusedlstm.models). This module translates that
description to and from a ModelNode, the form the Keras readers and writers use
(model_config), so there is one description of a model's structure, not two:

    writing: model.get_config() -> ModelNode (layer arguments checked by the same
             rules a file's config goes through) -> Keras JSON + weights
    reading: Keras JSON -> ModelNode -> our config -> Sequential/Model.from_config

`from_keras`/`to_keras` take the same route through Keras's in-memory config, so no
file is involved.

Entry points (registered with fusedlstm.saving for the Keras suffixes):

    load_keras_file(path, model=None, compile=True)  .keras / .weights.h5 / .h5 / .hdf5
    save_keras_file(model, path, weights_only=False)
"""

import os
import warnings
from typing import Dict, List, Tuple

import numpy as np

from .. import untrusted
from ..models import Functional, Sequential
from ..saving import KERAS_KINDS, register_format
from . import compile_config as _compile
from ._files import file_kind
from .keras_legacy_h5 import read_legacy_h5, write_legacy_h5
from .keras_v3 import (KerasFile, load_keras3_weights_file, read_keras_archive, save_keras3_weights_file,
                       write_keras_archive)
from .layer_rules import UnsupportedModelError
from .model_config import (Call, LayerNode, ModelNode, TensorRef, keras3_model_config, parse_layer_config,
                           parse_model_config)
from .weight_layout import keras_layer_order, layer_var_names

__all__ = ["load_keras_file", "save_keras_file", "from_keras", "to_keras", "describe_model", "build_model",
           "KerasCompatibilityWarning"]

_MERGE_LAYERS = ("Concatenate", "Add", "Subtract", "Multiply", "Average")


class KerasCompatibilityWarning(UserWarning):
    """Something in a Keras file could not be carried over (e.g. an optimizer we do not have)."""


# ---------------------------------------------------------------------------------------------
# our description -> ModelNode
# ---------------------------------------------------------------------------------------------

def _layer_node(entry, where: str) -> LayerNode:
    # The same checks a file's config goes through: what we write is what we could read.
    return parse_layer_config(entry, source=where)


def _input_node(cfg) -> LayerNode:
    return LayerNode("InputLayer", cfg["name"], {}, batch_shape=tuple(cfg["batch_shape"]), dtype=str(cfg["dtype"]))


def describe_model(model) -> Tuple[ModelNode, Dict[str, List[np.ndarray]]]:
    """Our Sequential/functional model as a ModelNode (from its get_config()) plus its
    weights by layer name."""
    where = f"model {model.name!r}"
    if not getattr(model, "built", False):
        raise ValueError(f"{where} is not built: its weights do not exist yet. Call it on data (or build it with "
                         "an input shape) before saving.")
    config = model.get_config()
    weights: Dict[str, List[np.ndarray]] = {}
    if isinstance(model, Sequential):
        nodes = []
        if config["batch_input_shape"] is not None:
            nodes.append(_input_node({"name": model.inputs[0].name, "batch_shape": config["batch_input_shape"],
                                      "dtype": config["input_dtype"]}))
        for entry, layer in zip(config["layers"], model.layers):
            nodes.append(_layer_node(entry, where))
            weights[layer.name] = layer.get_weights()
        return ModelNode("Sequential", model.name, nodes), weights
    return _describe_functional(model, config, where, weights), weights


def _describe_functional(model, config, where: str, weights) -> ModelNode:
    nodes, by_name = [], {}
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name in by_name:
            raise ValueError(f"{where}: two layers are named {name!r}; Keras files need unique names.")
        if entry["class_name"] == "InputLayer":
            node = _input_node(entry["config"])
        else:
            node = _layer_node(entry, where)
            weights[name] = model.get_layer(name).get_weights()
        by_name[name] = node
        nodes.append(node)

    def ref(r) -> TensorRef:
        return TensorRef(r[0], int(r[1]), int(r[2]))

    for call in config["nodes"]:
        node = by_name[call["layer"]]
        flat = [ref(r) for r in call["inputs"]]
        n_state = int(call.get("n_state") or 0)
        main, state = flat[:len(flat) - n_state], flat[len(flat) - n_state:]
        node.calls.append(Call(main if node.class_name in _MERGE_LAYERS else main[0], state if n_state else None))
    return ModelNode("Functional", model.name, nodes, [ref(r) for r in config["inputs"]],
                     [ref(r) for r in config["outputs"]], single_output=not config["outputs_list"])


# ---------------------------------------------------------------------------------------------
# ModelNode -> our description -> our model
# ---------------------------------------------------------------------------------------------

def _layer_entry(node: LayerNode) -> dict:
    args = {k: _layer_entry(v) if isinstance(v, LayerNode) else v for k, v in node.args.items()}
    config = dict(args, name=node.name, trainable=node.trainable)
    if node.dtype is not None:  # none in the file: the layer takes the global policy
        config["dtype"] = node.dtype
    return {"class_name": node.class_name, "config": config}


def _config_of(spec: ModelNode, source: str) -> dict:
    """Our get_config() form of a ModelNode (the form Sequential/Model.from_config take)."""
    if spec.kind == "Sequential":
        layers = [n for n in spec.layers if n.class_name != "InputLayer"]
        first = spec.layers[0] if spec.layers and spec.layers[0].class_name == "InputLayer" else None
        return {"name": spec.name, "layers": [_layer_entry(n) for n in layers],
                "batch_input_shape": None if first is None else list(first.batch_shape),
                "input_dtype": None if first is None else first.dtype,
                "input_name": None if first is None else first.name}
    layers = []
    for node in spec.layers:
        if node.class_name == "InputLayer":
            layers.append({"class_name": "InputLayer", "config": {"batch_shape": list(node.batch_shape),
                                                                  "dtype": node.dtype, "name": node.name}})
        else:
            layers.append(_layer_entry(node))
    # The calls in an order where every input exists before it is used, each layer's calls in
    # their own order (so a call's index is the same in both descriptions).
    ready = {(n.name, 0) for n in spec.layers if n.class_name == "InputLayer"}
    pending = [(node, i, call) for node in spec.layers for i, call in enumerate(node.calls)]
    entries = []
    while pending:
        progressed = False
        for item in list(pending):
            node, i, call = item
            main = call.inputs if isinstance(call.inputs, list) else [call.inputs]
            refs = main + list(call.initial_state or [])
            if any(j < i for (n2, j, _) in pending if n2 is node) or not all((r.layer, r.node) in ready for r in refs):
                continue
            entries.append({"layer": node.name, "inputs": [list(r) for r in refs],
                            "n_state": len(call.initial_state or []), "training": None})
            ready.add((node.name, i))
            pending.remove(item)
            progressed = True
        if not progressed:
            stuck = ", ".join(sorted({n.name for n, _, _ in pending}))
            raise UnsupportedModelError(f"{source}: the graph cannot be rebuilt; the inputs of {stuck} never arrive.")
    return {"name": spec.name, "layers": layers, "nodes": entries, "inputs": [list(r) for r in spec.inputs],
            "outputs": [list(r) for r in spec.outputs], "inputs_list": len(spec.inputs) > 1,
            "outputs_list": not (spec.single_output and len(spec.outputs) == 1)}


def build_model(spec: ModelNode, source: str = "model config"):
    """A new (uncompiled, unweighted) model of ours from a ModelNode."""
    config = _config_of(spec, source)
    cls = Sequential if spec.kind == "Sequential" else Functional
    try:
        return cls.from_config(config)
    except UnsupportedModelError:
        raise
    except (NotImplementedError, ValueError) as exc:
        raise UnsupportedModelError(f"{source}: fusedlstm cannot build the model: {exc}") from None
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        # A config no Keras writes (the reader checked the parts it translates): damaged or forged.
        raise UnsupportedModelError(f"{source}: fusedlstm cannot build the model: its config is malformed "
                                    f"({type(exc).__name__}: {str(exc)[:300]}).") from None


def _set_weights(model, spec: ModelNode, weights: Dict[str, List[np.ndarray]], source: str,
                 skip_mismatch: bool = False) -> None:
    """Check every array against the model first, then assign: a misfit file changes nothing.

    skip_mismatch: leave layers whose weights do not fit unchanged, with a warning (Keras's
    load_weights(skip_mismatch=True)), instead of raising.
    """
    plan = []
    for node in keras_layer_order(spec):
        try:
            fixed = _fitted(model, node, weights, source)
        except ValueError as exc:
            if not skip_mismatch:
                raise
            _warn(f"skipping layer {node.name!r}: {exc}")
            continue
        if fixed:
            plan.append((model.get_layer(node.name), fixed))
    untrusted.warn_nonfinite(((f"{layer.name}[{i}]", a) for layer, fixed in plan for i, a in enumerate(fixed)),
                             source)
    for layer, fixed in plan:
        layer.set_weights(fixed)


def _fitted(model, node: LayerNode, weights, source: str) -> List[np.ndarray]:
    """The file's arrays for one layer, checked against the layer and cast to its dtype."""
    arrays = weights.get(node.name, [])
    current = model.get_layer(node.name).get_weights()
    names = layer_var_names(node)
    where = f"{source}: layer {node.name!r} ({node.class_name})"
    if len(arrays) != len(current):
        raise ValueError(f"{where}: the model has {len(current)} weights ({', '.join(names) or 'none'}), the "
                         f"file has {len(arrays)}.")
    fixed = []
    for name, cur, arr in zip(names, current, arrays):
        arr = np.asarray(arr)
        if arr.shape != cur.shape:
            raise ValueError(f"{where}: weight {name!r} has shape {cur.shape} in the model, {arr.shape} in the file.")
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{where}: weight {name!r} has dtype {arr.dtype} in the file, expected numbers.")
        with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: warned about later
            fixed.append(arr.astype(cur.dtype, copy=False))
    return fixed


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

def load_keras_file(path, model=None, *, compile: bool = True, skip_mismatch: bool = False):
    """Load a Keras file.

    model=None: `.keras` or a full-model `.h5` -> a new model of ours (compiled from the
        file's training config when compile=True and we support it; weights loaded).
    model given: `.keras`, `.weights.h5` or `.h5` weights are loaded into it (by Keras's
        layout rules) and the model is returned.
    skip_mismatch: with a model, layers whose weights do not fit are skipped with a
        KerasCompatibilityWarning instead of raising (Keras's load_weights option).
    Raises ValueError naming the layer and the expected and found shapes when the
    file does not fit, UnsupportedModelError (a ValueError) for layers or settings we
    do not have, ImportError without h5py.
    """
    source = os.fspath(path)
    kind = file_kind(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"No such file: {source!r}.")
    if model is None:
        if kind == "keras3_weights":
            raise ValueError(f"{source} holds weights only; build the model in code and call "
                             "model.load_weights on it.")
        data = read_keras_archive(source) if kind == "keras3_archive" else read_legacy_h5(source)
        # The weights the config declares cannot outgrow the arrays the file holds.
        with untrusted.weight_budget(sum(a.nbytes for arrays in data.weights.values() for a in arrays), source):
            model = build_model(data.model, source)
        _set_weights(model, data.model, data.weights, source)
        if compile:
            _compile.apply(model, data, source, KerasCompatibilityWarning)
        return model
    spec, _ = describe_model(model)
    if kind == "keras3_archive":
        data = read_keras_archive(source, spec)
    elif kind == "keras3_weights":
        data = load_keras3_weights_file(source, spec)
    else:
        data = read_legacy_h5(source, spec)
    _set_weights(model, spec, data.weights, source, skip_mismatch)
    return model


def save_keras_file(model, path, *, weights_only: bool = False) -> None:
    """Write our model as a Keras file, chosen by suffix (atomically).

    `.keras`: config + weights (+ compile config and optimizer state when compiled), for
        keras.models.load_model. `.weights.h5`: Keras 3 weights for model.load_weights.
    `.h5`/`.hdf5`: Keras's legacy full-model file, or weights only with weights_only=True.
    Raises UnsupportedModelError for what Keras 3 cannot represent (e.g. Keras 2's
    hard_sigmoid, 'hard_sigmoid_k2').
    """
    source = os.fspath(path)
    kind = file_kind(source)
    spec, weights = describe_model(model)
    keras3_model_config(spec)  # refuses what Keras cannot hold before anything is written
    if kind == "keras3_weights":
        save_keras3_weights_file(source, spec, weights)
    elif kind == "keras3_archive":
        if weights_only:
            raise ValueError(f"{source}: a .keras file holds the whole model; use a .weights.h5 name for weights "
                             "only.")
        comp = _compile.describe(model, spec)
        write_keras_archive(source, spec, weights, comp.config if comp else None,
                            comp.optimizer_vars if comp else None, comp.optimizer_name if comp else "optimizer")
    else:
        comp = None if weights_only else _compile.describe(model, spec)
        write_legacy_h5(source, spec, weights, include_config=not weights_only,
                        compile_config=comp.config if comp else None)


def from_keras(keras_model, compile: bool = True):
    """Our model with the same architecture and weights as an in-memory Keras model."""
    import keras  # optional dependency (the compare extra): only these two functions need it

    cfg = keras.saving.serialize_keras_object(keras_model)
    source = f"Keras model {keras_model.name!r}"
    spec = parse_model_config(cfg, keras_version=keras.__version__, source=source)
    weights = {layer.name: layer.get_weights() for layer in keras_model.layers}
    model = build_model(spec, source)
    _set_weights(model, spec, weights, source)
    if compile and spec.compile_config:
        data = KerasFile(spec, weights, None, keras.__version__, [])
        _compile.apply(model, data, source, KerasCompatibilityWarning)
    return model


def to_keras(model):
    """A Keras 3 model with our model's architecture and weights (uncompiled)."""
    import keras  # optional dependency (the compare extra)

    spec, weights = describe_model(model)
    cfg = keras3_model_config(spec)
    kmodel = keras.saving.deserialize_keras_object(cfg, safe_mode=True)
    for node in keras_layer_order(spec):
        arrays = weights.get(node.name, [])
        if arrays:
            kmodel.get_layer(node.name).set_weights(arrays)
    return kmodel


def _warn(message: str) -> None:
    warnings.warn(message, KerasCompatibilityWarning, stacklevel=3)


# model.save / load_model / save_weights / load_weights hand Keras's suffixes to us.
register_format(KERAS_KINDS, save=save_keras_file, load=load_keras_file)
