"""model.summary(): Keras 3's box table (without rich's colours).

Columns "Layer (type)", "Output Shape", "Param #" (plus "Connected to" for a
functional model that is not a plain chain), one row per layer with cells
word-wrapped, then the Total / Trainable / Non-trainable parameter counts with
their float32 memory size, as keras.src.utils.summary_utils prints them.
"""

import shutil
import textwrap

from ..layers.base import shape_str
from ..layers.core import InputLayer
from .graph import nodes_in_call_order


def readable_memory_size(nbytes):
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    for unit in units:
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} {units[-1]}"


def _layer_node(tensor_ids, layer):
    """The node through which `layer` takes part in the model (its first one there)."""
    for node in layer._inbound_nodes:
        if all(id(o) in tensor_ids for o in node.outputs):
            return node
    return layer._inbound_nodes[0] if layer._inbound_nodes else None


def _shape_cell(node):
    if node is None:
        return "?"
    shapes = [o.shape for o in node.outputs]
    if len(shapes) == 1:
        return shape_str(shapes[0])
    return "[" + ", ".join(shape_str(s) for s in shapes) + "]"


def _connections(node):
    parts = []
    for t in node.inputs if node is not None else []:
        layer, src, idx = t._keras_history
        parts.append(f"{layer.name}[{layer._inbound_nodes.index(src)}][{idx}]")
    return ", ".join(parts) or "-"


def _is_chain(model, tensor_ids, layers):
    for layer in layers:
        nodes = [n for n in layer._inbound_nodes if all(id(o) in tensor_ids for o in n.outputs)]
        if len(nodes) > 1 or (nodes and len(nodes[0].inputs) > 1):
            return False
    return len(model.inputs) == 1 and len(model.outputs) == 1


def _widths(line_length, positions, n):
    """Cell widths (padding included) as rich lays out keras's fixed-width columns."""
    widths, cur = [], 0
    for p in positions:
        w = int(p * line_length) - cur
        widths.append(w + 2)
        cur += w
    excess = sum(widths) - (line_length - (n + 1))
    if excess <= 0:
        return widths
    # rich's last-resort ratio_reduce with equal ratios (Python's round, as rich uses).
    out, remaining, ratio = [], excess, n
    for w in widths:
        d = min(w, round(remaining / ratio))
        out.append(w - d)
        remaining -= d
        ratio -= 1
    return out


def _row(cells, widths, aligns):
    wrapped = [textwrap.wrap(c, max(w - 2, 1), break_long_words=True, break_on_hyphens=False) or [""]
               for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = []
        for lines_c, w, a in zip(wrapped, widths, aligns):
            text = lines_c[i] if i < len(lines_c) else ""
            inner = w - 2
            parts.append(" " + (text.rjust(inner) if a == "right" else text.ljust(inner)) + " ")
        lines.append("│" + "│".join(parts) + "│")
    return lines


def summary_lines(model, line_length=None, show_trainable=False, stack=False):
    """The table's lines; `stack`: a Sequential model (always the three-column table)."""
    # Tensors of this model's graph (a shared layer has nodes in other models too).
    tensor_ids = {id(o) for node in nodes_in_call_order(model.outputs) for o in node.outputs}
    layers = model.layers
    chain = stack or _is_chain(model, tensor_ids, layers)
    if chain:
        default, positions = 88, [0.45, 0.80, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #"]
        aligns = ["left", "left", "right"]
    else:
        default, positions = 108, [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["left", "left", "right", "left"]
    if show_trainable:
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    if line_length is None:
        line_length = min(default, shutil.get_terminal_size().columns - 4)
    n = len(header)
    widths = _widths(line_length, positions, n)
    top = "┏" + "┳".join("━" * w for w in widths) + "┓"
    head = "┃" + "┃".join(" " + (h.rjust(w - 2) if a == "right" else h.ljust(w - 2)) + " "
                          for h, w, a in zip(header, widths, aligns)) + "┃"
    sep_head = "┡" + "╇".join("━" * w for w in widths) + "┩"
    sep = "├" + "┼".join("─" * w for w in widths) + "┤"
    bottom = "└" + "┴".join("─" * w for w in widths) + "┘"
    out = [f'Model: "{model.name}"', top, head, sep_head]
    for k, layer in enumerate(layers):
        node = _layer_node(tensor_ids, layer)
        params = f"{layer.count_params():,}" if layer.built and not isinstance(layer, InputLayer) else "0"
        cells = [f"{layer.name} ({type(layer).__name__})", _shape_cell(node), params]
        if not chain:
            cells.append(_connections(node))
        if show_trainable:
            cells.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        if k:
            out.append(sep)
        out.extend(_row(cells, widths, aligns))
    out.append(bottom)
    trainable = sum(v.value.size for v in model.trainable_weights)
    total = sum(v.value.size for v in model.weights)
    nbytes = {id(v): v.value.nbytes for v in model.weights}
    tb = sum(nbytes[id(v)] for v in model.trainable_weights)
    allb = sum(nbytes.values())
    out.append(f" Total params: {total:,} ({readable_memory_size(allb)})")
    out.append(f" Trainable params: {trainable:,} ({readable_memory_size(tb)})")
    out.append(f" Non-trainable params: {total - trainable:,} ({readable_memory_size(allb - tb)})")
    return out


def print_summary(model, line_length=None, print_fn=None, show_trainable=False, stack=False):
    lines = summary_lines(model, line_length, show_trainable, stack)
    if print_fn is None:
        print("\n".join(lines))
    else:
        print_fn("\n".join(lines))
