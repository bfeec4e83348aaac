"""A small ONNX graph builder: named nodes, constants, weights, and typed values.

Every tensor the exporter handles is a `Value`: the ONNX name of the tensor plus
what the layer emitters need to know about it statically — its rank, its element
type, and the Keras mask travelling with it (the name of a bool (batch, time)
tensor, or None). Keras masks are not data: they ride beside the tensors the way
they ride beside the arrays in the engine, and only the recurrent layers read them.
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Value", "GraphBuilder", "FLOAT", "INT64", "INT32", "BOOL"]

FLOAT, INT64, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL


@dataclass(frozen=True)
class Value:
    name: str
    rank: int
    dtype: int = FLOAT
    mask: Optional[str] = None  # bool (batch, time) Keras mask, if any

    def with_(self, **kw) -> "Value":
        return replace(self, **kw)


class GraphBuilder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self):
        self.nodes: List[onnx.NodeProto] = []
        self.initializers: List[onnx.TensorProto] = []
        self._names: Dict[str, int] = {}
        self._consts: Dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        """A tensor name not used before, readable in a graph viewer ('lstm/Y', 'lstm/Y_1')."""
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def reserve(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"ONNX tensor name {name!r} is used twice")
        self._names[name] = 1

    def op(self, op_type: str, inputs: Sequence[str], hint: str, n_out: int = 1, outputs=None, **attrs):
        """Append one node; returns its output name (or list of names when n_out > 1)."""
        if outputs is None:
            outputs = [self.fresh(f"{hint}/{op_type}" if n_out == 1 else f"{hint}/{op_type}:{k}")
                       for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=self.fresh(f"{hint}/{op_type}#"),
                                           **attrs))
        return outputs[0] if n_out == 1 else list(outputs)

    def weight(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        # np.array, not np.ascontiguousarray: that would turn a scalar into shape (1,).
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def const(self, value, dtype) -> str:
        """A shared constant (scalars and small index lists: axes, shapes, fill values)."""
        arr = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
        key = (dtype, arr.shape, arr.tobytes())
        name = self._consts.get(key)
        if name is None:
            name = self.weight(arr, "const")
            self._consts[key] = name
        return name

    def i64(self, value) -> str:
        return self.const(value, INT64)

    def f32(self, value) -> str:
        return self.const(value, FLOAT)
