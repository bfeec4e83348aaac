"""PyTorch interchange: torch.nn.LSTM weights to and from Keras-layout LSTM weights.

The two libraries compute the same cell with the same gate order (i, f, g/c, o
along 4H); only the storage differs:

    Keras                          torch.nn.LSTM (layer k, `_reverse` for the backward direction)
    kernel            (I, 4H)      weight_ih_l{k}  (4H, I)  = kernel.T
    recurrent_kernel  (H, 4H)      weight_hh_l{k}  (4H, H)  = recurrent_kernel.T
    bias              (4H,)        bias_ih_l{k} + bias_hh_l{k}  (torch adds two biases)

A torch LSTM with num_layers=L is L stacked Keras LSTMs (all but the last
returning sequences); bidirectional=True is Keras's Bidirectional(merge_mode=
'concat'), whose backward outputs Keras also flips back to input order. Exporting
puts the whole bias in bias_ih and zeros in bias_hh (exact: b + 0 = b).

A file written by `torch.save(lstm.state_dict(), path)` loads without building
the torch module (`load_torch_state_dict`). Such a file is a pickle: it is read
with `torch.load(weights_only=True)`, whose unpickler builds tensors and plain
containers only and refuses any other class or function a file names, after
the zip container's sizes are checked (fusedlstm.untrusted). Files of torch's
pre-1.6 format (not a zip) and pickled modules (`torch.save(lstm)`) are refused.

torch is imported only by the functions that need it; the weight conversions
take and return NumPy arrays.
"""

import os
import pickle
import re
import zipfile
from typing import Dict, List, Mapping, Sequence

import numpy as np

from .. import untrusted
from ..layers import LSTM, Bidirectional, Layer

__all__ = ["torch_lstm_weights", "set_torch_lstm_weights", "lstm_layers_from_torch", "load_torch_lstm",
           "torch_lstm_from_layers", "read_torch_state_dict", "load_torch_state_dict"]


def _check_lstm_module(lstm):
    try:
        import torch  # optional dependency: only the functions that take or build a torch module need it
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc
    if not isinstance(lstm, torch.nn.LSTM):
        raise TypeError(f"Received an invalid value for argument `lstm`, expected a torch.nn.LSTM, "
                        f"got {type(lstm).__name__}.")
    if getattr(lstm, "proj_size", 0):
        raise ValueError(f"torch.nn.LSTM with proj_size={lstm.proj_size} has no Keras equivalent "
                         "(Keras LSTMs have no projection).")
    return torch


def _suffixes(lstm):
    return [""] + (["_reverse"] if lstm.bidirectional else [])


def torch_lstm_weights(lstm) -> List[List[np.ndarray]]:
    """Keras-layout weights of a torch.nn.LSTM, one list per layer.

    Each list is [kernel, recurrent_kernel, bias] (no bias when bias=False) as float32;
    for a bidirectional LSTM the backward direction's arrays follow the forward's,
    which is the order of Keras Bidirectional.get_weights().
    """
    _check_lstm_module(lstm)
    out = []
    for k in range(lstm.num_layers):
        arrays = []
        for sfx in _suffixes(lstm):
            w_ih = getattr(lstm, f"weight_ih_l{k}{sfx}").detach().cpu().numpy()
            w_hh = getattr(lstm, f"weight_hh_l{k}{sfx}").detach().cpu().numpy()
            arrays += [np.ascontiguousarray(w_ih.T, dtype=np.float32),
                       np.ascontiguousarray(w_hh.T, dtype=np.float32)]
            if lstm.bias:
                b = getattr(lstm, f"bias_ih_l{k}{sfx}").detach().cpu().numpy().astype(np.float32) + \
                    getattr(lstm, f"bias_hh_l{k}{sfx}").detach().cpu().numpy().astype(np.float32)
                arrays.append(b)
        out.append(arrays)
    return out


