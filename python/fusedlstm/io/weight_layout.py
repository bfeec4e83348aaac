"""Where each layer's weights live in Keras files, and the conversions old files need.

Keras 3 (`.weights.h5`, and `model.weights.h5` inside `.keras`) does not use layer
names: saving_lib walks the model's attributes and names each layer after its
class, made unique in order of `model.layers` — `layers/lstm`, `layers/lstm_1`,
`layers/dense` — with the variables of each saveable object in a `vars` group
(`layers/lstm/cell/vars/0..2` for an LSTM, whose weights belong to its cell).
So the path of a layer depends on the class names of the layers before it, and
for a functional model on Keras's own topological order, reproduced here in
`keras_layer_order` so a file we write loads into the model Keras rebuilds.

Legacy `.h5` files (Keras 2, or Keras 3's legacy writer) name groups after
layers and list each group's datasets in a `weight_names` attribute; loading is
by order of the layers that have weights, as Keras does. Two conversions apply
there, as in Keras 2's loader: CuDNNLSTM and CuDNNGRU weights (per-gate transposed
kernels; 8H biases summed into 4H, 6H biases reshaped to GRU(reset_after=True)'s
(2, 3H)) and Keras 1 LSTMs (12 separate gate arrays, gate order i, c, f, o).
"""

from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from .layer_rules import RECURRENT, UnsupportedModelError, snake_case
from .model_config import LayerNode, ModelNode, TensorRef

__all__ = ["Saveable", "saveables", "layer_var_names", "keras_layer_order", "keras3_layer_paths",
           "layers_with_weights", "convert_legacy_layer_weights", "cudnn_to_keras_lstm",
           "keras_to_cudnn_lstm", "cudnn_to_keras_gru", "keras_to_cudnn_gru", "legacy_weight_names"]


class Saveable(NamedTuple):
    subpath: str  # below the layer's own group ("" = the layer itself)
    group_name: str  # the 'name' attribute Keras puts on the saveable's vars group
    var_names: Tuple[str, ...]  # Keras variable names, in `vars/0..n-1` order


def saveables(node: LayerNode) -> List[Saveable]:
    """The layer and every object inside it that Keras saves, variables in get_weights() order."""
    cls, a = node.class_name, node.args
    if cls in RECURRENT:  # the weights belong to the cell: 'lstm_cell', 'gru_cell', 'simple_rnn_cell'
        names = ("kernel", "recurrent_kernel", "bias") if a["use_bias"] else ("kernel", "recurrent_kernel")
        return [Saveable("", node.name, ()), Saveable("cell", snake_case(cls) + "_cell", names)]
    if cls == "RNN":  # RNN(cell): the cell's own name
        cell = a["cell"]
        names = ("kernel", "recurrent_kernel", "bias") if cell.args["use_bias"] else ("kernel", "recurrent_kernel")
        return [Saveable("", node.name, ()), Saveable("cell", cell.name, names)]
    if cls == "Dense":
        return [Saveable("", node.name, ("kernel", "bias") if a["use_bias"] else ("kernel",))]
    if cls == "Embedding":
        return [Saveable("", node.name, ("embeddings",))]
    if cls == "Conv1D":
        return [Saveable("", node.name, ("kernel", "bias") if a["use_bias"] else ("kernel",))]
    if cls in ("BatchNormalization", "LayerNormalization"):
        # Keras saves trainable variables, then the moving statistics (BatchNormalization).
        scale = a["scale"] or a.get("rms_scaling", False)
        center = a["center"] and not a.get("rms_scaling", False)
        names = (("gamma",) if scale else ()) + (("beta",) if center else ())
        if cls == "BatchNormalization":
            names += ("moving_mean", "moving_variance")
        return [Saveable("", node.name, names)]
    if cls == "PReLU":
        return [Saveable("", node.name, ("alpha",))]
    if cls in ("Bidirectional", "TimeDistributed"):
        inner = [("forward_layer", a["layer"]), ("backward_layer", a["backward_layer"])] \
            if cls == "Bidirectional" else [("layer", a["layer"])]
        out = [Saveable("", node.name, ())]
        for attr, sub in inner:
            out += [Saveable(f"{attr}/{s.subpath}".rstrip("/"), s.group_name, s.var_names) for s in saveables(sub)]
        return out
    return [Saveable("", node.name, ())]


def layer_var_names(node: LayerNode) -> List[str]:
    """'cell/kernel'-style names of the layer's weights, in get_weights() order."""
    return [f"{s.subpath}/{v}".lstrip("/") for s in saveables(node) for v in s.var_names]


def _call_inputs(node: LayerNode, call_index: int) -> List[TensorRef]:
    call = node.calls[call_index]
    refs = list(call.inputs) if isinstance(call.inputs, list) else [call.inputs]
    return refs + list(call.initial_state or [])


