"""Our side of the torch interchange: the LSTM/GRU/SimpleRNN (or Bidirectional) layers a torch
module's weights go into or come from, each checked to compute what the module computes.
"""

from typing import Dict, List, Tuple

import numpy as np

from ..layers import Bidirectional, Layer
from ..models import Functional
from .torch_layout import (CELLS, GRU_CELL, RNN_CELL, Cell, check_module, module_weights, require_torch,
                           set_module_weights, torch_activations)


def _is_cell(cell: Cell, layer) -> bool:
    return isinstance(layer, cell.layer) or (isinstance(layer, Bidirectional)
                                             and isinstance(layer.forward_layer, cell.layer))


def _is_one_layer(target) -> bool:
    return isinstance(target, Layer) and not isinstance(target, Functional)  # a model is a Layer too


def _targets(cell: Cell, target) -> list:
    """Our layers of the cell's class (or Bidirectional of it), in order, from a layer, a list or a model."""
    kind = cell.layer.__name__
    if _is_cell(cell, target):
        return [target]
    if _is_one_layer(target):
        raise ValueError(f"layer {target.name!r} ({type(target).__name__}) is not {cell.noun} or "
                         f"Bidirectional({kind}); torch.nn.{cell.torch_name} interchange covers {kind} layers only.")
    layers = list(getattr(target, "layers", target))
    found = []
    for layer in layers:
        if _is_cell(cell, layer):
            found.append(layer)
        elif layer.weights:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has weights but is not {cell.noun} or "
                             f"Bidirectional({kind}); pass the {kind} layers themselves.")
    return found


def target_cell(target) -> Cell:
    """The cell of the first recurrent layer of a target (what a state_dict is read as)."""
    layers = [target] if _is_one_layer(target) else list(getattr(target, "layers", target))
    for layer in layers:
        for cell in CELLS:
            if _is_cell(cell, layer):
                return cell
    if _is_one_layer(target):
        raise ValueError(f"layer {target.name!r} ({type(target).__name__}) is not an LSTM, GRU or SimpleRNN "
                         "(or a Bidirectional of one): a torch state_dict cannot be loaded into it.")
    raise ValueError("The target holds no LSTM, GRU or SimpleRNN layer (or a Bidirectional of one) to load the "
                     "torch state_dict into.")


def load_module(cell: Cell, target, module) -> None:
    check_module(cell, module)
    set_layers(cell, target, module_weights(cell, module), module.bidirectional, f"The torch {cell.torch_name}",
                torch_activations(cell, module))


def _activation_name(layer, attr: str) -> str:
    fn = getattr(layer, attr)
    return getattr(fn, "__name__", str(fn))


def set_layers(cell: Cell, target, weights: List[List[np.ndarray]], bidirectional: bool, what: str,
                activations: Dict[str, Tuple[str, ...]]) -> None:
    """Keras-layout weights (one list per torch layer) into our layers; every layer is checked first."""
    layers = _targets(cell, target)
    kind = cell.layer.__name__
    if len(layers) != len(weights):
        raise ValueError(f"{what} has num_layers={len(weights)}, the target has {len(layers)} "
                         f"{kind} layers ({', '.join(l.name for l in layers)}).")
    plan = []
    for k, (layer, arrays) in enumerate(zip(layers, weights)):
        bidi = isinstance(layer, Bidirectional)
        if bidi != bidirectional:
            raise ValueError(f"layer {layer.name!r}: {what} is {'' if bidirectional else 'not '}"
                             f"bidirectional but the layer is {'a Bidirectional' if bidi else 'a plain ' + kind}.")
        if bidi and layer.merge_mode != "concat":
            raise ValueError(f"layer {layer.name!r}: torch concatenates both directions; the layer's merge_mode "
                             f"is {layer.merge_mode!r}.")
        for sub in ([layer.forward_layer, layer.backward_layer] if bidi else [layer]):
            _check_torch_computes(cell, sub, activations)
        current = layer.get_weights()
        if [c.shape for c in current] != [a.shape for a in arrays]:
            raise ValueError(f"layer {layer.name!r} (torch layer {k}): expected weight shapes "
                             f"{[c.shape for c in current]}, {what} gives {[a.shape for a in arrays]}.")
        plan.append((layer, arrays))
    for layer, arrays in plan:
        layer.set_weights(arrays)


