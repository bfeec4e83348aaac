"""Running an exported graph with ONNX Runtime, stateful models included.

`StatefulSession` carries the state of an exported stateful model from one run
to the next the way the model carries it between predict() calls: each stateful
layer's '<layer>/Y_h', '<layer>/Y_c' outputs become its '<layer>/initial_h',
'<layer>/initial_c' inputs on the next run, until reset_states().
"""

import json

import numpy as np

from .export import STATES_KEY

__all__ = ["inference_session", "state_names", "StatefulSession"]


def inference_session(model, threads=None):
    """An onnxruntime CPU session for an onnx.ModelProto (or its bytes / a path);
    `threads` pins the intra-op pool (inter-op runs sequentially)."""
    # onnxruntime runs graphs; exporting needs only onnx, so it is imported on first use.
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    src = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def state_names(model):
    """The carried states of an exported model: [{'layer', 'direction', 'units', 'inputs', 'outputs'}]."""
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props.get(STATES_KEY, "[]"))


class StatefulSession:
    """An exported model run step after step with its recurrent state carried over.

    >>> s = StatefulSession(proto, batch_size=1)          # doctest: +SKIP
    >>> probs = s.run({"input_layer": ids})[0]            # doctest: +SKIP
    """

    def __init__(self, model, batch_size, threads=None):
        self.session = inference_session(model, threads)
        self.states = state_names(model)
        self.batch_size = int(batch_size)
        state_outputs = {n for s in self.states for n in s["outputs"]}
        self.output_names = [o.name for o in self.session.get_outputs() if o.name not in state_outputs]
        self._fetch = self.output_names + [n for s in self.states for n in s["outputs"]]
        self.reset_states()

    def reset_states(self):
        self._carried = {n: np.zeros((self.batch_size, s["units"]), np.float32)
                         for s in self.states for n in s["inputs"]}

    def run(self, feeds):
        """The model's outputs for `feeds` (input name -> array); the state moves on."""
        outs = self.session.run(self._fetch, {**feeds, **self._carried})
        k = len(self.output_names)
        it = iter(outs[k:])
        for s in self.states:
            for name in s["inputs"]:
                self._carried[name] = next(it)
        return outs[:k]