def keras_layer_order(model: ModelNode) -> List[LayerNode]:
    """`model.layers` in the order Keras 3 gives them after rebuilding the model.

    Sequential: the layers without the InputLayer. Functional: keras.src.ops.function.map_graph's
    order — a depth-first walk from the outputs assigns each layer its first-visit index and
    each call its depth (longest path to an output); layers sort by depth, deepest first, ties
    by first-visit index.
    """
    if model.kind == "Sequential":
        return [n for n in model.layers if n.class_name != "InputLayer"]
    by_name = {n.name: n for n in model.layers}
    finished: Dict[Tuple[str, int], bool] = {}
    in_progress = set()
    post_order: List[Tuple[str, int]] = []
    first_visit: Dict[str, int] = {}

    def visit(ref: TensorRef) -> None:
        key = (ref.layer, ref.node)
        if key in finished:
            return
        if key in in_progress:
            raise UnsupportedModelError(f"the functional graph has a cycle through layer {ref.layer!r}.")
        first_visit.setdefault(ref.layer, len(first_visit))
        in_progress.add(key)
        node = by_name[ref.layer]
        if node.class_name != "InputLayer":
            for parent in _call_inputs(node, ref.node):
                visit(parent)
        in_progress.discard(key)
        finished[key] = True
        post_order.append(key)

    for out in model.outputs:
        visit(out)
    node_depth: Dict[Tuple[str, int], int] = {}
    layer_depth: Dict[str, int] = {}
    for key in reversed(post_order):
        depth = max(node_depth.setdefault(key, 0), layer_depth.get(key[0], 0))
        layer_depth[key[0]] = depth
        node_depth[key] = depth
        node = by_name[key[0]]
        if node.class_name != "InputLayer":
            for parent in _call_inputs(node, key[1]):
                pkey = (parent.layer, parent.node)
                node_depth[pkey] = max(depth + 1, node_depth.get(pkey, 0))
    for ref in model.inputs:  # inputs no output depends on still belong to the model
        if ref.layer not in layer_depth:
            layer_depth[ref.layer] = 0
            first_visit[ref.layer] = -1
    ordered = sorted(layer_depth, key=lambda name: (-layer_depth[name], first_visit[name]))
    return [by_name[name] for name in ordered]


def keras3_layer_paths(model: ModelNode) -> List[Tuple[LayerNode, str]]:
    """Each layer with its group in a Keras 3 weights file ('layers/lstm_1')."""
    used: Dict[str, int] = {}
    out = []
    for node in keras_layer_order(model):
        base = snake_case(node.class_name)
        if base in used:
            used[base] += 1
            name = f"{base}_{used[base]}"
        else:
            used[base] = 0
            name = base
        out.append((node, f"layers/{name}"))
    return out


def layers_with_weights(model: ModelNode) -> List[LayerNode]:
    """The layers a legacy .h5 file lists weights for, in the order loading pairs them."""
    return [n for n in keras_layer_order(model) if layer_var_names(n)]


def legacy_weight_names(model_name: str, node: LayerNode) -> List[str]:
    """Dataset names Keras 3's legacy writer uses ('sequential/lstm/lstm_cell/kernel')."""
    out = []
    for s in saveables(node):
        # Keras names a nested object after itself ('lstm_cell', 'forward_lstm'), not after the attribute.
        parts = [model_name, node.name] + (_nested_names(node, s) if s.subpath else [])
        out += ["/".join(parts + [v]) for v in s.var_names]
    return out


def _nested_names(node: LayerNode, s: Saveable) -> List[str]:
    a = node.args
    head = s.subpath.split("/")[0]
    if node.class_name in RECURRENT:
        return [snake_case(node.class_name) + "_cell"]
    if node.class_name == "RNN":
        return [a["cell"].name]
    sub = {"forward_layer": a.get("layer"), "backward_layer": a.get("backward_layer"), "layer": a.get("layer")}[head]
    rest = Saveable(s.subpath[len(head) + 1:], s.group_name, s.var_names)
    return [sub.name] + (_nested_names(sub, rest) if rest.subpath else [])


# ---------------------------------------------------------------------------------------------
# Legacy conversions
# ---------------------------------------------------------------------------------------------

def _per_gate(kernel: np.ndarray, fn, gates: int = 4) -> np.ndarray:
    return np.hstack([fn(k) for k in np.hsplit(kernel, gates)])


