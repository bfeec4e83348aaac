"""PyTorch interchange: torch.nn.LSTM, nn.GRU and nn.RNN weights to and from our LSTM, GRU and SimpleRNN.

Each torch module computes the cell of one Keras layer; only the storage differs.
For layer k of the module (`_reverse` for the backward direction), with G gate
blocks of H units, stacked along torch's first axis and along Keras's last:

    Keras                              torch.nn.LSTM / GRU / RNN
    kernel            (I, GH)          weight_ih_l{k}  (GH, I)  = kernel.T, gate blocks in torch's order
    recurrent_kernel  (H, GH)          weight_hh_l{k}  (GH, H)  = recurrent_kernel.T, likewise
    bias                               bias_ih_l{k}, bias_hh_l{k}  (GH,) each

    LSTM       G=4  Keras i, f, c, o; torch i, f, g, o     bias (4H,)   = bias_ih + bias_hh
    GRU        G=3  Keras z, r, h; torch r, z, n           bias (2, 3H) = [bias_ih; bias_hh]
    SimpleRNN  G=1  activation = nonlinearity (tanh/relu)  bias (H,)    = bias_ih + bias_hh

torch.nn.GRU applies the reset gate after the recurrent product,
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): Keras's GRU(reset_after=True), whose
two bias rows are torch's two biases, so that conversion is exact both ways. A
GRU(reset_after=False) applies r to h before the product; no nn.GRU computes that,
and it is refused. Exporting an LSTM or SimpleRNN puts the whole bias in bias_ih and
zeros in bias_hh (exact: b + 0 = b).

A torch module with num_layers=L is L stacked Keras layers (all but the last
returning sequences); bidirectional=True is Keras's Bidirectional(merge_mode=
'concat'), whose backward outputs Keras also flips back to input order.

A file written by `torch.save(module.state_dict(), path)` loads without building
the torch module (`load_torch_state_dict`; the target layers say which cell the
file holds). Such a file is a pickle: it is read with `torch.load(weights_only=True)`,
whose unpickler builds tensors and plain containers only and refuses any other
class or function a file names, after the zip container's sizes are checked
(fusedlstm.untrusted). Files of torch's pre-1.6 format (not a zip) and pickled
modules (`torch.save(lstm)`) are refused.

torch is imported only by the functions that need it; the weight conversions
take and return NumPy arrays.
"""

import os
import pickle
import re
import zipfile
from typing import Dict, List, Mapping, NamedTuple, Sequence, Tuple

import numpy as np

from .. import untrusted
from ..layers import GRU, LSTM, Bidirectional, Layer, SimpleRNN
from ..models import Functional

__all__ = ["torch_lstm_weights", "set_torch_lstm_weights", "lstm_layers_from_torch", "load_torch_lstm",
           "torch_lstm_from_layers",
           "torch_gru_weights", "set_torch_gru_weights", "gru_layers_from_torch", "load_torch_gru",
           "torch_gru_from_layers",
           "torch_rnn_weights", "set_torch_rnn_weights", "simple_rnn_layers_from_torch", "load_torch_rnn",
           "torch_rnn_from_layers",
           "read_torch_state_dict", "load_torch_state_dict"]


# ---------------------------------------------------------------------------------------------
# The three cells
#
# What differs between LSTM, GRU and RNN is data: the torch class, our layer class, the
# number of gate blocks, the order torch stacks them in, and whether Keras keeps torch's
# two biases (GRU's reset_after=True rows) or their sum. Every function below takes one.
# ---------------------------------------------------------------------------------------------

class _Cell(NamedTuple):
    torch_name: str  # torch.nn.<torch_name>
    layer: type  # our layer class
    noun: str  # "an LSTM", for messages
    gates: int  # G: gate blocks of H along torch's first axis and Keras's last
    order: Tuple[int, ...]  # order[j]: torch's block holding Keras's gate block j
    bias_rows: int  # 1: Keras's bias is bias_ih + bias_hh; 2: Keras keeps both, as rows of (2, GH)
    arg: str  # the torch module's argument name in the public functions


