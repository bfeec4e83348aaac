"""LSTM, GRU, SimpleRNN and their Bidirectional forms as ONNX's LSTM, GRU and RNN
operators, with Keras's semantics.

ONNX's GRU has Keras's gate order (z, r, h) and, with linear_before_reset=1,
Keras 3's reset_after=True cell: W = kernel.T, R = recurrent_kernel.T, B = the two
bias rows end to end (reset_after=False: the one bias, then zeros, and
linear_before_reset=0). ONNX's RNN is SimpleRNN (W, R transposed, B = [bias, 0]).
Everything below about activations, go_backwards and masks holds for all three.

ONNX's LSTM (time-major X (T, B, I)) differs from Keras's in four ways, each
bridged here:

* gate order and layout: Keras's kernel is (I, 4H) with gates i, f, c, o in
  column blocks; ONNX wants W (1, 4H, I) with gates i, o, f, c in row blocks, and
  two biases Wb, Rb (Keras's bias goes in Wb, zeros in Rb);
* activations: f = recurrent_activation (gates), g = h = activation; Keras 3's
  hard_sigmoid relu6(x + 3)/6 is HardSigmoid(alpha=1/6, beta=0.5), Keras 2's is
  HardSigmoid(0.2, 0.5), linear is Affine(1, 0). ONNX Runtime consumes
  activation_alpha/beta in order by the activations that take them, which is
  what the ONNX spec says ("consumed in the order of activation functions").
* go_backwards: Keras reverses the input (and its mask) and returns the outputs in
  processing order, i.e. reversed relative to the input. We do exactly that: the
  input is reversed along time and run forwards, so the operator's Y is Keras's
  output as is (direction="reverse" would return Y in input order instead).
* masks: Keras skips a masked step (h and c kept; its output is the previous
  output, 0 before the first real step, or 0 with zero_output_for_mask), for ANY
  mask, while ONNX's sequence_lens only cuts a row's tail. The graph moves each
  row's real steps to the front, in order (a scatter by position), runs the
  operator with sequence_lens = number of real steps, and gathers every output
  step back from the last real step at or before it. For trailing padding the
  moves are the identity; for any other padding the result is still Keras's.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .errors import OnnxExportError
from .graph import INT32, INT64, GraphBuilder, Value

__all__ = ["CELLS", "LstmParams", "lstm_params", "lstm_direction", "onnx_weights", "reverse_time", "activation_name",
           "LSTM_ACTIVATIONS"]

_INT64_MIN = np.iinfo(np.int64).min

# fusedlstm's LSTM activation names -> (ONNX activation, alpha, beta).
LSTM_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),   # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid_k2": ("HardSigmoid", 0.2, 0.5),      # Keras 2: clip(0.2 x + 0.5, 0, 1)
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
}


def activation_name(value, where: str) -> str:
    """An activation as written in a config ('tanh', None, {'config': 'tanh'}...) -> its name."""
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
    raise OnnxExportError(f"{where}: activation {value!r} is not a named activation; it cannot be exported.")


# Keras class -> (ONNX operator, gate blocks along the kernel's columns, states carried).
CELLS = {"LSTM": ("LSTM", 4, 2), "GRU": ("GRU", 3, 1), "SimpleRNN": ("RNN", 1, 1)}


@dataclass
class LstmParams:
    """A recurrent layer's settings (LSTM, GRU or SimpleRNN, as `cell` says)."""
    name: str
    units: int
    activation: str
    recurrent_activation: str
    use_bias: bool
    go_backwards: bool
    return_sequences: bool
    return_state: bool
    stateful: bool
    zero_output_for_mask: bool
    dropout: float
    recurrent_dropout: float
    cell: str = "LSTM"
    reset_after: bool = True


def lstm_params(cfg: dict, where: str, cell: str = "LSTM") -> LstmParams:
    if cell not in CELLS:
        raise OnnxExportError(f"{where}: a {cell} cannot be exported; recurrent layers: {sorted(CELLS)}.")
    p = LstmParams(
        name=cfg.get("name", "lstm"), units=int(cfg["units"]),
        activation=activation_name(cfg.get("activation", "tanh"), where),
        recurrent_activation=activation_name(cfg.get("recurrent_activation", "sigmoid"), where),
        use_bias=bool(cfg.get("use_bias", True)), go_backwards=bool(cfg.get("go_backwards", False)),
        return_sequences=bool(cfg.get("return_sequences", False)),
        return_state=bool(cfg.get("return_state", False)), stateful=bool(cfg.get("stateful", False)),
        zero_output_for_mask=bool(cfg.get("zero_output_for_mask", False)),
        dropout=float(cfg.get("dropout", 0.0)), recurrent_dropout=float(cfg.get("recurrent_dropout", 0.0)),
        cell=cell, reset_after=bool(cfg.get("reset_after", True)))
    if cfg.get("time_major"):
        raise OnnxExportError(f"{where}: time_major=True is not supported.")
    for arg in ("activation",) if cell == "SimpleRNN" else ("activation", "recurrent_activation"):
        name = getattr(p, arg)
        if name not in LSTM_ACTIVATIONS:
            raise OnnxExportError(
                f"{where}: `{arg}`={name!r} has no ONNX {CELLS[cell][0]} counterpart; exportable: "
                f"{sorted(LSTM_ACTIVATIONS)}.")
    return p


