"""Our models <-> the neutral (ModelNode, weights) form, and the public entry points.

Reading a Keras file is: parse its config (model_config), read its arrays
(keras_v3 / keras_legacy_h5), build our layers from the checked constructor
arguments, set the weights. Writing is the reverse: describe our model as a
ModelNode (layers, their arguments, the functional graph), then hand it to the
writers. `from_keras`/`to_keras` take the same route through Keras's in-memory
config, so no file is involved.

Entry points (what fusedlstm.saving dispatches to by suffix):

    load_keras_file(path, model=None, compile=True)  .keras / .weights.h5 / .h5 / .hdf5
    save_keras_file(model, path, weights_only=False)
"""

import os
import warnings
from typing import Dict, List, Tuple

import numpy as np

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


class KerasCompatibilityWarning(UserWarning):
    """Something in a Keras file could not be carried over (e.g. an optimizer we do not have)."""


# ---------------------------------------------------------------------------------------------
# our model -> ModelNode
# ---------------------------------------------------------------------------------------------

def _layer_node(layer, where: str) -> LayerNode:
    # The same checks a file's config goes through: what we write is what we could read.
    return parse_layer_config({"class_name": type(layer).__name__, "config": layer.get_config()}, source=where)


def describe_model(model) -> Tuple[ModelNode, Dict[str, List[np.ndarray]]]:
    """Our Sequential/functional model as a ModelNode plus its weights by layer name."""
    from ..layers import InputLayer

    kind = "Sequential" if type(model).__name__ == "Sequential" else "Functional"
    where = f"model {model.name!r}"
    if not getattr(model, "built", False):
        raise ValueError(f"{where} is not built: its weights do not exist yet. Call it on data (or build it with "
                         "an input shape) before saving.")
    weights: Dict[str, List[np.ndarray]] = {}
    if kind == "Sequential":
        layers = [layer for layer in model.layers if not isinstance(layer, InputLayer)]
        nodes = []
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, list):
            shape = shape[0]
        if shape is not None:
            dtype = _input_dtype(model)
            nodes.append(LayerNode("InputLayer", _input_name(model), {}, batch_shape=tuple(shape), dtype=dtype))
        for layer in layers:
            nodes.append(_layer_node(layer, where))
            weights[layer.name] = layer.get_weights()
        return ModelNode("Sequential", model.name, nodes), weights
    return _describe_functional(model, where, weights), weights


def _input_dtype(model) -> str:
    inputs = getattr(model, "inputs", None) or []
    dtype = getattr(inputs[0], "dtype", "float32") if inputs else "float32"
    return str(dtype)


def _input_name(model) -> str:
    inputs = getattr(model, "inputs", None) or []
    if inputs and getattr(inputs[0], "_keras_history", None):
        return inputs[0]._keras_history[0].name
    return "input_layer"


def _describe_functional(model, where: str, weights) -> ModelNode:
    from ..layers import InputLayer
    from ..models.functional import nodes_in_call_order

    # The nodes of each layer that belong to this model, in call order (a layer shared with
    # another model has calls that are not ours; Keras renumbers the same way).
    ours = {id(node) for node in nodes_in_call_order(list(model.inputs) + list(model.outputs))}

    def node_index(layer, node) -> int:
        mine = [n for n in layer._inbound_nodes if id(n) in ours]
        return next(i for i, n in enumerate(mine) if n is node)

    def ref(t) -> TensorRef:
        layer, node, index = t._keras_history
        return TensorRef(layer.name, node_index(layer, node), index)

    nodes = []
    names = set()
    for layer in model.layers:
        if layer.name in names:
            raise ValueError(f"{where}: two layers are named {layer.name!r}; Keras files need unique names.")
        names.add(layer.name)
        if isinstance(layer, InputLayer):
            nodes.append(LayerNode("InputLayer", layer.name, {}, batch_shape=tuple(layer.batch_shape),
                                   dtype=str(layer.input_dtype)))
            continue
        node = _layer_node(layer, where)
        for call in (n for n in layer._inbound_nodes if id(n) in ours):
            flat = list(call.inputs)
            n_state = getattr(call, "n_state", 0) or 0
            main, state = flat[:len(flat) - n_state], flat[len(flat) - n_state:]
            inputs = [ref(t) for t in main]
            merge = node.class_name in ("Concatenate", "Add", "Subtract", "Multiply", "Average")
            node.calls.append(Call(inputs if merge else inputs[0], [ref(t) for t in state] if n_state else None))
        nodes.append(node)
        weights[layer.name] = layer.get_weights()
    return ModelNode("Functional", model.name, nodes, [ref(t) for t in model.inputs],
                     [ref(t) for t in model.outputs], single_output=not getattr(model, "_outputs_list", False))


