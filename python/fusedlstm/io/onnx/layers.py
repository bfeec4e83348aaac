"""One emitter per exportable layer class: Keras layer call -> ONNX nodes.

An emitter gets the call (layer name, config, weights, training flag), the input
`Value`s and the initial-state `Value`s, and returns the output `Value`s with the
Keras mask each carries — the same mask the engine's `_fwd` would return, so a
mask reaches the recurrent layers exactly as it does in predict(). Every layer
class missing from `EMITTERS` is refused by name.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .errors import OnnxExportError
from .graph import FLOAT, INT64, GraphBuilder, Value
from .recurrent import CELLS, activation_name, lstm_direction, lstm_params, reverse_time

__all__ = ["Call", "EMITTERS", "apply_activation"]

_INT64_MAX = np.iinfo(np.int64).max
_SELU_ALPHA, _SELU_GAMMA = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@dataclass
class Call:
    name: str                   # layer name
    class_name: str
    config: dict
    weights: List[np.ndarray]
    training: Optional[bool]    # the call's explicit training= (None: follows predict, i.e. False)
    node: int                   # call number of this layer
    exporter: object            # the Exporter: graph builder and stateful-layer inputs/outputs

    @property
    def g(self) -> GraphBuilder:
        return self.exporter.g

    @property
    def where(self) -> str:
        return f"layer '{self.name}' ({self.class_name})"


# --- activations ---------------------------------------------------------------------------

def _act_op(op, **attrs):
    return lambda g, x, hint: g.op(op, [x], hint, **attrs)


ACTIVATIONS: Dict[str, Callable] = {
    "linear": lambda g, x, hint: x,
    "relu": _act_op("Relu"),
    "relu6": lambda g, x, hint: g.op("Clip", [x, g.f32(0.0), g.f32(6.0)], hint),
    "sigmoid": _act_op("Sigmoid"),
    "tanh": _act_op("Tanh"),
    "softmax": _act_op("Softmax", axis=-1),
    "log_softmax": _act_op("LogSoftmax", axis=-1),
    "hard_sigmoid": _act_op("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),   # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid_k2": _act_op("HardSigmoid", alpha=0.2, beta=0.5),      # Keras 2
    "softplus": _act_op("Softplus"),
    "softsign": _act_op("Softsign"),
    "elu": _act_op("Elu", alpha=1.0),
    "selu": _act_op("Selu", alpha=_SELU_ALPHA, gamma=_SELU_GAMMA),
    "exponential": _act_op("Exp"),
    "silu": lambda g, x, hint: g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint),
    "swish": lambda g, x, hint: g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint),
    "leaky_relu": _act_op("LeakyRelu", alpha=0.2),   # Keras 3's default negative_slope
}


def apply_activation(g: GraphBuilder, value, x: str, hint: str, where: str) -> str:
    name = activation_name(value, where)
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise OnnxExportError(f"{where}: activation {name!r} has no ONNX export; exportable: {sorted(ACTIVATIONS)}.")
    return fn(g, x, hint)


def _as_float(g: GraphBuilder, v: Value, hint: str) -> Value:
    return v if v.dtype == FLOAT else v.with_(name=g.op("Cast", [v.name], hint, to=FLOAT), dtype=FLOAT)


def _float32(call: Call):
    for w in call.weights:
        if w.dtype != np.float32:
            raise OnnxExportError(f"{call.where}: weights of dtype {w.dtype}; the exporter writes float32 models "
                                  "(build the model in float32).")


# --- core layers ----------------------------------------------------------------------------

def dense(call: Call, ins: List[Value], states) -> List[Value]:
    g, cfg, x = call.g, call.config, _as_float(call.g, ins[0], call.name)
    _float32(call)
    use_bias = bool(cfg.get("use_bias", True))
    if len(call.weights) != (2 if use_bias else 1):
        raise OnnxExportError(f"{call.where}: expected {2 if use_bias else 1} weight arrays, got {len(call.weights)}.")
    y = g.op("MatMul", [x.name, g.weight(call.weights[0], f"{call.name}/kernel")], call.name)
    if use_bias:
        y = g.op("Add", [y, g.weight(call.weights[1], f"{call.name}/bias")], call.name)
    y = apply_activation(g, cfg.get("activation"), y, call.name, call.where)
    return [x.with_(name=y)]


def embedding(call: Call, ins: List[Value], states) -> List[Value]:
    g, ids = call.g, ins[0]
    _float32(call)
    if ids.dtype == FLOAT:  # float token ids (the engine checks they are integral)
        ids = ids.with_(name=g.op("Cast", [ids.name], call.name, to=INT64), dtype=INT64)
    y = g.op("Gather", [g.weight(call.weights[0], f"{call.name}/embeddings"), ids.name], call.name, axis=0)
    mask = None
    if call.config.get("mask_zero"):
        zero = g.const(0, ids.dtype)
        mask = g.op("Not", [g.op("Equal", [ids.name, zero], call.name)], call.name)
    return [Value(y, ids.rank + 1, FLOAT, mask)]


def masking(call: Call, ins: List[Value], states) -> List[Value]:
    g, x = call.g, _as_float(call.g, ins[0], call.name)
    value = float(call.config.get("mask_value", 0.0))
    differs = g.op("Cast", [g.op("Not", [g.op("Equal", [x.name, g.f32(value)], call.name)], call.name)],
                   call.name, to=FLOAT)
    keep = g.op("Greater", [g.op("ReduceSum", [differs, g.i64([-1])], call.name, keepdims=0), g.f32(0.0)], call.name)
    y = g.op("Mul", [x.name, g.op("Unsqueeze", [g.op("Cast", [keep], call.name, to=FLOAT), g.i64([-1])], call.name)],
             call.name)
    return [x.with_(name=y, mask=keep)]


def dropout(call: Call, ins: List[Value], states) -> List[Value]:
    if call.training and float(call.config.get("rate", 0.0)) > 0:
        raise OnnxExportError(f"{call.where}: called with training=True, so it drops units at random in "
                              "predict() too; a graph cannot reproduce that.")
    return [ins[0]]


def activation(call: Call, ins: List[Value], states) -> List[Value]:
    x = _as_float(call.g, ins[0], call.name)
    return [x.with_(name=apply_activation(call.g, call.config.get("activation"), x.name, call.name, call.where))]


def repeat_vector(call: Call, ins: List[Value], states) -> List[Value]:
    g, x, n = call.g, ins[0], int(call.config["n"])
    if x.rank != 2:
        raise OnnxExportError(f"{call.where}: expects a 2-D input, got rank {x.rank}.")
    y = g.op("Tile", [g.op("Unsqueeze", [x.name, g.i64([1])], call.name), g.i64([1, n, 1])], call.name)
    return [Value(y, 3, x.dtype, None)]


def flatten(call: Call, ins: List[Value], states) -> List[Value]:
    x = ins[0]
    return [Value(call.g.op("Reshape", [x.name, call.g.i64([0, -1])], call.name), 2, x.dtype, None)]


def reshape(call: Call, ins: List[Value], states) -> List[Value]:
    x, target = ins[0], [int(d) for d in call.config["target_shape"]]
    y = call.g.op("Reshape", [x.name, call.g.i64([0] + target)], call.name)
    return [Value(y, 1 + len(target), x.dtype, None)]


# --- merges --------------------------------------------------------------------------------

def _merged_mask(call: Call, ins: List[Value]) -> Optional[str]:
    masks = [v.mask for v in ins if v.mask is not None]
    out = masks[0] if masks else None
    for m in masks[1:]:
        out = call.g.op("And", [out, m], call.name)
    return out


def _chain(op):
    def emit(call: Call, ins: List[Value], states) -> List[Value]:
        g = call.g
        xs = [_as_float(g, v, call.name) for v in ins]
        y = xs[0].name
        for v in xs[1:]:
            y = g.op(op, [y, v.name], call.name)
        return [xs[0].with_(name=y, mask=_merged_mask(call, ins))]
    return emit


def average(call: Call, ins: List[Value], states) -> List[Value]:
    out = _chain("Add")(call, ins, states)[0]
    return [out.with_(name=call.g.op("Div", [out.name, call.g.f32(float(len(ins)))], call.name))]


def subtract(call: Call, ins: List[Value], states) -> List[Value]:
    if len(ins) != 2:
        raise OnnxExportError(f"{call.where}: expects exactly 2 inputs, got {len(ins)}.")
    return _chain("Sub")(call, ins, states)


def concatenate(call: Call, ins: List[Value], states) -> List[Value]:
    axis = int(call.config.get("axis", -1))
    rank = ins[0].rank
    mask = _merged_mask(call, ins)
    if mask is not None and axis % rank != rank - 1:
        raise OnnxExportError(f"{call.where}: concatenating masked tensors along axis {axis} (not the feature "
                              "axis) is not supported by fusedlstm's engine either.")
    xs = [_as_float(call.g, v, call.name) for v in ins]
    y = call.g.op("Concat", [v.name for v in xs], call.name, axis=axis)
    return [Value(y, rank, FLOAT, mask)]


# --- wrappers and recurrent layers -----------------------------------------------------------

_ROWWISE = {"Dense", "Activation", "Dropout", "SpatialDropout1D"}


def time_distributed(call: Call, ins: List[Value], states) -> List[Value]:
    """The inner layer on every step. Row-wise layers broadcast over time as they are;
    anything else runs on (batch·time, ...) rows, as the engine runs it."""
    g, x = call.g, ins[0]
    inner_entry = call.config["layer"]
    cls, cfg = inner_entry["class_name"], inner_entry.get("config", {})
    if x.rank < 3:
        raise OnnxExportError(f"{call.where}: expects an input of rank >= 3, got {x.rank}.")
    inner = Call(cfg.get("name", call.name), cls, cfg, call.weights, call.training, 0, call.exporter)
    emit = EMITTERS.get(cls)
    if emit is None:
        raise OnnxExportError(f"{call.where}: the wrapped layer class {cls!r} cannot be exported.")
    if cls in _ROWWISE:
        return [emit(inner, [x], [])[0].with_(mask=x.mask)]
    if cfg.get("stateful"):
        raise OnnxExportError(f"{call.where}: a stateful layer inside TimeDistributed cannot be exported.")
    shape = g.op("Shape", [x.name], call.name)
    lead = g.op("Slice", [shape, g.i64([0]), g.i64([2])], call.name)
    rest = g.op("Slice", [shape, g.i64([2]), g.i64([_INT64_MAX])], call.name)
    rows = g.op("Reshape", [x.name, g.op("Concat", [g.i64([-1]), rest], call.name, axis=0)], call.name)
    y = emit(inner, [Value(rows, x.rank - 1, x.dtype, None)], [])[0]
    yrest = g.op("Slice", [g.op("Shape", [y.name], call.name), g.i64([1]), g.i64([_INT64_MAX])], call.name)
    out = g.op("Reshape", [y.name, g.op("Concat", [lead, yrest], call.name, axis=0)], call.name)
    return [Value(out, y.rank + 1, y.dtype, x.mask)]


def _check_dropout(call: Call, p):
    if call.training and (p.dropout > 0 or p.recurrent_dropout > 0):
        raise OnnxExportError(f"{call.where}: called with training=True and dropout, so predict() itself is "
                              "random; a graph cannot reproduce that.")


def _states(call: Call, states: List[Value], n: int):
    if states and len(states) != n:
        raise OnnxExportError(f"{call.where}: expected {n} initial-state tensors, got {len(states)}.")
    return [s.name for s in states]


def _pad_states(init, n):
    """[h0] or [h0, c0] (or nothing) -> (h0, c0), None where absent."""
    init = list(init) if init else [None] * n
    return (init + [None])[:2]


def lstm(call: Call, ins: List[Value], states) -> List[Value]:
    """LSTM, GRU or SimpleRNN (call.class_name) as one ONNX LSTM, GRU or RNN operator."""
    g, p = call.g, lstm_params(call.config, call.where, call.class_name)
    n = CELLS[p.cell][2]
    _check_dropout(call, p)
    _float32(call)
    x = _as_float(g, ins[0], call.name)
    init = _states(call, states, n)
    if not init and p.stateful:
        init = call.exporter.state_inputs(call, "", p.units, n)
    h0, c0 = _pad_states(init, n)
    y, hT, cT = lstm_direction(g, call.name, p, call.weights, x, h0, c0, p.zero_output_for_mask)
    if p.stateful:
        call.exporter.state_outputs(call, "", hT, cT, p.units)
    outs = [Value(y, 3 if p.return_sequences else 2, FLOAT, x.mask if p.return_sequences else None)]
    if p.return_state:
        outs += [Value(s, 2) for s in (hT, cT)[:n]]
    return outs


def bidirectional(call: Call, ins: List[Value], states) -> List[Value]:
    g, cfg = call.g, call.config
    layer = cfg["layer"]
    cell = layer.get("class_name", "LSTM")
    if cell not in CELLS:
        raise OnnxExportError(f"{call.where}: only a wrapped LSTM, GRU or SimpleRNN can be exported, got {cell}.")
    n = CELLS[cell][2]
    fcfg = dict(layer["config"])
    back = cfg.get("backward_layer")
    if back is not None:
        bcfg = dict(back["config"])
    else:
        bcfg = dict(fcfg, name="backward_" + fcfg.get("name", "lstm"), go_backwards=not fcfg.get("go_backwards", False))
    pf, pb = lstm_params(fcfg, call.where, cell), lstm_params(bcfg, call.where, cell)
    for p in (pf, pb):
        _check_dropout(call, p)
    _float32(call)
    nf = 3 if pf.use_bias else 2
    wf, wb = call.weights[:nf], call.weights[nf:]
    x = _as_float(g, ins[0], call.name)
    init = _states(call, states, 2 * n)
    if not init and pf.stateful:
        init = (call.exporter.state_inputs(call, "forward", pf.units, n)
                + call.exporter.state_inputs(call, "backward", pb.units, n))
    hf0, cf0 = _pad_states(init[:n], n)
    hb0, cb0 = _pad_states(init[n:], n)
    # Keras zeroes masked steps' outputs in both halves when they return sequences.
    yf, hf, cf = lstm_direction(g, f"{call.name}/forward", pf, wf, x, hf0, cf0, pf.return_sequences)
    yb, hb, cb = lstm_direction(g, f"{call.name}/backward", pb, wb, x, hb0, cb0, pb.return_sequences)
    if pf.stateful:
        call.exporter.state_outputs(call, "forward", hf, cf, pf.units)
        call.exporter.state_outputs(call, "backward", hb, cb, pb.units)
    seqs = pf.return_sequences
    if seqs:
        yb = reverse_time(g, yb, f"{call.name}/backward")  # back to input order
    rank, mask = (3, x.mask) if seqs else (2, None)
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat":
        ys = [g.op("Concat", [yf, yb], call.name, axis=-1)]
    elif mode == "sum":
        ys = [g.op("Add", [yf, yb], call.name)]
    elif mode == "mul":
        ys = [g.op("Mul", [yf, yb], call.name)]
    elif mode == "ave":
        ys = [g.op("Div", [g.op("Add", [yf, yb], call.name), g.f32(2.0)], call.name)]
    elif mode is None:
        ys = [yf, yb]
    else:
        raise OnnxExportError(f"{call.where}: unknown merge_mode {mode!r}.")
    outs = [Value(y, rank, FLOAT, mask) for y in ys]
    if pf.return_state:
        outs += [Value(s, 2) for s in (hf, cf)[:n] + (hb, cb)[:n]]
    return outs


EMITTERS: Dict[str, Callable] = {
    "Dense": dense, "Embedding": embedding, "Masking": masking, "Dropout": dropout,
    "SpatialDropout1D": dropout, "Activation": activation, "RepeatVector": repeat_vector,
    "Flatten": flatten, "Reshape": reshape, "Add": _chain("Add"), "Subtract": subtract,
    "Multiply": _chain("Mul"), "Average": average, "Concatenate": concatenate,
    "TimeDistributed": time_distributed, "LSTM": lstm, "GRU": lstm, "SimpleRNN": lstm,
    "Bidirectional": bidirectional,
}