def _gates(m: np.ndarray) -> np.ndarray:
    """Keras gate blocks i, f, c, o along the last axis -> ONNX's i, o, f, c."""
    i, f, c, o = np.split(m, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


def onnx_weights(p: LstmParams, weights: List[np.ndarray], where: str):
    """(W (1, gH, I), R (1, gH, H), B (1, 2gH) or None) from Keras's [kernel, recurrent_kernel, bias]
    (g = 4 for LSTM, 3 for GRU, 1 for SimpleRNN)."""
    H, G = p.units, CELLS[p.cell][1] * p.units
    want = 3 if p.use_bias else 2
    if len(weights) != want:
        raise OnnxExportError(f"{where}: expected {want} weight arrays, got {len(weights)}.")
    kernel, rec = weights[0], weights[1]
    if kernel.ndim != 2 or kernel.shape[1] != G or rec.shape != (H, G):
        raise OnnxExportError(f"{where}: kernel {kernel.shape} / recurrent_kernel {rec.shape} do not fit units={H}.")
    order = _gates if p.cell == "LSTM" else (lambda m: m)  # GRU: Keras's z, r, h is ONNX's order
    W = order(kernel).T[None].astype(np.float32)
    R = order(rec).T[None].astype(np.float32)
    B = None
    if p.use_bias:
        b = np.asarray(weights[2])
        if p.cell == "GRU" and p.reset_after:
            if b.shape != (2, G):
                raise OnnxExportError(f"{where}: bias {b.shape} does not fit reset_after=True, expected {(2, G)}.")
            B = b.reshape(1, 2 * G).astype(np.float32)  # [input bias, recurrent bias] = ONNX's [Wb, Rb]
        else:
            B = np.concatenate([order(b), np.zeros(G, b.dtype)])[None].astype(np.float32)
    return W, R, B


def _activation_attrs(p: LstmParams) -> dict:
    names, alphas, betas = [], [], []
    acts = {"LSTM": (p.recurrent_activation, p.activation, p.activation),  # f, g, h
            "GRU": (p.recurrent_activation, p.activation),                 # f, g
            "SimpleRNN": (p.activation,)}[p.cell]                          # f
    for act in acts:
        onnx_name, alpha, beta = LSTM_ACTIVATIONS[act]
        names.append(onnx_name)
        if alpha is not None:
            alphas.append(alpha)
            betas.append(beta)
    attrs = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    return attrs


def reverse_time(g: GraphBuilder, name: str, hint: str) -> str:
    """x[:, ::-1] (axis 1 reversed, whatever its length)."""
    return g.op("Slice", [name, g.i64([-1]), g.i64([_INT64_MIN]), g.i64([1]), g.i64([-1])], hint)


def lstm_direction(g: GraphBuilder, hint: str, p: LstmParams, weights, x: Value,
                   h0: Optional[str], c0: Optional[str], zero_output_for_mask: bool) -> Tuple[str, str, str]:
    """One Keras LSTM (GRU, SimpleRNN: p.cell) over x (B, T, I) -> (output, h_T, c_T) tensor names
    (c_T None but for an LSTM; c0 is ignored for them).

    output is (B, T, H) in processing order with return_sequences, else (B, H).
    """
    op = CELLS[p.cell][0]
    lstm = p.cell == "LSTM"
    where = f"layer '{p.name}' ({p.cell})"
    if x.rank != 3:
        raise OnnxExportError(f"{where}: expects a 3-D input (batch, time, features), got rank {x.rank}.")
    W, R, B = onnx_weights(p, weights, where)
    xs, mask = x.name, x.mask
    if p.go_backwards:
        xs = reverse_time(g, xs, hint)
        if mask is not None:
            mask = reverse_time(g, mask, hint)
    seq_lens = cnt = has = None
    if mask is not None:
        xs, seq_lens, cnt, has = _compact(g, hint, xs, mask)
    ins = [g.op("Transpose", [xs], hint, perm=[1, 0, 2]), g.weight(W, f"{hint}/W"), g.weight(R, f"{hint}/R"),
           g.weight(B, f"{hint}/B") if B is not None else "", seq_lens or "",
           g.op("Unsqueeze", [h0, g.i64([0])], hint) if h0 else ""]
    if lstm:
        ins.append(g.op("Unsqueeze", [c0, g.i64([0])], hint) if c0 else "")
    while ins[-1] == "":
        ins.pop()
    Y = g.fresh(f"{hint}/{op}:Y") if p.return_sequences else ""
    Yh = g.fresh(f"{hint}/{op}:Y_h")
    Yc = g.fresh(f"{hint}/{op}:Y_c") if lstm else None
    attrs = _activation_attrs(p)
    if p.cell == "GRU":
        attrs["linear_before_reset"] = int(p.reset_after)
    g.op(op, ins, hint, outputs=[Y, Yh] + ([Yc] if lstm else []), hidden_size=p.units, direction="forward",
         **attrs)
    hT = g.op("Squeeze", [Yh, g.i64([0])], hint)
    cT = g.op("Squeeze", [Yc, g.i64([0])], hint) if lstm else None
    if p.return_sequences:
        y = g.op("Transpose", [g.op("Squeeze", [Y, g.i64([1])], hint)], hint, perm=[1, 0, 2])
    else:
        y = hT
    if mask is None:
        return y, hT, cT
    # A row with no real step keeps its initial state and outputs zeros.
    hT = g.op("Where", [has, hT, h0 or g.f32(0.0)], hint)
    if lstm:
        cT = g.op("Where", [has, cT, c0 or g.f32(0.0)], hint)
    if p.return_sequences:
        y = _expand_outputs(g, hint, y, cnt, mask, zero_output_for_mask)
    else:
        if zero_output_for_mask:
            last = g.op("Gather", [mask, g.i64(-1)], hint, axis=1)
            shown = g.op("Unsqueeze", [last, g.i64([1])], hint)
        else:
            shown = has
        y = g.op("Where", [shown, hT, g.f32(0.0)], hint)
    return y, hT, cT


def _compact(g: GraphBuilder, hint: str, x: str, mask: str):
    """Move each row's real steps to the front, in order.

    With m the mask, cnt = cumsum(m) and n = sum(m) per row, real step t goes to
    cnt[t] - 1 and masked step t to n + t - cnt[t] (after all real steps): a
    permutation, applied as one scatter. Returns (x compacted, sequence_lens (B,)
    int32, cnt (B, T) int64, has (B, 1) bool = n > 0).
    """
    mi = g.op("Cast", [mask], hint, to=INT64)
    cnt = g.op("CumSum", [mi, g.i64(1)], hint)
    n = g.op("ReduceSum", [mi, g.i64([1])], hint, keepdims=1)
    T = g.op("Gather", [g.op("Shape", [mi], hint), g.i64(1)], hint, axis=0)
    t = g.op("Range", [g.i64(0), T, g.i64(1)], hint)
    pos = g.op("Where", [mask, g.op("Sub", [cnt, g.i64(1)], hint),
                         g.op("Sub", [g.op("Add", [n, t], hint), cnt], hint)], hint)
    idx = g.op("Expand", [g.op("Unsqueeze", [pos, g.i64([2])], hint), g.op("Shape", [x], hint)], hint)
    xc = g.op("ScatterElements", [x, idx, x], hint, axis=1)
    seq_lens = g.op("Cast", [g.op("Squeeze", [n, g.i64([1])], hint)], hint, to=INT32)
    has = g.op("Greater", [n, g.i64(0)], hint)
    return xc, seq_lens, cnt, has


def _expand_outputs(g: GraphBuilder, hint: str, y: str, cnt: str, mask: str, zero_output_for_mask: bool) -> str:
    """Compacted outputs (B, T, H) -> Keras's: step t shows the output of the last real step
    at or before t (cnt[t] - 1), or 0 before the first real step / at masked steps when
    zero_output_for_mask."""
    idx = g.op("Max", [g.op("Sub", [cnt, g.i64(1)], hint), g.i64(0)], hint)
    idx = g.op("Expand", [g.op("Unsqueeze", [idx, g.i64([2])], hint), g.op("Shape", [y], hint)], hint)
    gathered = g.op("GatherElements", [y, idx], hint, axis=1)
    show = g.op("Greater", [cnt, g.i64(0)], hint)
    if zero_output_for_mask:
        show = g.op("And", [show, mask], hint)
    show = g.op("Unsqueeze", [show, g.i64([2])], hint)
    return g.op("Where", [show, gathered, g.f32(0.0)], hint)

