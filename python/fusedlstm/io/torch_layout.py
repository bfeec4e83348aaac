"""The torch side of the recurrent interchange: what differs between nn.LSTM, nn.GRU and nn.RNN
(one `Cell` each: the gate blocks, their order, the biases), and their weights as Keras-layout arrays.

The layouts are in fusedlstm.io.torch_io's docstring. torch is imported only by
require_torch(), when a function needs a module; the conversions take and return NumPy arrays.
"""

from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..layers import GRU, LSTM, SimpleRNN

# What differs between LSTM, GRU and RNN is data: the torch class, our layer class, the
# number of gate blocks, the order torch stacks them in, and whether Keras keeps torch's
# two biases (GRU's reset_after=True rows) or their sum. Every function below takes one.


class Cell(NamedTuple):
    torch_name: str  # torch.nn.<torch_name>
    layer: type  # our layer class
    noun: str  # "an LSTM", for messages
    gates: int  # G: gate blocks of H along torch's first axis and Keras's last
    order: Tuple[int, ...]  # order[j]: torch's block holding Keras's gate block j
    bias_rows: int  # 1: Keras's bias is bias_ih + bias_hh; 2: Keras keeps both, as rows of (2, GH)
    arg: str  # the torch module's argument name in the public functions


LSTM_CELL = Cell("LSTM", LSTM, "an LSTM", 4, (0, 1, 2, 3), 1, "lstm")
GRU_CELL = Cell("GRU", GRU, "a GRU", 3, (1, 0, 2), 2, "gru")  # Keras z, r, h; torch r, z, n
RNN_CELL = Cell("RNN", SimpleRNN, "a SimpleRNN", 1, (0,), 1, "rnn")
CELLS = (LSTM_CELL, GRU_CELL, RNN_CELL)
_PUBLIC = {"LSTM": "torch_lstm_weights", "GRU": "torch_gru_weights", "RNN": "torch_rnn_weights"}


def _to_keras_gates(cell: Cell, a: np.ndarray) -> np.ndarray:
    """Gate blocks stacked along axis 0 in torch's order -> in Keras's order."""
    if cell.gates == 1:
        return a
    blocks = np.split(a, cell.gates, axis=0)
    return np.concatenate([blocks[j] for j in cell.order], axis=0)


def _to_torch_gates(cell: Cell, a: np.ndarray) -> np.ndarray:
    """Gate blocks stacked along axis 0 in Keras's order -> in torch's order."""
    if cell.gates == 1:
        return a
    blocks = np.split(a, cell.gates, axis=0)
    return np.concatenate([blocks[j] for j in np.argsort(cell.order)], axis=0)


def torch_activations(cell: Cell, module=None) -> Dict[str, Tuple[str, ...]]:
    """The activations torch computes (for an RNN: its nonlinearity, or either when unknown)."""
    if cell is RNN_CELL:
        return {"activation": (module.nonlinearity,) if module is not None else ("tanh", "relu")}
    return {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)}


def require_torch():
    try:
        import torch  # optional dependency: only the torch interchange needs it
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc
    return torch


def check_module(cell: Cell, module):
    torch = require_torch()
    if not isinstance(module, getattr(torch.nn, cell.torch_name)):
        other = next((c for c in CELLS if isinstance(module, getattr(torch.nn, c.torch_name))), None)
        hint = f" ({_PUBLIC[other.torch_name]} and its siblings take a torch.nn.{other.torch_name})" if other else ""
        raise TypeError(f"Received an invalid value for argument `{cell.arg}`, expected a torch.nn.{cell.torch_name}, "
                        f"got {type(module).__name__}{hint}.")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"torch.nn.LSTM with proj_size={module.proj_size} has no Keras equivalent "
                         "(Keras LSTMs have no projection).")
    return torch


def _suffixes(module):
    return [""] + (["_reverse"] if module.bidirectional else [])


def keras_arrays(cell: Cell, w_ih, w_hh, b_ih, b_hh) -> List[np.ndarray]:
    """One direction's torch tensors (as float32 arrays; biases None without bias) -> Keras arrays."""
    out = [np.ascontiguousarray(_to_keras_gates(cell, w_ih).T), np.ascontiguousarray(_to_keras_gates(cell, w_hh).T)]
    if b_ih is not None:
        b_ih, b_hh = _to_keras_gates(cell, b_ih), _to_keras_gates(cell, b_hh)
        out.append(np.stack([b_ih, b_hh]) if cell.bias_rows == 2 else b_ih + b_hh)
    return out


def module_weights(cell: Cell, module) -> List[List[np.ndarray]]:
    check_module(cell, module)

    def param(name):
        return getattr(module, name).detach().cpu().numpy().astype(np.float32)

    out = []
    for k in range(module.num_layers):
        arrays = []
        for sfx in _suffixes(module):
            biases = (param(f"bias_ih_l{k}{sfx}"), param(f"bias_hh_l{k}{sfx}")) if module.bias else (None, None)
            arrays += keras_arrays(cell, param(f"weight_ih_l{k}{sfx}"), param(f"weight_hh_l{k}{sfx}"), *biases)
        out.append(arrays)
    return out


def set_module_weights(cell: Cell, module, weights: Sequence[Sequence[np.ndarray]]) -> None:
    torch = check_module(cell, module)
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
                        if cell is GRU_CELL and bias.shape == (G * H,) else ""
                    raise ValueError(f"layer {k}{sfx} bias: expected shape {bias_shape}, got {bias.shape}{hint}.")
                b_ih, b_hh = (bias[0], bias[1]) if cell.bias_rows == 2 else (bias, np.zeros_like(bias))
                plan += [(f"bias_ih_l{k}{sfx}", _to_torch_gates(cell, b_ih)),
                         (f"bias_hh_l{k}{sfx}", _to_torch_gates(cell, b_hh))]
    with torch.no_grad():
        for name, value in plan:
            param = getattr(module, name)
            param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype, device=param.device))
