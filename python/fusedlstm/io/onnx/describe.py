"""The model as the exporter sees it: read once, through the model's public description.

`describe(model)` is the only place the exporter touches a model. It reads

* `model.get_config()` — the layers (class_name + config) and, for a functional
  model, which tensors each layer call consumes;
* `model.get_layer(name).get_weights()` — each layer's weights in Keras order;
* `model.inputs` / `model.outputs` — names, shapes and dtypes of the graph's ends,

and returns a `ModelSpec`: the layer calls in an order where every call comes
after the calls producing its inputs. Two config dialects are understood: the
one fusedlstm writes today (a "nodes" list of calls) and Keras 3's (each layer
carries its "inbound_nodes"), so the exporter keeps working when the model's
get_config moves to Keras's format.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from ..layer_rules import CELLS
from .errors import OnnxExportError

__all__ = ["Ref", "InputSpec", "LayerCall", "ModelSpec", "describe"]


class Ref(NamedTuple):
    """Output `index` of call number `node` of layer `layer` (Keras's keras_history)."""
    layer: str
    node: int
    index: int


@dataclass
class InputSpec:
    name: str
    shape: Tuple[Optional[int], ...]  # batch axis first; None = free
    dtype: str
    ref: Ref


@dataclass
class LayerCall:
    layer: str            # the layer's name (weights are looked up by it)
    class_name: str
    config: dict          # the layer's constructor arguments
    inputs: List[Ref]     # the main input(s)
    states: List[Ref]     # initial_state tensors, if any
    training: Optional[bool]
    node: int             # this call's number among the layer's calls


@dataclass
class ModelSpec:
    name: str
    inputs: List[InputSpec]
    calls: List[LayerCall]
    outputs: List[Ref]
    output_names: List[str]
    weights: Callable[[str], list] = field(repr=False)


def describe(model) -> ModelSpec:
    """The exporter's view of `model` (a built Sequential or functional model)."""
    name = getattr(model, "name", type(model).__name__)
    if not getattr(model, "built", False) or not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{name}' is not built: its input shape and weights do not exist yet. Build it "
            "(call it on data, or give it an Input) before exporting.")
    cfg = model.get_config()
    if "class_name" in cfg and isinstance(cfg.get("config"), dict):
        cfg = cfg["config"]  # a serialized {"class_name", "config"} envelope
    for entry in cfg.get("layers", []):
        _as_fused(entry)
    inputs = [InputSpec(t.name, tuple(t.shape), str(t.dtype), None) for t in model.inputs]
    if "nodes" in cfg:
        calls, in_refs, out_refs = _ours_functional(cfg)
    elif any("inbound_nodes" in entry for entry in cfg.get("layers", [])):
        calls, in_refs, out_refs = _keras_functional(cfg)
    else:
        calls, in_refs, out_refs = _sequential(cfg, inputs)
    if len(in_refs) != len(inputs):
        raise OnnxExportError(f"Model '{name}': its config names {len(in_refs)} inputs, but the model has "
                              f"{len(inputs)}.")
    for spec, ref in zip(inputs, in_refs):
        spec.ref = ref
        spec.name = ref.layer  # the Input layer's name: the graph input's name
    out_names = _output_names(out_refs)

    def weights(layer_name):
        return [w for w in model.get_layer(layer_name).get_weights()]

    return ModelSpec(name, inputs, _toposort(calls, in_refs, name), out_refs, out_names, weights)


def _as_fused(entry) -> None:
    """Rewrite an RNN(cell) entry (and one inside Bidirectional) in place as the LSTM, GRU or
    SimpleRNN it runs as: the cell's arguments plus RNN's options, the same weights."""
    if not isinstance(entry, dict):
        return
    cfg = entry.get("config")
    if not isinstance(cfg, dict):
        return
    if entry.get("class_name") == "Bidirectional":
        _as_fused(cfg.get("layer"))
        _as_fused(cfg.get("backward_layer"))
    elif entry.get("class_name") == "RNN" and isinstance(cfg.get("cell"), dict):
        cell = cfg["cell"]
        if cell.get("class_name") in CELLS:
            entry["class_name"] = CELLS[cell["class_name"]]
            entry["config"] = dict(cell.get("config") or {}, **{k: v for k, v in cfg.items() if k != "cell"})


