"""ONNX Runtime (CPU provider), inference only, on the graph fusedlstm's exporter writes.

The model is the fusedlstm model of the config (`keras_like.build`, the same
weights every framework loads), exported with `fusedlstm.io.onnx.export_onnx`
and run by one InferenceSession with intra_op_num_threads = the bench's thread
count and sequential execution (inter-op 1). Before any timing, the session's
output on the batch is checked against fusedlstm's predict (ABS_TOL): the
columns then time the same computation.
"""

import numpy as np

from bench.frameworks import Framework, Unavailable, keras_like

ABS_TOL = 1e-5


class OnnxRuntime(Framework):
    inference_only = True

    def setup(self, threads: int) -> None:
        if self.precision != "float32":
            # our exporter writes float32 graphs (ONNX has no mixed-precision LSTM operator)
            raise Unavailable(f"float32 only (the exported graph is float32), not {self.precision}")
        try:
            import onnxruntime

            import fusedlstm
            import fusedlstm.layers  # noqa: F401
            import fusedlstm.models  # noqa: F401
            import fusedlstm.optimizers  # noqa: F401
            from fusedlstm.io.onnx import OnnxExportError, export_onnx
            from fusedlstm.io.onnx.runtime import inference_session
        except ImportError as exc:
            raise Unavailable(f"not installed ({exc}); pip install 'fusedlstm[onnx]'") from exc
        self.ort, self.lib, self.threads = onnxruntime, fusedlstm, threads
        self.export, self.session, self.export_error = export_onnx, inference_session, OnnxExportError

    def version(self) -> str:
        return self.ort.__version__

    def build(self, cfg, weights):
        ours = keras_like.build(self.lib, cfg, weights)
        try:
            proto = self.export(ours)
        except self.export_error as exc:  # a layer the exporter does not write (yet): no column for this config
            raise Unavailable(f"no ONNX export: {str(exc).split(';')[0]}") from exc
        return _Model(ours, self.session(proto, threads=self.threads))

    def fit_epoch(self, *args, **kwargs):
        raise Unavailable("inference only")


class _Model:
    def __init__(self, ours, session):
        self.ours, self.session = ours, session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def prepare(self, x, y, y_ids):
        feeds = {self.input_name: x}
        got = self.session.run([self.output_name], feeds)[0]
        want = np.asarray(self.ours.predict_on_batch(x))
        err = float(np.max(np.abs(got - want)))
        if not err <= ABS_TOL:
            raise AssertionError(f"the exported graph differs from fusedlstm's predict by {err:.3g} "
                                 f"(> {ABS_TOL:g}); not timing a different computation")
        return feeds

    def train(self, batch):
        raise NotImplementedError("onnxruntime runs inference only in this bench")

    def infer(self, feeds):
        return self.session.run([self.output_name], feeds)[0]

    def to_numpy(self, out):
        return out