# ---------------------------------------------------------------------------------------------
# ModelNode -> our model
# ---------------------------------------------------------------------------------------------

def _make_layer(node: LayerNode, source: str):
    from .. import layers as L

    where = f"{source}: layer {node.name!r} ({node.class_name})"
    try:
        cls = L.get_layer_class(node.class_name)
    except NotImplementedError as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None
    kwargs = dict(node.args)
    for key in ("layer", "backward_layer"):
        if isinstance(kwargs.get(key), LayerNode):
            kwargs[key] = _make_layer(kwargs[key], source)
    try:
        return cls(name=node.name, trainable=node.trainable, **kwargs)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"{where}: fusedlstm cannot build it: {exc}") from None


def build_model(spec: ModelNode, source: str = "model config"):
    """A new (uncompiled, unweighted) model of ours from a ModelNode."""
    from .. import layers as L
    from .. import models as M

    if spec.kind == "Sequential":
        layers = []
        for node in spec.layers:
            if node.class_name == "InputLayer":
                layers.append(L.Input(batch_shape=node.batch_shape, dtype=node.dtype, name=node.name))
            else:
                layers.append(_make_layer(node, source))
        return M.Sequential(layers, name=spec.name)
    made = {}
    for node in spec.layers:
        if node.class_name == "InputLayer":
            made[node.name] = L.Input(batch_shape=node.batch_shape, dtype=node.dtype, name=node.name)
        else:
            made[node.name] = _make_layer(node, source)
    outputs: Dict[Tuple[str, int], list] = {}
    for node in spec.layers:
        if node.class_name == "InputLayer":
            outputs[(node.name, 0)] = [made[node.name]]

    def tensor(r: TensorRef):
        return outputs[(r.layer, r.node)][r.index]

    def ready(r: TensorRef) -> bool:
        return (r.layer, r.node) in outputs

    pending = [(node, i, call) for node in spec.layers for i, call in enumerate(node.calls)]
    while pending:
        progressed = False
        for item in list(pending):
            node, i, call = item
            refs = (call.inputs if isinstance(call.inputs, list) else [call.inputs]) + list(call.initial_state or [])
            if any(j < i for (n2, j, _) in pending if n2 is node) or not all(ready(r) for r in refs):
                continue
            layer = made[node.name]
            inputs = [tensor(r) for r in call.inputs] if isinstance(call.inputs, list) else tensor(call.inputs)
            kwargs = {}
            if call.initial_state is not None:
                kwargs["initial_state"] = [tensor(r) for r in call.initial_state]
            try:
                out = layer(inputs, **kwargs)
            except (NotImplementedError, TypeError, ValueError) as exc:
                raise UnsupportedModelError(f"{source}: calling layer {node.name!r} ({node.class_name}) failed: "
                                            f"{exc}") from None
            outputs[(node.name, i)] = list(out) if isinstance(out, (list, tuple)) else [out]
            pending.remove(item)
            progressed = True
        if not progressed:
            stuck = ", ".join(sorted({n.name for n, _, _ in pending}))
            raise UnsupportedModelError(f"{source}: the graph cannot be rebuilt; the inputs of {stuck} never arrive.")
    ins = [tensor(r) for r in spec.inputs]
    outs = [tensor(r) for r in spec.outputs]
    return M.Model(inputs=ins if len(ins) > 1 else ins[0],
                   outputs=outs[0] if spec.single_output and len(outs) == 1 else outs, name=spec.name)


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
    import keras

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
    import keras

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
