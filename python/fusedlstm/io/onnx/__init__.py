"""ONNX export of fusedlstm models, checked against ONNX Runtime.

    export_onnx(model, "m.onnx")                 # also model.export("m.onnx", format="onnx")
    export_onnx(model, opset=17, dynamic_batch=True, dynamic_time=True) -> onnx.ModelProto

The graph computes what `model.predict` computes (float32; ONNX Runtime agrees to
~1e-6): LSTM, GRU and SimpleRNN as ONNX's LSTM, GRU and RNN operators, Keras masks included. What cannot be
written exactly is refused with `OnnxExportError` naming the layer and the reason.
Needs the `onnx` package (pip install 'fusedlstm[onnx]'); running the graph needs
onnxruntime (see `runtime.StatefulSession` for stateful models).

Exported: Sequential and functional models (several inputs and outputs, shared
layers, initial_state wiring) made of LSTM (every option: activations tanh,
sigmoid, hard_sigmoid (Keras 3 and 2), relu, linear; go_backwards;
return_sequences/return_state; stateful; masks with any padding),
GRU and SimpleRNN (the same options), Bidirectional of any of the three (all merge modes), Embedding (mask_zero), Masking, Dense,
TimeDistributed, RepeatVector, Dropout/SpatialDropout1D (identity), Activation,
Flatten, Reshape, Concatenate, Add, Subtract, Multiply, Average.
"""

import os

import onnx

from ...atomic import atomic_path
from .describe import describe
from .errors import OnnxExportError
from .export import DEFAULT_OPSET, MIN_OPSET, STATES_KEY, build_onnx

__all__ = ["export_onnx", "OnnxExportError", "DEFAULT_OPSET", "MIN_OPSET", "STATES_KEY"]


def export_onnx(model, path=None, *, opset=DEFAULT_OPSET, dynamic_batch=True, dynamic_time=True):
    """Write `model` as an ONNX graph; returns the onnx.ModelProto.

    Args:
        model: a built fusedlstm Sequential or functional model (float32).
        path: file to write (atomically), or None to only return the model.
        opset: ONNX opset, from MIN_OPSET (13) to what the installed onnx knows.
        dynamic_batch: the batch axis of every input is free ('batch').
        dynamic_time: the time axis of sequence inputs is free ('time'), whatever
            length the model was built with (axes the model leaves free always are).

    Raises:
        OnnxExportError: a layer or option that ONNX cannot express exactly.
    """
    proto = build_onnx(describe(model), opset=opset, dynamic_batch=dynamic_batch, dynamic_time=dynamic_time)
    if path is not None:
        with atomic_path(os.fspath(path)) as tmp:
            onnx.save_model(proto, tmp)
    return proto
