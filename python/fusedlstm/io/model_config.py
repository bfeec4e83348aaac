"""Model configs: one neutral form read from Keras 3 and Keras 2 files, written as Keras 3.

Every reader turns a file's JSON model config into a `ModelNode` (a list of
`LayerNode`s, each with checked constructor arguments and, in a functional
model, the calls that connect it), and every writer turns a `ModelNode` back
into the JSON Keras 3 writes. Keeping one form in the middle means the Keras 2
quirks (batch_input_shape on the first layer, list-style graph nodes,
CuDNNLSTM/CuDNNGRU, Keras 2's hard_sigmoid) are handled in one place, on reading.

Nothing here imports Keras, h5py or the engine: configs are plain dicts.
"""

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from .. import registry as _registry
from .layer_rules import (ALIASES, CELLS, RECURRENT, RULES, UnsupportedModelError, keras_layer_config, layer_arguments,
                          layer_policy, recurrent_core)

__all__ = ["TensorRef", "Call", "LayerNode", "ModelNode", "parse_model_config", "parse_layer_config",
           "keras3_model_config", "output_shapes", "keras_major"]


class TensorRef(NamedTuple):
    """Output `index` of call number `node` of layer `layer` (Keras's keras_history)."""
    layer: str
    node: int
    index: int


@dataclass
class Call:
    """One call of a layer in a functional graph."""
    inputs: Union[TensorRef, List[TensorRef]]
    initial_state: Optional[List[TensorRef]] = None


@dataclass
class LayerNode:
    class_name: str
    name: str
    args: Dict[str, Any]  # constructor arguments; wrapped layers are LayerNodes
    trainable: bool = True
    calls: List[Call] = field(default_factory=list)  # functional models only
    batch_shape: Optional[Tuple[Optional[int], ...]] = None  # InputLayer only
    # InputLayer: the input's dtype; any other layer: its dtype policy name (None: none in the
    # file, so the global policy when built).
    dtype: Optional[str] = "float32"


@dataclass
class ModelNode:
    kind: str  # 'Sequential' or 'Functional'
    name: str
    layers: List[LayerNode]  # a Sequential's InputLayer (when its input shape is known) comes first
    inputs: List[TensorRef] = field(default_factory=list)  # functional only
    outputs: List[TensorRef] = field(default_factory=list)  # functional only
    single_output: bool = True
    compile_config: Optional[dict] = None  # Keras 3 compile_config, kept as read

    def layer(self, name: str) -> LayerNode:
        for node in self.layers:
            if node.name == name:
                return node
        raise KeyError(name)


def keras_major(version: Optional[str]) -> int:
    """Major version from a keras_version attribute ('2.2.4' -> 2); files without one are Keras 1."""
    if not version:
        return 1
    head = str(version).split(".")[0].strip()
    return int(head) if head.isdigit() else 1


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

_MODEL_CLASSES = ("Sequential", "Functional", "Model")