_LSTM = _Cell("LSTM", LSTM, "an LSTM", 4, (0, 1, 2, 3), 1, "lstm")
_GRU = _Cell("GRU", GRU, "a GRU", 3, (1, 0, 2), 2, "gru")  # Keras z, r, h; torch r, z, n
_RNN = _Cell("RNN", SimpleRNN, "a SimpleRNN", 1, (0,), 1, "rnn")
_CELLS = (_LSTM, _GRU, _RNN)
_PUBLIC = {"LSTM": "torch_lstm_weights", "GRU": "torch_gru_weights", "RNN": "torch_rnn_weights"}


def _to_keras_gates(cell: _Cell, a: np.ndarray) -> np.ndarray:
    """Gate blocks stacked along axis 0 in torch's order -> in Keras's order."""
    if cell.gates == 1:
        return a
    blocks = np.split(a, cell.gates, axis=0)
    return np.concatenate([blocks[j] for j in cell.order], axis=0)


def _to_torch_gates(cell: _Cell, a: np.ndarray) -> np.ndarray:
    """Gate blocks stacked along axis 0 in Keras's order -> in torch's order."""
    if cell.gates == 1:
        return a
    blocks = np.split(a, cell.gates, axis=0)
    return np.concatenate([blocks[j] for j in np.argsort(cell.order)], axis=0)


def _activations(cell: _Cell, module=None) -> Dict[str, Tuple[str, ...]]:
    """The activations torch computes (for an RNN: its nonlinearity, or either when unknown)."""
    if cell is _RNN:
        return {"activation": (module.nonlinearity,) if module is not None else ("tanh", "relu")}
    return {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)}


def _require_torch():
    try:
        import torch  # optional dependency: only the torch interchange needs it
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc
    return torch


def _check_module(cell: _Cell, module):
    torch = _require_torch()
    if not isinstance(module, getattr(torch.nn, cell.torch_name)):
        other = next((c for c in _CELLS if isinstance(module, getattr(torch.nn, c.torch_name))), None)
        hint = f" ({_PUBLIC[other.torch_name]} and its siblings take a torch.nn.{other.torch_name})" if other else ""
        raise TypeError(f"Received an invalid value for argument `{cell.arg}`, expected a torch.nn.{cell.torch_name}, "
                        f"got {type(module).__name__}{hint}.")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"torch.nn.LSTM with proj_size={module.proj_size} has no Keras equivalent "
                         "(Keras LSTMs have no projection).")
    return torch


def _suffixes(module):
    return [""] + (["_reverse"] if module.bidirectional else [])


def _keras_arrays(cell: _Cell, w_ih, w_hh, b_ih, b_hh) -> List[np.ndarray]:
    """One direction's torch tensors (as float32 arrays; biases None without bias) -> Keras arrays."""
    out = [np.ascontiguousarray(_to_keras_gates(cell, w_ih).T), np.ascontiguousarray(_to_keras_gates(cell, w_hh).T)]
    if b_ih is not None:
        b_ih, b_hh = _to_keras_gates(cell, b_ih), _to_keras_gates(cell, b_hh)
        out.append(np.stack([b_ih, b_hh]) if cell.bias_rows == 2 else b_ih + b_hh)
    return out


def _module_weights(cell: _Cell, module) -> List[List[np.ndarray]]:
    _check_module(cell, module)

    def param(name):
        return getattr(module, name).detach().cpu().numpy().astype(np.float32)

    out = []
    for k in range(module.num_layers):
        arrays = []
        for sfx in _suffixes(module):
            biases = (param(f"bias_ih_l{k}{sfx}"), param(f"bias_hh_l{k}{sfx}")) if module.bias else (None, None)
            arrays += _keras_arrays(cell, param(f"weight_ih_l{k}{sfx}"), param(f"weight_hh_l{k}{sfx}"), *biases)
        out.append(arrays)
    return out


