"""The Trainer: what a model adds to its graph to be trained (keras.Model's training API).

Split by job:

* compiling.py: compile(), the loss of each output, the metrics, get_compile_config /
  compile_from_config;
* step.py: one step (forward, losses, backward into the flat gradient buffer, update)
  and the step interface strategies build on: compute_step, apply_gradients, record_step;
* penalties.py: regularizer penalties in the loss and constraints after each update;
* loops.py: fit / evaluate / predict over arrays, generators and Sequences;
* training_state.py: get_training_state / set_training_state and fit's position;
* strategy.py: the strategy that runs each step (compile's `distribute`).

The trainer knows a distribution strategy only through the object passed to compile();
resume (checkpoint files) and distributed training use only the public interface above.
"""

from .. import metrics as _metrics
from ..layers.base import assign_weights
from ..saving import export_model, load_weights, save_model, save_weights
from .compiling import CompileMixin
from .loops import LoopMixin
from .penalties import PenaltyMixin
from .step import StepMixin
from .training_state import StateMixin

__all__ = ["Trainer"]


class Trainer(LoopMixin, StepMixin, PenaltyMixin, CompileMixin, StateMixin):
    """Mixin for the models: everything after the graph is built."""

    def __init__(self):
        self.optimizer = None
        self.compiled = False
        self.loss = None
        self.history = None
        self.stop_training = False
        self._loss_specs = None
        self._compile_args = None
        self._train_steps = None
        self._metric_cfg = None
        self._metric_objs = None
        self._has_metrics = False
        self._loss_tracker = _metrics.Mean(name="loss")
        self._out_loss_trackers = []
        # Set by fit when a callback (TerminateOnNaN) asks that a step whose loss or
        # gradient is not finite leave the weights and optimizer state untouched.
        self._skip_nonfinite = False
        self._step_skipped = False
        self._fit_progress = None
        self._pending_resume = None
        self._pending_metric_state = None
        self._sigint_guard = None
        self._distribute = None  # the strategy given to compile(distribute=...); None: one process
        self._penalty_cache = None  # penalties.py: the regularized/constrained weights, found once

    # --- weights and saving -----------------------------------------------------------------------

    def get_weights(self):
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        assign_weights(self.weights, weights, f"model '{self.name}'", "path")

    def count_params(self):
        return int(sum(v.value.size for v in self.weights))

    def parameter_store(self):
        """The flat parameter store of the trainable weights (fusedlstm.variables.ParamStore):
        `flat` the values, `grad` the gradients, one contiguous buffer each."""
        return self._ensure_store()

    def save(self, filepath, overwrite=True, **kwargs):
        if not self._strategy().allows_save():
            return  # data-parallel: rank 0 writes, the other ranks hold the same weights
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        if not self._strategy().allows_save():
            return
        save_weights(self, filepath, overwrite=overwrite, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Write the model as an inference artifact (Keras's signature). fusedlstm writes
        ONNX: `model.export("m.onnx", format="onnx")`, keyword arguments of
        fusedlstm.io.onnx.export_onnx (opset=, or Keras's opset_version=; dynamic_batch=,
        dynamic_time=). The batch and time axes are free by default, which is what an
        input_signature would otherwise be for."""
        if input_signature is not None:
            raise NotImplementedError(
                "model.export: input_signature is not supported; the exported graph's batch and time axes "
                "are free by default (dynamic_batch=False / dynamic_time=False fix them to the built shape).")
        if not self._strategy().allows_save():
            return None
        result = export_model(self, filepath, format, **kwargs)
        if verbose is None or verbose:
            print(f"Saved artifact at '{filepath}'.")
        return result

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)