class _Reader:
    def __init__(self, keras_version: Optional[str], source: str):
        self.major = keras_major(keras_version)
        self.legacy = self.major < 3
        self.source = source

    def model(self, cfg) -> ModelNode:
        if not isinstance(cfg, dict) or "class_name" not in cfg:
            raise UnsupportedModelError(f"{self.source}: the model config is not a Keras model config "
                                        f"(expected a dict with 'class_name', got {type(cfg).__name__}).")
        cls = cfg["class_name"]
        self._check_builtin(cfg, f"the model ({cls})")
        body = cfg.get("config")
        if cls == "Sequential":
            node = self._sequential(body)
        elif cls in ("Functional", "Model") and isinstance(body, dict) and "layers" in body:
            node = self._functional(body)
        else:
            raise UnsupportedModelError(
                f"{self.source}: a {cls} model without a layer graph (a subclassed model) cannot be rebuilt from "
                "its config; only Sequential and functional models can.")
        compile_config = cfg.get("compile_config")
        node.compile_config = compile_config if isinstance(compile_config, dict) and compile_config else None
        return node

    def _check_builtin(self, cfg: dict, where: str) -> None:
        module = cfg.get("module")
        registered = cfg.get("registered_name")
        if module is not None and not str(module).startswith("keras"):
            raise UnsupportedModelError(f"{self.source}: {where} comes from module {module!r}; only built-in "
                                        "Keras classes can be loaded (no custom code is imported).")
        if registered not in (None, cfg.get("class_name")):
            raise UnsupportedModelError(f"{self.source}: {where} is the registered custom class {registered!r}; "
                                        "only built-in Keras classes can be loaded.")

    def _sequential(self, body) -> ModelNode:
        if isinstance(body, list):  # Keras <= 2.2.2 wrote the layer list itself
            name, layer_cfgs, build_shape = "sequential", body, None
        elif isinstance(body, dict):
            name, layer_cfgs = body.get("name", "sequential"), body.get("layers", [])
            build_shape = body.get("build_input_shape")
        else:
            raise UnsupportedModelError(f"{self.source}: invalid Sequential config.")
        layers: List[LayerNode] = []
        for i, lcfg in enumerate(layer_cfgs):
            node = self.layer(lcfg, f"layer #{i}")
            if node.class_name == "InputLayer":
                if layers:
                    raise UnsupportedModelError(f"{self.source}: InputLayer {node.name!r} is not the first layer.")
                layers.append(node)
                continue
            shape = _input_shape_of(lcfg)
            if not layers and shape is not None:
                layers.append(_input_node(f"{node.name}_input", shape, lcfg.get("config", {}).get("dtype")))
            layers.append(node)
        if (not layers or layers[0].class_name != "InputLayer") and isinstance(build_shape, (list, tuple)):
            layers.insert(0, _input_node("input_layer", build_shape, None))
        return ModelNode("Sequential", name, layers)

    def _functional(self, body: dict) -> ModelNode:
        layers = []
        self._mask_ops = _mask_ops(body["layers"], self.source)
        self._mask_uses = []
        for i, lcfg in enumerate(body["layers"]):
            if isinstance(lcfg, dict) and lcfg.get("name", (lcfg.get("config") or {}).get("name")) in self._mask_ops:
                continue
            node = self.layer(lcfg, f"layer #{i}")
            node.calls = [self._call(node, n) for n in (lcfg.get("inbound_nodes") or [])]
            layers.append(node)
        _check_mask_uses(self._mask_ops, self._mask_uses, layers, self.source)
        names = [n.name for n in layers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise UnsupportedModelError(f"{self.source}: layer names repeat: {sorted(dupes)}.")
        inputs, _ = _refs(body.get("input_layers"), "input_layers", self.source)
        outputs, single = _refs(body.get("output_layers"), "output_layers", self.source)
        known = set(names)
        for ref in inputs + outputs:
            if ref.layer not in known:
                raise UnsupportedModelError(f"{self.source}: the model's inputs/outputs name an unknown layer "
                                            f"{ref.layer!r}.")
        return ModelNode("Functional", body.get("name", "functional"), layers, inputs, outputs, single)

    def layer(self, lcfg, where: str) -> LayerNode:
        if not isinstance(lcfg, dict) or "class_name" not in lcfg:
            raise UnsupportedModelError(f"{self.source}: {where} is not a layer config.")
        cls = lcfg["class_name"]
        config = lcfg.get("config") or {}
        name = config.get("name") or lcfg.get("name") or cls.lower()
        where = f"{self.source}: layer {name!r} ({cls})"
        self._check_builtin(lcfg, f"layer {name!r} ({cls})")
        if cls in _MODEL_CLASSES:
            raise UnsupportedModelError(f"{where}: a model used as a layer is not supported; flatten it into "
                                        "one model.")
        if cls == "InputLayer":
            shape = config.get("batch_shape", config.get("batch_input_shape"))
            if shape is None:
                raise UnsupportedModelError(f"{where}: no batch_shape.")
            if config.get("sparse") or config.get("ragged"):
                raise UnsupportedModelError(f"{where}: sparse/ragged inputs are not supported.")
            return _input_node(name, shape, config.get("dtype"))
        config = dict(config)
        cls = ALIASES.get(cls, cls)
        if self.legacy and cls in ("CuDNNLSTM", "CuDNNGRU"):
            # CuDNN's cells have fixed activations (its GRU is reset_after=True's); their weights are
            # rearranged on load (weight_layout).
            config.update(activation="tanh", recurrent_activation="sigmoid", use_bias=True)
            if cls == "CuDNNGRU":
                config["reset_after"] = True
            cls = cls[len("CuDNN"):]
        if cls == "RNN":
            _check_rnn_cell(config.get("cell"), where)
        args = layer_arguments(cls, config, where, legacy_hard_sigmoid=self.legacy,
                               parse_nested=lambda sub: self.layer(sub, f"the layer wrapped by {name!r}"))
        if cls == "Bidirectional":
            args = _bidirectional_args(args, where)
        return LayerNode(cls, name, args, trainable=bool(config.get("trainable", True)),
                         dtype=layer_policy(config, where))

    def _call(self, node: LayerNode, data) -> Call:
        where = f"{self.source}: layer {node.name!r}"
        if isinstance(data, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            args = data.get("args") or []
            kwargs = dict(data.get("kwargs") or {})
            if len(args) != 1:
                raise UnsupportedModelError(f"{where}: calls with {len(args)} positional arguments are not "
                                            "supported.")
            inputs = _tensor_struct(args[0], where)
            state = kwargs.pop("initial_state", None)
            state = None if state is None else _tensor_list(state, where)
        elif isinstance(data, list):  # Keras 2: [[name, node, index, kwargs], ...]
            refs = []
            kwargs = {}
            for entry in data:
                if not isinstance(entry, list) or len(entry) < 3:
                    raise UnsupportedModelError(f"{where}: invalid inbound node {entry!r}.")
                refs.append(TensorRef(str(entry[0]), int(entry[1]), int(entry[2])))
                if len(entry) > 3 and entry[3]:
                    kwargs.update(entry[3])
            state = kwargs.pop("initial_state", None)
            state = None if state is None else _tensor_list(state, where)
            if (node.class_name in RECURRENT or node.class_name in ("RNN", "Bidirectional")) and len(refs) > 1:
                # Keras 2's RNN.__call__ appends initial_state to its inputs.
                inputs, state = refs[0], refs[1:]
            else:
                inputs = refs[0] if len(refs) == 1 else refs
        else:
            raise UnsupportedModelError(f"{where}: invalid inbound node {data!r}.")
        for key, value in kwargs.items():
            if key in ("training", "mask") and (value is None or isinstance(value, bool)):
                continue
            if key == "mask" and _is_tensor(value) and _tensor(value, where).layer in getattr(self, "_mask_ops", {}):
                # Keras 3 records the mask it propagated; we propagate the same one ourselves.
                self._mask_uses.append((node.name, _tensor(value, where).layer))
                continue
            raise UnsupportedModelError(f"{where}: call argument {key}={value!r} is not supported.")
        return Call(inputs, state)


# ---------------------------------------------------------------------------------------------
# Masks in Keras 3 functional configs
#
# Keras 3 records how a propagated mask was computed as operations in the graph: Embedding
# (mask_zero=True) adds NotEqual(ids, 0), Masking adds Any(NotEqual(x, mask_value), axis=-1),
# and every layer that received the mask lists it as a `mask` call argument. Our models
# propagate masks themselves (the same masks: each layer passes, consumes or drops its mask as
# Keras's does), so these operations are dropped on reading, after checking that each one is
# such a mask of an Embedding or Masking input; any other operation in a graph is refused.
# ---------------------------------------------------------------------------------------------

def _is_tensor(x) -> bool:
    return isinstance(x, dict) and x.get("class_name") == "__keras_tensor__"


def _mask_ops(entries, source: str) -> Dict[str, Tuple[str, Optional[TensorRef], Any]]:
    """{op name: (class, input tensor, constant)} of the graph's mask operations."""
    ops = {}
    for lcfg in entries:
        if not isinstance(lcfg, dict):
            continue
        cls, module = lcfg.get("class_name"), lcfg.get("module")
        # Legacy .h5 configs carry no module: there the class name tells (no Keras layer is named so).
        if not (str(module or "").startswith("keras.src.ops") or (module is None and cls in ("NotEqual", "Any"))):
            continue
        name = lcfg.get("name", (lcfg.get("config") or {}).get("name"))
        nodes = lcfg.get("inbound_nodes") or []
        args = nodes[0].get("args", []) if len(nodes) == 1 and isinstance(nodes[0], dict) else []
        ok = (cls == "NotEqual" and len(args) == 2 and _is_tensor(args[0]) and isinstance(args[1], (int, float))) or \
             (cls == "Any" and len(args) == 1 and _is_tensor(args[0]))
        if not ok:
            raise UnsupportedModelError(
                f"{source}: layer {name!r} ({cls}) is a keras.ops operation in the graph; fusedlstm rebuilds "
                "layers only (the masks Keras records this way are the one exception).")
        where = f"{source}: layer {name!r}"
        ops[name] = (cls, _tensor(args[0], where), args[1] if cls == "NotEqual" else None)
    return ops


def _check_mask_uses(ops, uses, layers: List[LayerNode], source: str) -> None:
    """Every recorded mask must be Embedding(mask_zero=True)'s or Masking's, computed from its input."""
    feeds = {}  # input tensor -> the masking layers it feeds
    for node in layers:
        if node.class_name in ("Embedding", "Masking"):
            for call in node.calls:
                if isinstance(call.inputs, TensorRef):
                    feeds.setdefault(call.inputs, []).append(node)
    for consumer, name in uses:
        cls, src, const = ops[name]
        if cls == "Any":
            inner = ops.get(src.layer)
            ok = inner is not None and inner[0] == "NotEqual" and any(
                n.class_name == "Masking" and float(n.args["mask_value"]) == float(inner[2])
                for n in feeds.get(inner[1], []))
        else:
            ok = const == 0 and any(n.class_name == "Embedding" and n.args["mask_zero"] for n in feeds.get(src, []))
        if not ok:
            raise UnsupportedModelError(
                f"{source}: layer {consumer!r} is given a mask computed by {name!r} ({cls}), which is not the mask of "
                "an Embedding(mask_zero=True) or Masking layer; such a mask cannot be rebuilt.")


def _input_shape_of(lcfg: dict):
    cfg = lcfg.get("config") or {}
    for key in ("batch_input_shape", "batch_shape"):
        if cfg.get(key) is not None:
            return cfg[key]
    if cfg.get("input_shape") is not None:
        return [None] + list(cfg["input_shape"])
    return None


def _input_node(name: str, shape, dtype) -> LayerNode:
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    shape = tuple(None if d is None else int(d) for d in shape)
    return LayerNode("InputLayer", name, {}, batch_shape=shape, dtype=str(dtype or "float32"))


def _check_rnn_cell(cell, where: str) -> None:
    name = cell.get("class_name") if isinstance(cell, dict) else type(cell).__name__
    if name not in CELLS:
        raise UnsupportedModelError(
            f"{where}: RNN with a {name} cell is not supported; fusedlstm runs RNN over "
            f"{', '.join(CELLS)} only (on its fused kernels, never a Python loop over a custom cell).")


def _bidirectional_args(args: dict, where: str) -> dict:
    fwd: LayerNode = args["layer"]
    if recurrent_core(fwd.class_name, fwd.args) is None:
        raise UnsupportedModelError(f"{where}: Bidirectional wraps a {fwd.class_name}; fusedlstm supports "
                                    f"{', '.join(RECURRENT)} and RNN({', '.join(CELLS)}).")
    if args["merge_mode"] not in ("concat", "sum", "mul", "ave", None):
        raise UnsupportedModelError(f"{where}: merge_mode={args['merge_mode']!r} is unknown.")
    bwd: Optional[LayerNode] = args.get("backward_layer")
    if bwd is None:
        # Keras 2 left it out: the backward layer is the forward config reading the other way.
        bwd = LayerNode(fwd.class_name, "backward_" + fwd.name, dict(fwd.args, go_backwards=not fwd.args["go_backwards"]),
                        fwd.trainable, dtype=fwd.dtype)
    if bwd.class_name != fwd.class_name:
        raise UnsupportedModelError(f"{where}: backward_layer is a {bwd.class_name}, the forward layer a "
                                    f"{fwd.class_name}; fusedlstm needs both of the same class.")
    return dict(args, backward_layer=bwd)


def _is_ref_list(x) -> bool:
    return isinstance(x, list) and len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int)


def _refs(value, key: str, source: str) -> Tuple[List[TensorRef], bool]:
    if _is_ref_list(value):  # Keras 3 writes a single triple unwrapped
        return [TensorRef(value[0], int(value[1]), int(value[2]))], True
    if isinstance(value, list) and all(_is_ref_list(v) for v in value) and value:
        return [TensorRef(v[0], int(v[1]), int(v[2])) for v in value], len(value) == 1
    raise UnsupportedModelError(f"{source}: invalid {key} {value!r}.")


def _tensor(x, where: str) -> TensorRef:
    if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
        hist = (x.get("config") or {}).get("keras_history")
        if _is_ref_list(hist):
            return TensorRef(hist[0], int(hist[1]), int(hist[2]))
    if _is_ref_list(x):
        return TensorRef(x[0], int(x[1]), int(x[2]))
    raise UnsupportedModelError(f"{where}: expected a tensor reference, got {x!r}.")


def _tensor_list(x, where: str) -> List[TensorRef]:
    if isinstance(x, (list, tuple)) and not _is_ref_list(x):
        return [_tensor(t, where) for t in x]
    return [_tensor(x, where)]


def _tensor_struct(x, where: str):
    if isinstance(x, (list, tuple)) and not _is_ref_list(x):
        return [_tensor(t, where) for t in x]
    return _tensor(x, where)


def parse_model_config(cfg: dict, *, keras_version: Optional[str], source: str) -> ModelNode:
    """Check a Keras model config (Keras 1-3 layout) and return its neutral form.

    keras_version: the version that wrote the file; below 3, 'hard_sigmoid' means
        Keras 2's clip(0.2x+0.5, 0, 1), CuDNNLSTM layers become LSTMs and CuDNNGRU layers
        GRU(reset_after=True)s.
    source: names the file in error messages.
    Raises UnsupportedModelError (a ValueError) naming the layer and the setting
    for anything fusedlstm cannot represent.
    """
    reader = _Reader(keras_version, source)
    if reader.major < 2:
        raise UnsupportedModelError(f"{source}: model configs written by Keras 1 are not supported; load the "
                                    "weights into a model built in code instead.")
    try:
        return reader.model(copy.deepcopy(cfg))
    except (RecursionError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # A config no Keras writes (nested past Python's recursion limit, values of the wrong type).
        raise UnsupportedModelError(f"{source}: the model config is malformed ({type(exc).__name__}: "
                                    f"{str(exc)[:200]}).") from None


def parse_layer_config(cfg: dict, *, source: str) -> LayerNode:
    """One Keras 3 layer config ({"class_name", "config"}) checked into a LayerNode."""
    return _Reader("3", source).layer(copy.deepcopy(cfg), source)


# ---------------------------------------------------------------------------------------------
# Shapes (a functional config names tensor shapes; Keras checks nothing else)
# ---------------------------------------------------------------------------------------------

Shape = Tuple[Optional[int], ...]


def _layer_outputs(node: LayerNode, shape, state_shapes) -> List[Shape]:
    cls, a = node.class_name, node.args
    if recurrent_core(cls, a) is not None or cls == "Bidirectional":
        rnn = a["layer"] if cls == "Bidirectional" else node
        kind, lstm = recurrent_core(rnn.class_name, rnn.args)
        units = lstm["units"]
        if cls != "Bidirectional":
            width = units
        else:
            width = 2 * units if a["merge_mode"] == "concat" else units
        b, t = shape[0], shape[1]
        y = (b, t, width) if lstm["return_sequences"] else (b, width)
        outs = [y]
        if cls == "Bidirectional" and a["merge_mode"] is None:
            outs = [y[:-1] + (units,)] * 2
        if lstm["return_state"]:
            outs += [(b, units)] * (RECURRENT[kind] * (1 if cls != "Bidirectional" else 2))
        return outs
    if cls == "Dense":
        return [tuple(shape[:-1]) + (a["units"],)]
    if cls == "TimeDistributed":
        inner = _layer_outputs(a["layer"], (shape[0],) + tuple(shape[2:]), None)[0]
        return [(inner[0], shape[1]) + tuple(inner[1:])]
    if cls == "Embedding":
        return [tuple(shape) + (a["output_dim"],)]
    if cls == "RepeatVector":
        return [(shape[0], a["n"]) + tuple(shape[1:])]
    if cls == "Reshape":
        target = [int(d) for d in a["target_shape"]]
        if -1 in target:
            rest, known = shape[1:], math.prod(d for d in target if d != -1)
            free = None if any(d is None for d in rest) else math.prod(rest) // known
            target = [free if d == -1 else d for d in target]
        return [(shape[0],) + tuple(target)]
    if cls == "Flatten":
        rest = shape[1:]
        size = None if any(d is None for d in rest) else int(math.prod(rest))
        return [(shape[0], size)]
    if cls in _SHAPE_BY_LAYER:
        # The layer's own compute_output_shape (through the registry: no layer class imported here).
        layer = _registry.lookup("layers", cls).from_config(dict(a, name=node.name))
        return [tuple(layer.compute_output_shape(tuple(shape)))]
    return [tuple(shape)]


# Single-input layers whose output shape differs from their input's (the rest keep it).
_SHAPE_BY_LAYER = ("Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
                   "UpSampling1D", "ZeroPadding1D", "Cropping1D", "Permute")


def _merge_outputs(node: LayerNode, shapes: Sequence[Shape]) -> List[Shape]:
    if node.class_name == "Concatenate":
        axis = node.args["axis"]
        first = list(shapes[0])
        dims = [s[axis] for s in shapes]
        first[axis] = None if any(d is None for d in dims) else sum(dims)
        return [tuple(first)]
    return [tuple(shapes[0])]


def output_shapes(model: ModelNode) -> Dict[Tuple[str, int], List[Shape]]:
    """(layer name, call index) -> its output shapes, batch dimension included."""
    out: Dict[Tuple[str, int], List[Shape]] = {}
    if model.kind == "Sequential":
        shape = None
        for node in model.layers:
            if node.class_name == "InputLayer":
                shape = node.batch_shape
                out[(node.name, 0)] = [shape]
                continue
            if shape is None:
                break
            outs = _layer_outputs(node, shape, None)
            out[(node.name, 0)] = outs
            shape = outs[0]
        return out
    pending = list(model.layers)
    while pending:
        progressed = False
        for node in list(pending):
            if node.class_name == "InputLayer":
                out[(node.name, 0)] = [node.batch_shape]
                pending.remove(node)
                progressed = True
                continue
            ready = all(all((r.layer, r.node) in out for r in (c.inputs if isinstance(c.inputs, list)
                                                                 else [c.inputs])) for c in node.calls)
            if not ready:
                continue
            for i, call in enumerate(node.calls):
                if isinstance(call.inputs, list):
                    shapes = [out[(r.layer, r.node)][r.index] for r in call.inputs]
                    out[(node.name, i)] = _merge_outputs(node, shapes)
                else:
                    r = call.inputs
                    out[(node.name, i)] = _layer_outputs(node, out[(r.layer, r.node)][r.index], None)
            pending.remove(node)
            progressed = True
        if not progressed:
            names = ", ".join(n.name for n in pending)
            raise UnsupportedModelError(f"the functional graph has layers whose inputs never arrive: {names}.")
    return out


# ---------------------------------------------------------------------------------------------
# Writing (Keras 3 JSON)
# ---------------------------------------------------------------------------------------------

def _layer_json(node: LayerNode, where_prefix: str = "") -> dict:
    where = f"layer {node.name!r} ({node.class_name})"
    if node.class_name == "InputLayer":
        return {"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": list(node.batch_shape), "dtype": node.dtype, "sparse": False,
                           "name": node.name},
                "registered_name": None}
    if node.class_name not in RULES:
        raise UnsupportedModelError(f"{where}: cannot be written as a Keras layer.")
    return keras_layer_config(node.class_name, node.name, node.args, node.trainable, _layer_json, where,
                              dtype=node.dtype)


def _tensor_json(ref: TensorRef, shapes) -> dict:
    shape = shapes.get((ref.layer, ref.node))
    shape = list(shape[ref.index]) if shape is not None and ref.index < len(shape) else None
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": [ref.layer, ref.node, ref.index]}}


def keras3_model_config(model: ModelNode, compile_config: Optional[dict] = None) -> dict:
    """The config.json Keras 3 writes for this model (what keras.saving.deserialize_keras_object takes)."""
    if model.kind == "Sequential":
        layers = [_layer_json(n) for n in model.layers]
        body = {"name": model.name, "trainable": True,
                "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                          "registered_name": None},
                "layers": layers}
        cfg = {"module": "keras", "class_name": "Sequential", "config": body, "registered_name": None}
        if model.layers and model.layers[0].class_name == "InputLayer":
            cfg["build_config"] = {"input_shape": list(model.layers[0].batch_shape)}
    else:
        shapes = output_shapes(model)
        layers = []
        for node in model.layers:
            entry = _layer_json(node)
            entry["name"] = node.name
            entry["inbound_nodes"] = []
            for call in node.calls:
                if isinstance(call.inputs, list):
                    args = [[_tensor_json(r, shapes) for r in call.inputs]]
                else:
                    args = [_tensor_json(call.inputs, shapes)]
                kwargs: Dict[str, Any] = {}
                if call.initial_state is not None:
                    kwargs["initial_state"] = [_tensor_json(r, shapes) for r in call.initial_state]
                entry["inbound_nodes"].append({"args": args, "kwargs": kwargs})
            layers.append(entry)
        outputs = [list(r) for r in model.outputs]
        body = {"name": model.name, "trainable": True, "layers": layers,
                "input_layers": [list(r) for r in model.inputs],
                "output_layers": outputs[0] if model.single_output and len(outputs) == 1 else outputs}
        cfg = {"module": "keras.src.models.functional", "class_name": "Functional", "config": body,
               "registered_name": "Functional"}
    if compile_config:
        cfg["compile_config"] = compile_config
    return cfg