def _set_module_weights(cell: _Cell, module, weights: Sequence[Sequence[np.ndarray]]) -> None:
    torch = _check_module(cell, module)
    weights = [list(w) for w in weights]
    if len(weights) != module.num_layers:
        raise ValueError(f"The torch {cell.torch_name} has num_layers={module.num_layers}, got weights for "
                         f"{len(weights)} layers.")
    H, G = module.hidden_size, cell.gates
    per_dir = 3 if module.bias else 2
    bias_shape = (2, G * H) if cell.bias_rows == 2 else (G * H,)
    plan = []
    for k, arrays in enumerate(weights):
        ndir = len(_suffixes(module))
        if len(arrays) != per_dir * ndir:
            raise ValueError(f"layer {k}: expected {per_dir * ndir} arrays "
                             f"({'kernel, recurrent_kernel' + (', bias' if module.bias else '')}"
                             f"{' per direction' if ndir == 2 else ''}), got {len(arrays)}.")
        for d, sfx in enumerate(_suffixes(module)):
            w_ih = getattr(module, f"weight_ih_l{k}{sfx}")
            kernel, recurrent = (np.asarray(a, dtype=np.float32) for a in arrays[d * per_dir:d * per_dir + 2])
            expect_k = (w_ih.shape[1], G * H)
            for name, arr, exp in (("kernel", kernel, expect_k), ("recurrent_kernel", recurrent, (H, G * H))):
                if arr.shape != exp:
                    raise ValueError(f"layer {k}{sfx} {name}: expected shape {exp}, got {arr.shape}.")
            plan += [(f"weight_ih_l{k}{sfx}", _to_torch_gates(cell, kernel.T)),
                     (f"weight_hh_l{k}{sfx}", _to_torch_gates(cell, recurrent.T))]
            if module.bias:
                bias = np.asarray(arrays[d * per_dir + 2], dtype=np.float32)
                if bias.shape != bias_shape:
                    hint = " (a reset_after=False GRU's bias: torch.nn.GRU cannot compute that GRU)" \
                        if cell is _GRU and bias.shape == (G * H,) else ""
                    raise ValueError(f"layer {k}{sfx} bias: expected shape {bias_shape}, got {bias.shape}{hint}.")
                b_ih, b_hh = (bias[0], bias[1]) if cell.bias_rows == 2 else (bias, np.zeros_like(bias))
                plan += [(f"bias_ih_l{k}{sfx}", _to_torch_gates(cell, b_ih)),
                         (f"bias_hh_l{k}{sfx}", _to_torch_gates(cell, b_hh))]
    with torch.no_grad():
        for name, value in plan:
            param = getattr(module, name)
            param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype, device=param.device))


# ---------------------------------------------------------------------------------------------
# Public conversions, one set per torch module
# ---------------------------------------------------------------------------------------------

def torch_lstm_weights(lstm) -> List[List[np.ndarray]]:
    """Keras-layout weights of a torch.nn.LSTM, one list per layer.

    Each list is [kernel, recurrent_kernel, bias] (no bias when bias=False) as float32;
    for a bidirectional LSTM the backward direction's arrays follow the forward's,
    which is the order of Keras Bidirectional.get_weights().
    """
    return _module_weights(_LSTM, lstm)