def set_torch_lstm_weights(lstm, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout weights (as torch_lstm_weights returns them) into a torch.nn.LSTM.

    Raises ValueError naming the layer and the expected and given shapes on any mismatch;
    nothing is copied unless every array fits.
    """
    torch = _check_lstm_module(lstm)
    weights = [list(w) for w in weights]
    if len(weights) != lstm.num_layers:
        raise ValueError(f"The torch LSTM has num_layers={lstm.num_layers}, got weights for {len(weights)} layers.")
    H = lstm.hidden_size
    per_dir = 3 if lstm.bias else 2
    plan = []
    for k, arrays in enumerate(weights):
        ndir = len(_suffixes(lstm))
        if len(arrays) != per_dir * ndir:
            raise ValueError(f"layer {k}: expected {per_dir * ndir} arrays "
                             f"({'kernel, recurrent_kernel' + (', bias' if lstm.bias else '')}"
                             f"{' per direction' if ndir == 2 else ''}), got {len(arrays)}.")
        for d, sfx in enumerate(_suffixes(lstm)):
            w_ih = getattr(lstm, f"weight_ih_l{k}{sfx}")
            kernel, recurrent = (np.asarray(a, dtype=np.float32) for a in arrays[d * per_dir:d * per_dir + 2])
            expect_k = (w_ih.shape[1], 4 * H)
            for name, arr, exp in (("kernel", kernel, expect_k), ("recurrent_kernel", recurrent, (H, 4 * H))):
                if arr.shape != exp:
                    raise ValueError(f"layer {k}{sfx} {name}: expected shape {exp}, got {arr.shape}.")
            plan += [(f"weight_ih_l{k}{sfx}", kernel.T), (f"weight_hh_l{k}{sfx}", recurrent.T)]
            if lstm.bias:
                bias = np.asarray(arrays[d * per_dir + 2], dtype=np.float32)
                if bias.shape != (4 * H,):
                    raise ValueError(f"layer {k}{sfx} bias: expected shape {(4 * H,)}, got {bias.shape}.")
                plan += [(f"bias_ih_l{k}{sfx}", bias), (f"bias_hh_l{k}{sfx}", np.zeros_like(bias))]
    with torch.no_grad():
        for name, value in plan:
            param = getattr(lstm, name)
            param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype, device=param.device))


def _is_lstm(layer) -> bool:
    return isinstance(layer, LSTM) or (isinstance(layer, Bidirectional) and isinstance(layer.forward_layer, LSTM))


def _lstm_targets(target) -> list:
    """Our LSTM/Bidirectional(LSTM) layers, in order, from a layer, a list of layers or a model."""

    if _is_lstm(target):
        return [target]
    if isinstance(target, Layer):
        raise ValueError(f"layer {target.name!r} ({type(target).__name__}) is not an LSTM or Bidirectional(LSTM); "
                         "torch.nn.LSTM interchange covers LSTM layers only.")
    layers = list(getattr(target, "layers", target))
    found = []
    for layer in layers:
        if _is_lstm(layer):
            found.append(layer)
        elif layer.weights:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has weights but is not an LSTM or "
                             "Bidirectional(LSTM); pass the LSTM layers themselves.")
    return found


def load_torch_lstm(target, lstm) -> None:
    """Set our LSTM (or Bidirectional) layers' weights from a torch.nn.LSTM.

    target: one layer, a list of layers, or a model whose weighted layers are all
        LSTM/Bidirectional — one per torch layer, built, with matching sizes.
    """
    _check_lstm_module(lstm)
    _set_layers(target, torch_lstm_weights(lstm), lstm.bidirectional, "The torch LSTM")


def _set_layers(target, weights: List[List[np.ndarray]], bidirectional: bool, what: str) -> None:
    """Keras-layout weights (one list per torch layer) into our layers; every layer is checked first."""
    layers = _lstm_targets(target)
    if len(layers) != len(weights):
        raise ValueError(f"{what} has num_layers={len(weights)}, the target has {len(layers)} "
                         f"LSTM layers ({', '.join(l.name for l in layers)}).")
    plan = []
    for k, (layer, arrays) in enumerate(zip(layers, weights)):
        bidi = isinstance(layer, Bidirectional)
        if bidi != bidirectional:
            raise ValueError(f"layer {layer.name!r}: {what} is {'' if bidirectional else 'not '}"
                             f"bidirectional but the layer is {'a Bidirectional' if bidi else 'a plain LSTM'}.")
        if bidi and layer.merge_mode != "concat":
            raise ValueError(f"layer {layer.name!r}: torch concatenates both directions; the layer's merge_mode "
                             f"is {layer.merge_mode!r}.")
        for sub in ([layer.forward_layer, layer.backward_layer] if bidi else [layer]):
            for attr in ("activation", "recurrent_activation"):
                name = getattr(getattr(sub, attr), "__name__", str(getattr(sub, attr)))
                expected = "tanh" if attr == "activation" else "sigmoid"
                if name != expected:
                    raise ValueError(f"layer {sub.name!r}: {attr}={name!r}, but torch.nn.LSTM uses {expected!r}.")
        current = layer.get_weights()
        if [c.shape for c in current] != [a.shape for a in arrays]:
            raise ValueError(f"layer {layer.name!r} (torch layer {k}): expected weight shapes "
                             f"{[c.shape for c in current]}, {what} gives {[a.shape for a in arrays]}.")
        plan.append((layer, arrays))
    for layer, arrays in plan:
        layer.set_weights(arrays)


# ---------------------------------------------------------------------------------------------
# state_dict files
# ---------------------------------------------------------------------------------------------

_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _require_torch():
    try:
        import torch  # optional dependency: only the torch interchange needs it
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc
    return torch


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
    except (OSError, EOFError) as exc:
        raise ValueError(f"{source}: unreadable ({exc}).") from None
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


def _weights_from_state(state: Mapping[str, np.ndarray], source: str):
    """(Keras-layout weights per layer, bidirectional) from torch.nn.LSTM state_dict entries."""
    found = {}
    for name in state:
        m = _KEY.fullmatch(name)
        if m is None:
            raise ValueError(f"{source}: {name!r} is not a torch.nn.LSTM weight (expected weight_ih_l0, "
                             "weight_hh_l0, bias_ih_l0, bias_hh_l0, ... with _reverse for the backward direction); "
                             "pass prefix= when the LSTM is part of a larger module.")
        if m.group(1) == "weight_hr":
            raise ValueError(f"{source}: {name!r}: an LSTM with proj_size has no Keras equivalent.")
        found[(m.group(1), int(m.group(2)), bool(m.group(3)))] = state[name]
    if not found:
        raise ValueError(f"{source}: the state_dict holds no torch.nn.LSTM weights.")
    layers = 1 + max(k for _, k, _ in found)
    if 2 * layers > len(found):  # every layer has at least two entries: the rest are surely missing
        raise ValueError(f"{source}: the state_dict names layer {layers - 1} but holds only {len(found)} LSTM "
                         "entries; it lacks the layers in between.")
    bidirectional = any(rev for _, _, rev in found)
    bias = any(kind.startswith("bias") for kind, _, _ in found)
    needed = [(kind, k, rev) for k in range(layers) for rev in ([False, True] if bidirectional else [False])
              for kind in (("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ()))]
    missing = [f"{kind}_l{k}{'_reverse' if rev else ''}" for kind, k, rev in needed if (kind, k, rev) not in found]
    if missing:
        raise ValueError(f"{source}: the state_dict lacks {', '.join(missing)}.")
    hh = found[("weight_hh", 0, False)]
    if hh.ndim != 2 or hh.shape[0] != 4 * hh.shape[1] or hh.shape[1] == 0:
        raise ValueError(f"{source}: weight_hh_l0 has shape {hh.shape}, expected (4H, H).")
    H = hh.shape[1]
    width = None
    out = []
    for k in range(layers):
        arrays = []
        for rev in ([False, True] if bidirectional else [False]):
            sfx = f"_l{k}{'_reverse' if rev else ''}"
            w_ih, w_hh = found[("weight_ih", k, rev)], found[("weight_hh", k, rev)]
            expect_in = width if k else None
            if w_ih.ndim != 2 or w_ih.shape[0] != 4 * H or (expect_in is not None and w_ih.shape[1] != expect_in):
                raise ValueError(f"{source}: weight_ih{sfx} has shape {w_ih.shape}, expected "
                                 f"({4 * H}, {expect_in if expect_in is not None else 'input size'}).")
            if w_hh.shape != (4 * H, H):
                raise ValueError(f"{source}: weight_hh{sfx} has shape {w_hh.shape}, expected {(4 * H, H)}.")
            arrays += [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
            if bias:
                b_ih, b_hh = found[("bias_ih", k, rev)], found[("bias_hh", k, rev)]
                for nm, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
                    if b.shape != (4 * H,):
                        raise ValueError(f"{source}: {nm}{sfx} has shape {b.shape}, expected {(4 * H,)}.")
                arrays.append(b_ih + b_hh)
        out.append(arrays)
        width = H * (2 if bidirectional else 1)
    return out, bidirectional


def load_torch_state_dict(target, source, prefix: str = "") -> None:
    """Set our LSTM (or Bidirectional) layers from a torch.nn.LSTM's state_dict.

    target: as for load_torch_lstm (one layer per torch layer, built, matching sizes).
    source: a path to a file written by `torch.save(lstm.state_dict(), path)`, or the
        state_dict itself (a mapping of names to tensors or arrays).
    prefix: the LSTM's name inside a larger module's state_dict (e.g. "encoder.rnn."):
        only the entries under it are read.
    Every array is checked against the layers before any is set. Raises ValueError
    naming the entry and the expected and found shapes.
    """
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
    weights, bidirectional = _weights_from_state(state, where)
    _set_layers(target, weights, bidirectional, where)


def lstm_layers_from_torch(lstm, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.LSTM computes (batch-first).

    Returns one LSTM (or Bidirectional(merge_mode='concat')) per torch layer, every one
    but the last with return_sequences=True; their weights are set when they are built
    (e.g. `Sequential([Input((None, lstm.input_size)), *layers])`).
    """
    _check_lstm_module(lstm)

    if lstm.dropout and lstm.training:
        raise ValueError("The torch LSTM applies dropout between layers in training mode; call lstm.eval() "
                         "first (dropout is not part of the conversion).")
    out = []
    weights = torch_lstm_weights(lstm)
    for k, arrays in enumerate(weights):
        last = k == lstm.num_layers - 1
        kwargs = dict(units=lstm.hidden_size, use_bias=bool(lstm.bias),
                      return_sequences=(not last) or return_sequences, return_state=last and return_state)
        if lstm.bidirectional:
            out.append(Bidirectional(LSTM(**kwargs), merge_mode="concat", weights=arrays))
        else:
            out.append(LSTM(**kwargs, weights=arrays))
    return out


def torch_lstm_from_layers(source, batch_first: bool = True):
    """A new torch.nn.LSTM with the weights of our stacked LSTM (or Bidirectional) layers.

    source: a layer, a list of layers or a model (its LSTM layers, in order). They must
    stack as torch stacks them: the same units, tanh/sigmoid activations, every layer
    but the last returning sequences, no go_backwards outside Bidirectional.
    """
    try:
        import torch  # optional dependency: only the functions that take or build a torch module need it
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc

    layers = _lstm_targets(source)
    if not layers:
        raise ValueError("Received no LSTM layers to export.")
    bidi = [isinstance(layer, Bidirectional) for layer in layers]
    if len(set(bidi)) != 1:
        raise ValueError("torch.nn.LSTM is bidirectional in every layer or in none; the layers mix both.")
    cells = [[l.forward_layer, l.backward_layer] if b else [l] for l, b in zip(layers, bidi)]
    units = {c.units for pair in cells for c in pair}
    if len(units) != 1:
        raise ValueError(f"torch.nn.LSTM has one hidden size; the layers have units {sorted(units)}.")
    use_bias = {c.use_bias for pair in cells for c in pair}
    if len(use_bias) != 1:
        raise ValueError("torch.nn.LSTM has biases in every layer or in none; the layers mix both.")
    for i, (layer, pair) in enumerate(zip(layers, cells)):
        for c in pair:
            act, rec = c.activation.__name__, c.recurrent_activation.__name__
            if (act, rec) != ("tanh", "sigmoid"):
                raise ValueError(f"layer {c.name!r}: activation={act!r}, recurrent_activation={rec!r}; torch.nn.LSTM "
                                 "computes tanh/sigmoid.")
            if i < len(layers) - 1 and not c.return_sequences:
                raise ValueError(f"layer {c.name!r} returns only its last output, so it cannot feed the next "
                                 "torch layer; set return_sequences=True.")
        if bidi[i] and layer.merge_mode != "concat":
            raise ValueError(f"layer {layer.name!r}: merge_mode={layer.merge_mode!r}, torch concatenates.")
        if not bidi[i] and pair[0].go_backwards:
            raise ValueError(f"layer {pair[0].name!r} has go_backwards=True, which torch.nn.LSTM cannot express.")
        if not all(c.built for c in pair):
            raise ValueError(f"layer {layer.name!r} is not built: its input size is unknown yet.")
    input_size = cells[0][0].kernel.shape[0]
    module = torch.nn.LSTM(input_size=input_size, hidden_size=units.pop(), num_layers=len(layers),
                           bias=use_bias.pop(), batch_first=batch_first, bidirectional=bidi[0])
    set_torch_lstm_weights(module, [layer.get_weights() for layer in layers])
    return module
