"""Walk a model's description and assemble the ONNX model.

Graph inputs are the model's Input layers (names kept); graph outputs are named
after the layer producing them ('dense', or 'lstm/0/1' for a second output).
Stateful recurrent layers get their carried state as extra graph inputs and
outputs, '<layer>/initial_h', '<layer>/initial_c' -> '<layer>/Y_h', '<layer>/Y_c'
('<layer>/forward/...' and '<layer>/backward/...' for Bidirectional), listed in
the model's metadata under 'fusedlstm.states' so a runtime can carry them.
"""

import json
from typing import Dict, List

import numpy as np
import onnx
from onnx import helper

from ..._version import __version__
from .describe import ModelSpec, Ref
from .errors import OnnxExportError
from .graph import FLOAT, GraphBuilder, Value
from .layers import EMITTERS, Call

__all__ = ["build_onnx", "MIN_OPSET", "DEFAULT_OPSET", "STATES_KEY"]

MIN_OPSET = 13      # Softmax over one axis, Unsqueeze/Squeeze/ReduceSum axes as inputs
DEFAULT_OPSET = 17
STATES_KEY = "fusedlstm.states"


def _onnx_dtype(dtype: str) -> int:
    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (TypeError, KeyError):
        raise OnnxExportError(f"model input dtype {dtype!r} has no ONNX counterpart.") from None


class Exporter:
    def __init__(self, spec: ModelSpec, dynamic_batch: bool, dynamic_time: bool):
        self.spec = spec
        self.g = GraphBuilder()
        self.dynamic_batch, self.dynamic_time = dynamic_batch, dynamic_time
        self.inputs: List[onnx.ValueInfoProto] = []
        self.outputs: List[onnx.ValueInfoProto] = []
        self.state_outputs_info: List[onnx.ValueInfoProto] = []
        self.states: List[dict] = []
        self._stateful_seen = set()

    # --- stateful layers -------------------------------------------------------------------

    def _prefix(self, call: Call, half: str) -> str:
        return f"{call.name}/{half}" if half else call.name

    def state_inputs(self, call: Call, half: str, units: int, n: int = 2) -> List[str]:
        """Graph inputs for a stateful layer's carried states: initial_h (and initial_c for an LSTM, n=2)."""
        if call.node > 0 or (call.name, half) in self._stateful_seen:
            raise OnnxExportError(f"{call.where}: a stateful layer called more than once cannot be exported "
                                  "(which call's state would carry over?).")
        self._stateful_seen.add((call.name, half))
        names = [f"{self._prefix(call, half)}/initial_h", f"{self._prefix(call, half)}/initial_c"][:n]
        for name in names:
            self.g.reserve(name)
            self.inputs.append(helper.make_tensor_value_info(name, FLOAT, [self._batch_dim(), units]))
        self.states.append({"layer": call.name, "direction": half or None, "units": units, "inputs": names,
                            "outputs": [f"{self._prefix(call, half)}/Y_h", f"{self._prefix(call, half)}/Y_c"][:n]})
        return names

    def state_outputs(self, call: Call, half: str, h: str, c: str, units: int) -> None:
        for src, name in zip((h, c), (f"{self._prefix(call, half)}/Y_h", f"{self._prefix(call, half)}/Y_c")):
            if src is None:  # GRU, SimpleRNN: no c
                continue
            self.g.reserve(name)
            self.g.op("Identity", [src], call.name, outputs=[name])
            self.state_outputs_info.append(helper.make_tensor_value_info(name, FLOAT, [self._batch_dim(), units]))

    # --- graph ends ---------------------------------------------------------------------------

    def _batch_dim(self):
        return "batch"

    def _input_dims(self, spec, feeds_ids: bool):
        shape, rank = spec.shape, len(spec.shape)
        time_axes = range(1, rank) if feeds_ids else range(1, rank - 1)
        dims = []
        for k, d in enumerate(shape):
            if k == 0:
                dims.append("batch" if self.dynamic_batch or d is None else int(d))
            elif k in time_axes and (self.dynamic_time or d is None):
                dims.append("time" if len(self.spec.inputs) == 1 else f"{spec.name}/time")
            elif d is None:
                dims.append(f"{spec.name}/dim{k}")
            else:
                dims.append(int(d))
        return dims

    def _feeds_ids(self, ref: Ref, dtype: int) -> bool:
        if dtype != FLOAT:
            return True
        return any(c.class_name == "Embedding" and c.inputs and c.inputs[0] == ref for c in self.spec.calls)

    # --- the walk -------------------------------------------------------------------------------

    def build(self) -> onnx.GraphProto:
        values: Dict[Ref, Value] = {}
        for spec in self.spec.inputs:
            dtype = _onnx_dtype(spec.dtype)
            if dtype not in (FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64):
                raise OnnxExportError(f"model input '{spec.name}' has dtype {spec.dtype}; the exporter writes "
                                      "float32 models with float32 or int32/int64 (token id) inputs.")
            self.g.reserve(spec.name)
            dims = self._input_dims(spec, self._feeds_ids(spec.ref, dtype))
            self.inputs.append(helper.make_tensor_value_info(spec.name, dtype, dims))
            values[spec.ref] = Value(spec.name, len(spec.shape), dtype)
        weights_cache: Dict[str, list] = {}
        for c in self.spec.calls:
            emit = EMITTERS.get(c.class_name)
            where = f"layer '{c.layer}' ({c.class_name})"
            if emit is None:
                raise OnnxExportError(f"{where}: this layer class cannot be exported to ONNX; exportable: "
                                      f"{sorted(EMITTERS)}.")
            if c.layer not in weights_cache:
                weights_cache[c.layer] = [np.asarray(w) for w in self.spec.weights(c.layer)]
            call = Call(c.layer, c.class_name, c.config, weights_cache[c.layer], c.training, c.node, self)
            outs = emit(call, [values[r] for r in c.inputs], [values[r] for r in c.states])
            for k, v in enumerate(outs):
                values[Ref(c.layer, c.node, k)] = v
        for ref, name in zip(self.spec.outputs, self.spec.output_names):
            v = values.get(ref)
            if v is None:
                raise OnnxExportError(f"model output {tuple(ref)} is not produced by any layer call.")
            self.g.reserve(name)
            self.g.op("Identity", [v.name], name, outputs=[name])
            self.outputs.append(helper.make_tensor_value_info(name, v.dtype, [None] * v.rank))
        # The model's outputs first, in order, then the carried states.
        return helper.make_graph(self.g.nodes, self.spec.name, self.inputs, self.outputs + self.state_outputs_info,
                                 initializer=self.g.initializers)


def build_onnx(spec: ModelSpec, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
               dynamic_time: bool = True) -> onnx.ModelProto:
    """The checked ONNX model for a model description."""
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"Received an invalid value for argument `opset`, expected an integer in "
                         f"[{MIN_OPSET}, {latest}], got {opset!r}.")
    ex = Exporter(spec, bool(dynamic_batch), bool(dynamic_time))
    graph = ex.build()
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fusedlstm",
                              producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(model, {STATES_KEY: json.dumps(ex.states)})
    # A graph that fails the checker is a bug of the exporter, never the user's problem to find.
    onnx.checker.check_model(model, full_check=True)
    return model