def set_torch_lstm_weights(lstm, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout weights (as torch_lstm_weights returns them) into a torch.nn.LSTM.

    Raises ValueError naming the layer and the expected and given shapes on any mismatch;
    nothing is copied unless every array fits.
    """
    _set_module_weights(_LSTM, lstm, weights)


def load_torch_lstm(target, lstm) -> None:
    """Set our LSTM (or Bidirectional) layers' weights from a torch.nn.LSTM.

    target: one layer, a list of layers, or a model whose weighted layers are all
        LSTM/Bidirectional — one per torch layer, built, with matching sizes.
    """
    _load_module(_LSTM, target, lstm)


def lstm_layers_from_torch(lstm, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.LSTM computes (batch-first).

    Returns one LSTM (or Bidirectional(merge_mode='concat')) per torch layer, every one
    but the last with return_sequences=True; their weights are set when they are built
    (e.g. `Sequential([Input((None, lstm.input_size)), *layers])`).
    """
    return _layers_from_module(_LSTM, lstm, return_sequences, return_state)


def torch_lstm_from_layers(source, batch_first: bool = True):
    """A new torch.nn.LSTM with the weights of our stacked LSTM (or Bidirectional) layers.

    source: a layer, a list of layers or a model (its LSTM layers, in order). They must
    stack as torch stacks them: the same units, tanh/sigmoid activations, every layer
    but the last returning sequences, no go_backwards outside Bidirectional.
    """
    return _module_from_layers(_LSTM, source, batch_first)


def torch_gru_weights(gru) -> List[List[np.ndarray]]:
    """Keras-layout weights of a torch.nn.GRU, one list per layer, for GRU(reset_after=True).

    Each list is [kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)] (no bias when
    bias=False) as float32, gates in Keras's order z, r, h (torch's r, z, n reordered);
    the bias rows are torch's bias_ih and bias_hh. For a bidirectional GRU the backward
    direction's arrays follow the forward's (Keras Bidirectional.get_weights() order).
    """
    return _module_weights(_GRU, gru)


def set_torch_gru_weights(gru, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout GRU(reset_after=True) weights (as torch_gru_weights returns them) into a torch.nn.GRU.

    Raises ValueError naming the layer and the expected and given shapes on any mismatch
    (a (3H,) bias is reset_after=False's, which torch cannot compute); nothing is copied
    unless every array fits.
    """
    _set_module_weights(_GRU, gru, weights)


def load_torch_gru(target, gru) -> None:
    """Set our GRU (or Bidirectional(GRU)) layers' weights from a torch.nn.GRU.

    target: one layer, a list of layers, or a model whose weighted layers are all
        GRU/Bidirectional(GRU) with reset_after=True and tanh/sigmoid activations — one
        per torch layer, built, with matching sizes.
    """
    _load_module(_GRU, target, gru)


def gru_layers_from_torch(gru, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.GRU computes (batch-first).

    Returns one GRU(reset_after=True) (or Bidirectional(merge_mode='concat')) per torch
    layer, every one but the last with return_sequences=True; their weights are set when
    they are built (e.g. `Sequential([Input((None, gru.input_size)), *layers])`).
    """
    return _layers_from_module(_GRU, gru, return_sequences, return_state)


def torch_gru_from_layers(source, batch_first: bool = True):
    """A new torch.nn.GRU with the weights of our stacked GRU (or Bidirectional(GRU)) layers.

    source: a layer, a list of layers or a model (its GRU layers, in order). They must
    stack as torch stacks them: reset_after=True, the same units, tanh/sigmoid
    activations, every layer but the last returning sequences, no go_backwards outside
    Bidirectional. A reset_after=False GRU is refused: torch.nn.GRU cannot compute it.
    """
    return _module_from_layers(_GRU, source, batch_first)


def torch_rnn_weights(rnn) -> List[List[np.ndarray]]:
    """Keras-layout SimpleRNN weights of a torch.nn.RNN, one list per layer.

    Each list is [kernel (I, H), recurrent_kernel (H, H), bias (H,) = bias_ih + bias_hh]
    (no bias when bias=False) as float32; for a bidirectional RNN the backward
    direction's arrays follow the forward's. The nonlinearity is rnn.nonlinearity.
    """
    return _module_weights(_RNN, rnn)


def set_torch_rnn_weights(rnn, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout SimpleRNN weights (as torch_rnn_weights returns them) into a torch.nn.RNN.

    The bias goes to bias_ih, zeros to bias_hh. Raises ValueError naming the layer and
    the expected and given shapes on any mismatch; nothing is copied unless every array fits.
    """
    _set_module_weights(_RNN, rnn, weights)


def load_torch_rnn(target, rnn) -> None:
    """Set our SimpleRNN (or Bidirectional(SimpleRNN)) layers' weights from a torch.nn.RNN.

    target: one layer, a list of layers, or a model whose weighted layers are all
        SimpleRNN/Bidirectional(SimpleRNN) whose activation is the RNN's nonlinearity —
        one per torch layer, built, with matching sizes.
    """
    _load_module(_RNN, target, rnn)


def simple_rnn_layers_from_torch(rnn, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.RNN computes (batch-first).

    Returns one SimpleRNN(activation=rnn.nonlinearity) (or Bidirectional(merge_mode=
    'concat')) per torch layer, every one but the last with return_sequences=True; their
    weights are set when they are built.
    """
    return _layers_from_module(_RNN, rnn, return_sequences, return_state)


def torch_rnn_from_layers(source, batch_first: bool = True):
    """A new torch.nn.RNN with the weights of our stacked SimpleRNN (or Bidirectional) layers.

    source: a layer, a list of layers or a model (its SimpleRNN layers, in order). They
    must stack as torch stacks them: the same units, one activation for all, 'tanh' or
    'relu' (torch's nonlinearity), every layer but the last returning sequences, no
    go_backwards outside Bidirectional.
    """
    return _module_from_layers(_RNN, source, batch_first)


# ---------------------------------------------------------------------------------------------
# Our layers
# ---------------------------------------------------------------------------------------------

def _is_cell(cell: _Cell, layer) -> bool:
    return isinstance(layer, cell.layer) or (isinstance(layer, Bidirectional)
                                             and isinstance(layer.forward_layer, cell.layer))


def _is_one_layer(target) -> bool:
    return isinstance(target, Layer) and not isinstance(target, Functional)  # a model is a Layer too


def _targets(cell: _Cell, target) -> list:
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


def _target_cell(target) -> _Cell:
    """The cell of the first recurrent layer of a target (what a state_dict is read as)."""
    layers = [target] if _is_one_layer(target) else list(getattr(target, "layers", target))
    for layer in layers:
        for cell in _CELLS:
            if _is_cell(cell, layer):
                return cell
    if _is_one_layer(target):
        raise ValueError(f"layer {target.name!r} ({type(target).__name__}) is not an LSTM, GRU or SimpleRNN "
                         "(or a Bidirectional of one): a torch state_dict cannot be loaded into it.")
    raise ValueError("The target holds no LSTM, GRU or SimpleRNN layer (or a Bidirectional of one) to load the "
                     "torch state_dict into.")


def _load_module(cell: _Cell, target, module) -> None:
    _check_module(cell, module)
    _set_layers(cell, target, _module_weights(cell, module), module.bidirectional, f"The torch {cell.torch_name}",
                _activations(cell, module))


def _activation_name(layer, attr: str) -> str:
    fn = getattr(layer, attr)
    return getattr(fn, "__name__", str(fn))


def _set_layers(cell: _Cell, target, weights: List[List[np.ndarray]], bidirectional: bool, what: str,
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


def _check_torch_computes(cell: _Cell, layer, activations: Dict[str, Tuple[str, ...]]) -> None:
    """Refuse a layer whose cell the torch module does not compute (activations, GRU's reset_after)."""
    if cell is _GRU and not layer.reset_after:
        raise ValueError(f"layer {layer.name!r} has reset_after=False: it applies the reset gate before the recurrent "
                         "product, torch.nn.GRU after it (Keras's reset_after=True, the default); torch.nn.GRU "
                         "cannot compute this layer.")
    for attr, allowed in activations.items():
        name = _activation_name(layer, attr)
        if name not in allowed:
            raise ValueError(f"layer {layer.name!r}: {attr}={name!r}, but torch.nn.{cell.torch_name} uses "
                             f"{' or '.join(repr(a) for a in allowed)}.")


# ---------------------------------------------------------------------------------------------
# state_dict files
# ---------------------------------------------------------------------------------------------

_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def read_torch_state_dict(path) -> Dict[str, np.ndarray]:
    """The tensors of a file written by `torch.save(module.state_dict(), path)`, as float32 arrays.

    Read with `torch.load(weights_only=True)` (no class or function a file names is
    ever called) after the zip container's checks. Raises ValueError naming the file
    for anything else: a damaged file, torch's pre-1.6 format, a pickled module or
    any object that is not a mapping of names to dense floating-point tensors.
    """
    torch = _require_torch()
    source = untrusted.check_regular_file(path, "a PyTorch state_dict file")
    try:
        with zipfile.ZipFile(source) as zf:
            # torch stores its records uncompressed: they cannot add up to more than the file.
            untrusted.zip_members(zf, source, max_total=untrusted.EXPANSION_FLOOR + os.path.getsize(source))
    except zipfile.BadZipFile:
        raise ValueError(f"{source}: not a PyTorch zip file (torch >= 1.6 writes one); files of the older "
                         "format are not read: load and save them again with a current torch.") from None
    except (OSError, EOFError, UnicodeDecodeError, NotImplementedError) as exc:
        # A damaged central directory: a member name flagged UTF-8 that is not, an unknown zip version.
        raise ValueError(f"{source}: unreadable ({type(exc).__name__}: {exc}).") from None
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice to trust the file; keep the line naming what it refused.
        lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[-1] if lines else "")
        raise ValueError(f"{source}: refused by torch.load(weights_only=True): the file names classes or functions "
                         "other than tensors and containers (a pickled module, or code). Save "
                         f"module.state_dict() instead. ({why[:300]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            AssertionError, OverflowError, MemoryError, RecursionError, zipfile.BadZipFile, UnicodeDecodeError,
            NotImplementedError) as exc:
        # torch.load reports a damaged file through any of these.
        raise ValueError(f"{source}: not a readable PyTorch file ({type(exc).__name__}: "
                         f"{str(exc).strip()[:300]}).") from None
    return _state_arrays(torch, state, source)


def _state_arrays(torch, state, source: str) -> Dict[str, np.ndarray]:
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: expected a state_dict (a mapping of names to tensors), the file holds a "
                         f"{type(state).__name__}.")
    out = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise ValueError(f"{source}: state_dict keys must be strings, got {name!r}.")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: {name!r} is a {type(value).__name__}, expected a tensor.")
        if value.layout != torch.strided or value.is_quantized or value.is_complex() or \
                str(value.dtype).replace("torch.", "") not in _FLOAT_DTYPES:
            raise ValueError(f"{source}: {name!r} is a {value.layout} tensor of {value.dtype}; expected a dense "
                             "floating-point tensor.")
        out[name] = value.detach().to(torch.float32).numpy().copy()
    return out


def _weights_from_state(cell: _Cell, state: Mapping[str, np.ndarray], source: str):
    """(Keras-layout weights per layer, bidirectional) from a torch.nn.LSTM/GRU/RNN's state_dict entries."""
    T, G = cell.torch_name, cell.gates
    found = {}
    for name in state:
        m = _KEY.fullmatch(name)
        if m is None or (m.group(1) == "weight_hr" and cell is not _LSTM):
            raise ValueError(f"{source}: {name!r} is not a torch.nn.{T} weight (expected weight_ih_l0, "
                             "weight_hh_l0, bias_ih_l0, bias_hh_l0, ... with _reverse for the backward direction); "
                             f"pass prefix= when the {T} is part of a larger module.")
        if m.group(1) == "weight_hr":
            raise ValueError(f"{source}: {name!r}: an LSTM with proj_size has no Keras equivalent.")
        found[(m.group(1), int(m.group(2)), bool(m.group(3)))] = state[name]
    if not found:
        raise ValueError(f"{source}: the state_dict holds no torch.nn.{T} weights.")
    layers = 1 + max(k for _, k, _ in found)
    if 2 * layers > len(found):  # every layer has at least two entries: the rest are surely missing
        raise ValueError(f"{source}: the state_dict names layer {layers - 1} but holds only {len(found)} {T} "
                         "entries; it lacks the layers in between.")
    bidirectional = any(rev for _, _, rev in found)
    bias = any(kind.startswith("bias") for kind, _, _ in found)
    needed = [(kind, k, rev) for k in range(layers) for rev in ([False, True] if bidirectional else [False])
              for kind in (("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ()))]
    missing = [f"{kind}_l{k}{'_reverse' if rev else ''}" for kind, k, rev in needed if (kind, k, rev) not in found]
    if missing:
        raise ValueError(f"{source}: the state_dict lacks {', '.join(missing)}.")
    hh = found[("weight_hh", 0, False)]
    if hh.ndim != 2 or hh.shape[0] != G * hh.shape[1] or hh.shape[1] == 0:
        # The three modules name their tensors alike: the gate count tells them apart.
        other = [c for c in _CELLS if hh.ndim == 2 and hh.shape[1] and hh.shape[0] == c.gates * hh.shape[1]]
        hint = f" (the layout of a torch.nn.{other[0].torch_name}: load it into {other[0].layer.__name__} layers)" \
            if other else ""
        raise ValueError(f"{source}: weight_hh_l0 has shape {hh.shape}, expected ({G}H, H) for "
                         f"torch.nn.{T}{hint}.")
    H = hh.shape[1]
    width = None
    out = []
    for k in range(layers):
        arrays = []
        for rev in ([False, True] if bidirectional else [False]):
            sfx = f"_l{k}{'_reverse' if rev else ''}"
            w_ih, w_hh = found[("weight_ih", k, rev)], found[("weight_hh", k, rev)]
            expect_in = width if k else None
            if w_ih.ndim != 2 or w_ih.shape[0] != G * H or (expect_in is not None and w_ih.shape[1] != expect_in):
                raise ValueError(f"{source}: weight_ih{sfx} has shape {w_ih.shape}, expected "
                                 f"({G * H}, {expect_in if expect_in is not None else 'input size'}).")
            if w_hh.shape != (G * H, H):
                raise ValueError(f"{source}: weight_hh{sfx} has shape {w_hh.shape}, expected {(G * H, H)}.")
            b_ih = b_hh = None
            if bias:
                b_ih, b_hh = found[("bias_ih", k, rev)], found[("bias_hh", k, rev)]
                for nm, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
                    if b.shape != (G * H,):
                        raise ValueError(f"{source}: {nm}{sfx} has shape {b.shape}, expected {(G * H,)}.")
            arrays += _keras_arrays(cell, w_ih, w_hh, b_ih, b_hh)
        out.append(arrays)
        width = H * (2 if bidirectional else 1)
    return out, bidirectional


def load_torch_state_dict(target, source, prefix: str = "") -> None:
    """Set our LSTM, GRU or SimpleRNN (or Bidirectional) layers from a torch.nn.LSTM/GRU/RNN's state_dict.

    target: as for load_torch_lstm / load_torch_gru / load_torch_rnn (one layer per
        torch layer, built, matching sizes); its first recurrent layer says which torch
        module the state_dict is read as (a GRU must have reset_after=True; a SimpleRNN's
        activation, 'tanh' or 'relu', must be the RNN's nonlinearity, which a state_dict
        does not record).
    source: a path to a file written by `torch.save(module.state_dict(), path)`, or the
        state_dict itself (a mapping of names to tensors or arrays).
    prefix: the module's name inside a larger module's state_dict (e.g. "encoder.rnn."):
        only the entries under it are read.
    Every array is checked against the layers before any is set. Raises ValueError
    naming the entry and the expected and found shapes.
    """
    cell = _target_cell(target)
    if isinstance(source, Mapping):
        where = "the state_dict"
        arrays = {k: v for k, v in source.items() if isinstance(v, np.ndarray)}
        tensors = {k: v for k, v in source.items() if not isinstance(v, np.ndarray)}
        state = _state_arrays(_require_torch(), tensors, where) if tensors else {}
        for k, v in arrays.items():
            if v.dtype.kind != "f":
                raise ValueError(f"{where}: {k!r} has dtype {v.dtype}, expected floating point.")
            state[k] = v.astype(np.float32)
    else:
        where = str(source)
        state = read_torch_state_dict(source)
    if not isinstance(prefix, str):
        raise TypeError(f"Received an invalid value for argument `prefix`, expected a str, got {prefix!r}.")
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    weights, bidirectional = _weights_from_state(cell, state, where)
    _set_layers(cell, target, weights, bidirectional, where, _activations(cell))


# ---------------------------------------------------------------------------------------------
# New layers from a module, a new module from layers
# ---------------------------------------------------------------------------------------------

def _layers_from_module(cell: _Cell, module, return_sequences: bool, return_state: bool) -> list:
    _check_module(cell, module)
    if module.dropout and module.training:
        raise ValueError(f"The torch {cell.torch_name} applies dropout between layers in training mode; call "
                         f"{cell.arg}.eval() first (dropout is not part of the conversion).")
    # What each torch module computes, spelled out rather than left to our defaults.
    fixed = {"activation": module.nonlinearity} if cell is _RNN else \
        {"activation": "tanh", "recurrent_activation": "sigmoid"}
    if cell is _GRU:
        fixed["reset_after"] = True
    out = []
    for k, arrays in enumerate(_module_weights(cell, module)):
        last = k == module.num_layers - 1
        kwargs = dict(units=module.hidden_size, use_bias=bool(module.bias), **fixed,
                      return_sequences=(not last) or return_sequences, return_state=last and return_state)
        if module.bidirectional:
            out.append(Bidirectional(cell.layer(**kwargs), merge_mode="concat", weights=arrays))
        else:
            out.append(cell.layer(**kwargs, weights=arrays))
    return out


def _module_from_layers(cell: _Cell, source, batch_first: bool):
    torch = _require_torch()
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
            _check_torch_computes(cell, c, _activations(cell))
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
    if cell is _RNN:
        acts = sorted({_activation_name(c, "activation") for pair in cells for c in pair})
        if len(acts) != 1:
            raise ValueError(f"torch.nn.RNN has one nonlinearity for every layer; the layers use {acts}.")
        extra["nonlinearity"] = acts[0]
    input_size = cells[0][0].kernel.shape[0]
    module = getattr(torch.nn, T)(input_size=input_size, hidden_size=units.pop(), num_layers=len(layers),
                                  bias=use_bias.pop(), batch_first=batch_first, bidirectional=bidi[0], **extra)
    _set_module_weights(cell, module, [layer.get_weights() for layer in layers])
    return module