def _check_torch_computes(cell: Cell, layer, activations: Dict[str, Tuple[str, ...]]) -> None:
    """Refuse a layer whose cell the torch module does not compute (activations, GRU's reset_after)."""
    if cell is GRU_CELL and not layer.reset_after:
        raise ValueError(f"layer {layer.name!r} has reset_after=False: it applies the reset gate before the recurrent "
                         "product, torch.nn.GRU after it (Keras's reset_after=True, the default); torch.nn.GRU "
                         "cannot compute this layer.")
    for attr, allowed in activations.items():
        name = _activation_name(layer, attr)
        if name not in allowed:
            raise ValueError(f"layer {layer.name!r}: {attr}={name!r}, but torch.nn.{cell.torch_name} uses "
                             f"{' or '.join(repr(a) for a in allowed)}.")


def layers_from_module(cell: Cell, module, return_sequences: bool, return_state: bool) -> list:
    check_module(cell, module)
    if module.dropout and module.training:
        raise ValueError(f"The torch {cell.torch_name} applies dropout between layers in training mode; call "
                         f"{cell.arg}.eval() first (dropout is not part of the conversion).")
    # What each torch module computes, spelled out rather than left to our defaults.
    fixed = {"activation": module.nonlinearity} if cell is RNN_CELL else \
        {"activation": "tanh", "recurrent_activation": "sigmoid"}
    if cell is GRU_CELL:
        fixed["reset_after"] = True
    out = []
    for k, arrays in enumerate(module_weights(cell, module)):
        last = k == module.num_layers - 1
        kwargs = dict(units=module.hidden_size, use_bias=bool(module.bias), **fixed,
                      return_sequences=(not last) or return_sequences, return_state=last and return_state)
        if module.bidirectional:
            out.append(Bidirectional(cell.layer(**kwargs), merge_mode="concat", weights=arrays))
        else:
            out.append(cell.layer(**kwargs, weights=arrays))
    return out


def module_from_layers(cell: Cell, source, batch_first: bool):
    torch = require_torch()
    T, kind = cell.torch_name, cell.layer.__name__
    layers = _targets(cell, source)
    if not layers:
        raise ValueError(f"Received no {kind} layers to export.")
    bidi = [isinstance(layer, Bidirectional) for layer in layers]
    if len(set(bidi)) != 1:
        raise ValueError(f"torch.nn.{T} is bidirectional in every layer or in none; the layers mix both.")
    cells = [[l.forward_layer, l.backward_layer] if b else [l] for l, b in zip(layers, bidi)]
    units = {c.units for pair in cells for c in pair}
    if len(units) != 1:
        raise ValueError(f"torch.nn.{T} has one hidden size; the layers have units {sorted(units)}.")
    use_bias = {c.use_bias for pair in cells for c in pair}
    if len(use_bias) != 1:
        raise ValueError(f"torch.nn.{T} has biases in every layer or in none; the layers mix both.")
    for i, (layer, pair) in enumerate(zip(layers, cells)):
        for c in pair:
            _check_torch_computes(cell, c, torch_activations(cell))
            if i < len(layers) - 1 and not c.return_sequences:
                raise ValueError(f"layer {c.name!r} returns only its last output, so it cannot feed the next "
                                 "torch layer; set return_sequences=True.")
        if bidi[i] and layer.merge_mode != "concat":
            raise ValueError(f"layer {layer.name!r}: merge_mode={layer.merge_mode!r}, torch concatenates.")
        if not bidi[i] and pair[0].go_backwards:
            raise ValueError(f"layer {pair[0].name!r} has go_backwards=True, which torch.nn.{T} cannot express.")
        if not all(c.built for c in pair):
            raise ValueError(f"layer {layer.name!r} is not built: its input size is unknown yet.")
    extra = {}
    if cell is RNN_CELL:
        acts = sorted({_activation_name(c, "activation") for pair in cells for c in pair})
        if len(acts) != 1:
            raise ValueError(f"torch.nn.RNN has one nonlinearity for every layer; the layers use {acts}.")
        extra["nonlinearity"] = acts[0]
    input_size = cells[0][0].kernel.shape[0]
    module = getattr(torch.nn, T)(input_size=input_size, hidden_size=units.pop(), num_layers=len(layers),
                                  bias=use_bias.pop(), batch_first=batch_first, bidirectional=bidi[0], **extra)
    set_module_weights(cell, module, [layer.get_weights() for layer in layers])
    return module