# --- dialects ---------------------------------------------------------------------------

def _entries(cfg):
    """layer name -> (class_name, config) for every non-input layer."""
    out = {}
    for entry in cfg.get("layers", []):
        cls = entry["class_name"]
        lcfg = entry.get("config", {})
        if cls == "InputLayer":
            continue
        out[entry.get("name", lcfg.get("name"))] = (cls, lcfg)
    return out


def _ours_functional(cfg):
    layers = _entries(cfg)
    counts: Dict[str, int] = {}
    calls = []
    for n in cfg["nodes"]:
        cls, lcfg = layers[n["layer"]]
        refs = [Ref(*r) for r in n["inputs"]]
        k = int(n.get("n_state", 0) or 0)
        main, states = refs[:len(refs) - k], refs[len(refs) - k:]
        node = counts.get(n["layer"], 0)
        counts[n["layer"]] = node + 1
        calls.append(LayerCall(n["layer"], cls, lcfg, main, states, n.get("training"), node))
    return calls, [Ref(*r) for r in cfg["inputs"]], [Ref(*r) for r in cfg["outputs"]]


def _keras_refs(value):
    """Every __keras_tensor__ inside a (nested) Keras 3 call argument, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [Ref(*value["config"]["keras_history"])]
        return [r for v in value.values() for r in _keras_refs(v)]
    if isinstance(value, (list, tuple)):
        if len(value) == 3 and isinstance(value[0], str) and all(isinstance(v, int) for v in value[1:]):
            return [Ref(*value)]
        return [r for v in value for r in _keras_refs(v)]
    return []


def _keras_functional(cfg):
    calls = []
    for entry in cfg["layers"]:
        if entry["class_name"] == "InputLayer":
            continue
        name = entry.get("name", entry["config"].get("name"))
        for k, node in enumerate(entry.get("inbound_nodes", [])):
            kwargs = dict(node.get("kwargs", {}))
            states = _keras_refs(kwargs.pop("initial_state", None))
            training = kwargs.pop("training", None)
            main = _keras_refs(node.get("args", []))
            calls.append(LayerCall(name, entry["class_name"], entry["config"], main, states, training, k))

    def refs(v):
        if v and isinstance(v[0], str):
            v = [v]
        return [Ref(*r) for r in v]

    return calls, refs(cfg["input_layers"]), refs(cfg["output_layers"])


def _sequential(cfg, inputs):
    if len(inputs) != 1:
        raise OnnxExportError(f"A Sequential config with {len(inputs)} model inputs cannot be read.")
    source = Ref(inputs[0].name, 0, 0)
    prev, calls = source, []
    for entry in cfg.get("layers", []):
        lcfg = entry.get("config", {})
        if entry["class_name"] == "InputLayer":
            source = prev = Ref(lcfg.get("name", inputs[0].name), 0, 0)
            continue
        calls.append(LayerCall(lcfg["name"], entry["class_name"], lcfg, [prev], [], None, 0))
        prev = Ref(lcfg["name"], 0, 0)
    return calls, [source], [prev]


# --- order and names -----------------------------------------------------------------------

def _toposort(calls, in_refs, model_name):
    """Calls ordered so that each comes after the producers of its inputs."""
    ready = {(r.layer, r.node) for r in in_refs}
    pending, ordered = list(calls), []
    while pending:
        rest = []
        for c in pending:
            if all((r.layer, r.node) in ready for r in c.inputs + c.states):
                ordered.append(c)
                ready.add((c.layer, c.node))
            else:
                rest.append(c)
        if len(rest) == len(pending):
            names = ", ".join(sorted({c.layer for c in rest}))
            raise OnnxExportError(f"Model '{model_name}': the inputs of layer(s) {names} never become available.")
        pending = rest
    return ordered


def _output_names(refs):
    """'dense' for a layer's first output; 'lstm/1/2'-style names for the rest."""
    names, seen = [], set()
    for r in refs:
        base = r.layer if (r.node, r.index) == (0, 0) else f"{r.layer}/{r.node}/{r.index}"
        name, k = base, 1
        while name in seen:
            name, k = f"{base}#{k}", k + 1
        seen.add(name)
        names.append(name)
    return names