def cudnn_to_keras_lstm(weights: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Keras 2 CuDNNLSTM [kernel (I,4H), recurrent (H,4H), bias (8H,)] -> LSTM [kernel, recurrent, bias (4H,)].

    CuDNNLSTM handed each gate's (I,H) kernel block to cuDNN as a row-major (H,I)
    matrix W, and cuDNN computes W·x: the equivalent Keras kernel is W.T, i.e. the
    block read column-major. The recurrent blocks are (H,H) matrices used the same
    way (transpose). cuDNN has an input and a recurrent bias; only their sum acts.
    """
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    kernel = _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="F"))
    recurrent = _per_gate(recurrent, lambda k: k.T)
    bias = np.sum(np.split(bias, 2), axis=0)
    return [kernel, recurrent, bias]


def keras_to_cudnn_lstm(weights: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The inverse of cudnn_to_keras_lstm (bias split in equal halves, as Keras 2 did)."""
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    kernel = _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="C"))
    recurrent = _per_gate(recurrent, lambda k: k.T)
    return [kernel, recurrent, np.tile(0.5 * bias, 2)]


def cudnn_to_keras_gru(weights: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Keras 2 CuDNNGRU [kernel (I,3H), recurrent (H,3H), bias (6H,)] -> GRU(reset_after=True) [.., bias (2,3H)].

    The gate blocks are Keras's z, r, h in both (CuDNNGRU reordered them for cuDNN
    when it ran), each handed to cuDNN as CuDNNLSTM's were: kernel blocks read
    column-major, recurrent blocks transposed. The bias is cuDNN's input bias then
    its recurrent bias, which are reset_after=True's two rows (cuDNN, like torch,
    applies the reset gate to W_hh·h + b_hh).
    """
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    kernel = _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="F"), 3)
    recurrent = _per_gate(recurrent, lambda k: k.T, 3)
    return [kernel, recurrent, bias.reshape(2, -1)]


def keras_to_cudnn_gru(weights: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The inverse of cudnn_to_keras_gru."""
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    kernel = _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="C"), 3)
    recurrent = _per_gate(recurrent, lambda k: k.T, 3)
    return [kernel, recurrent, bias.reshape(-1)]


def _convert_gru(node: LayerNode, weights: List[np.ndarray], where: str, notes: List[str]) -> List[np.ndarray]:
    # Keras 2 told the layouts apart by the bias shape alone, as here; other shapes that do not fit are
    # left for the layer's own shape check to name.
    if len(weights) != 3:
        return weights
    kernel, recurrent, bias = weights
    H = recurrent.shape[0] if recurrent.ndim == 2 else 0
    if H and recurrent.shape == (H, 3 * H) and kernel.ndim == 2 and kernel.shape[1] == 3 * H and \
            bias.shape == (6 * H,):
        if not node.args["reset_after"]:
            raise ValueError(f"{where}: the file holds CuDNNGRU weights (bias {weights[2].shape}), which only a "
                             "GRU with reset_after=True computes; the layer has reset_after=False.")
        notes.append(f"{where}: CuDNNGRU weights converted")
        return cudnn_to_keras_gru(weights)
    return weights


def _convert_lstm(node: LayerNode, weights: List[np.ndarray], where: str, notes: List[str]) -> List[np.ndarray]:
    if len(weights) == 12:
        # Keras 1: [W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o, b_o]; Keras 2+ order is i, f, c, o.
        notes.append(f"{where}: Keras 1 LSTM weights (12 arrays) merged")
        weights = [np.concatenate([weights[k], weights[k + 6], weights[k + 3], weights[k + 9]], axis=-1)
                   for k in range(3)]
    if len(weights) == 3 and weights[1].ndim == 2:
        units = weights[1].shape[0]
        if weights[2].shape == (8 * units,):
            notes.append(f"{where}: CuDNNLSTM weights converted")
            return cudnn_to_keras_lstm(weights)
        if weights[2].shape != (4 * units,):
            raise ValueError(f"{where}: the LSTM bias in the file has shape {weights[2].shape}, expected "
                             f"({4 * units},) or CuDNNLSTM's ({8 * units},).")
    return weights


def convert_legacy_layer_weights(node: LayerNode, weights: List[np.ndarray], where: str,
                                 notes: List[str]) -> List[np.ndarray]:
    """A legacy file's arrays for one layer, converted to the layer's Keras 3 get_weights() layout."""
    convert = {"LSTM": _convert_lstm, "GRU": _convert_gru}
    if node.class_name in convert:
        return convert[node.class_name](node, list(weights), where, notes)
    if node.class_name == "Bidirectional" and node.args["layer"].class_name in convert:
        fn = convert[node.args["layer"].class_name]
        half = len(weights) // 2
        fwd = fn(node.args["layer"], list(weights[:half]), where + " (forward)", notes)
        bwd = fn(node.args["backward_layer"], list(weights[half:]), where + " (backward)", notes)
        return fwd + bwd
    if node.class_name == "TimeDistributed":
        return convert_legacy_layer_weights(node.args["layer"], weights, where, notes)
    return list(weights)
