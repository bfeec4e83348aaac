"""torch state_dict files (`torch.save(module.state_dict(), path)`) of an nn.LSTM, nn.GRU or nn.RNN,
read without building the module (checked as untrusted input first) and loaded into our layers.
"""

import os
import pickle
import re
import zipfile
from typing import Dict, Mapping

import numpy as np

from .. import untrusted
from .torch_layers import set_layers, target_cell
from .torch_layout import CELLS, LSTM_CELL, Cell, keras_arrays, require_torch, torch_activations

__all__ = ["read_torch_state_dict", "load_torch_state_dict"]

_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def read_torch_state_dict(path) -> Dict[str, np.ndarray]:
    """The tensors of a file written by `torch.save(module.state_dict(), path)`, as float32 arrays.

    Read with `torch.load(weights_only=True)` (no class or function a file names is
    ever called) after the zip container's checks. Raises ValueError naming the file
    for anything else: a damaged file, torch's pre-1.6 format, a pickled module or
    any object that is not a mapping of names to dense floating-point tensors.
    """
    torch = require_torch()
    source = untrusted.check_regular_file(path, "a PyTorch state_dict file")
    try:
        with zipfile.ZipFile(source) as zf:
            # torch stores its records uncompressed: they cannot add up to more than the file.
            untrusted.zip_members(zf, source, max_total=untrusted.EXPANSION_FLOOR + os.path.getsize(source))
    except zipfile.BadZipFile:
        raise ValueError(f"{source}: not a PyTorch zip file (torch >= 1.6 writes one); files of the older "
                         "format are not read: load and save them again with a current torch.") from None
    except untrusted.ZIP_DIRECTORY_ERRORS as exc:
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


def _weights_from_state(cell: Cell, state: Mapping[str, np.ndarray], source: str):
    """(Keras-layout weights per layer, bidirectional) from a torch.nn.LSTM/GRU/RNN's state_dict entries."""
    T, G = cell.torch_name, cell.gates
    found = {}
    for name in state:
        m = _KEY.fullmatch(name)
        if m is None or (m.group(1) == "weight_hr" and cell is not LSTM_CELL):
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
        other = [c for c in CELLS if hh.ndim == 2 and hh.shape[1] and hh.shape[0] == c.gates * hh.shape[1]]
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
            arrays += keras_arrays(cell, w_ih, w_hh, b_ih, b_hh)
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
    cell = target_cell(target)
    if isinstance(source, Mapping):
        where = "the state_dict"
        arrays = {k: v for k, v in source.items() if isinstance(v, np.ndarray)}
        tensors = {k: v for k, v in source.items() if not isinstance(v, np.ndarray)}
        state = _state_arrays(require_torch(), tensors, where) if tensors else {}
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
    set_layers(cell, target, weights, bidirectional, where, torch_activations(cell))
