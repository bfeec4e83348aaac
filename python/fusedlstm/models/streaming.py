"""A stateful model fed one step at a time, at little more than its kernels' cost.

`Stream(model)` runs the model's plan like `predict_on_batch` does, with the same
numbers and the same carried states (the stateful layers' `states`, so stream steps and
predict_on_batch calls may be mixed), but with the per-call work done once:

* the plan is compiled at construction into one small function per step; the common
  steps run straight on the kernels: Embedding -> LSTM/GRU/SimpleRNN reads rows of the
  kept E·W table (models/fusion.py) with U kept packed (layers/recurrent.py), Dense and
  TimeDistributed(Dense) are one product, a bias and the activation; any other step runs
  its layer's usual forward;
* an input of the expected kind (token ids of the model's batch size, or floats of the
  model dtype and shape) is checked with a few comparisons; anything else goes through
  predict_on_batch, whose checks raise the usual clear errors.

The kept packings and tables are checked against the weights' write counter at every
step (one integer compare each), so a stream never runs on stale weights.
"""

import numpy as np

from .. import _core
from ..layers.base import Context
from ..layers.dense import Dense
from ..layers.recurrent import FusedRecurrent
from ..layers.wrappers import TimeDistributed
from ..validation import check_finite
from .fusion import EmbeddingLSTM

__all__ = ["Stream"]


class Stream:
    """One step of a stateful model per call: `stream.step(x)` == `model.predict_on_batch(x)`.

    Args:
        model: a built model with one input whose recurrent layers are all stateful (the
            batch size is then fixed, as Keras's sampling models are built).

    >>> stream = Stream(model)          # doctest: +SKIP
    >>> probs = stream.step(ids[:, :1])  # doctest: +SKIP
    """

    def __init__(self, model):
        if not getattr(model, "built", False) or getattr(model, "_plan", None) is None:
            raise ValueError("Stream: the model must be built (call it once, or give its Input a batch_shape).")
        if len(model.inputs) != 1:
            raise NotImplementedError(f"Stream: model '{model.name}' has {len(model.inputs)} inputs; a stream feeds one.")
        rnns = [l for l in _walk(model) if isinstance(l, FusedRecurrent)]
        if not rnns:
            raise ValueError(f"Stream: model '{model.name}' has no recurrent layer to carry a state.")
        for l in rnns:
            if not l.stateful:
                raise ValueError(
                    f"Stream: layer '{l.name}' is not stateful; a stream carries the states between steps, so "
                    "build the model with stateful=True on its recurrent layers (and a fixed batch size).")
        self.model = model
        self.batch_size = rnns[0]._state_batch
        self._ids = bool(model._input_takes_ids[0])
        self._float = np.dtype(model.dtype)
        shape = tuple(model.inputs[0].shape)
        self._ndim, self._features = len(shape), (shape[-1] if not self._ids else None)
        p = model._plan
        self._n_slots, self._in_slot, self._out_slots = p.n_slots, p.input_slots[0], list(p.output_slots)
        self._steps = [(_compile(st), st.ins, st.outs) for st in p.steps]
        self._list = bool(model._outputs_list)

    def reset_states(self):
        """Zero the carried states (the model's reset_states)."""
        self.model.reset_states()

    def step(self, x):
        """The model's outputs for `x` (batch_size rows, any number of steps), states carried on."""
        a = self._checked(x)
        if a is None:  # not the expected kind: predict_on_batch checks it (and says what is wrong)
            return self.model.predict_on_batch(x)
        vals = [None] * self._n_slots
        masks = [None] * self._n_slots
        vals[self._in_slot] = a
        ctx = None
        for run, ins, outs in self._steps:
            if ctx is None and not run.direct:
                ctx = Context()
            o, m = run([vals[i] for i in ins], [masks[i] for i in ins], ctx)
            for i, v, mk in zip(outs, o, m):
                vals[i] = v
                masks[i] = mk
        out = [vals[s] for s in self._out_slots]
        return out if self._list else out[0]

    __call__ = step

    def _checked(self, x):
        """`x` ready for the plan when it is of the expected kind, else None."""
        if type(x) is not np.ndarray or x.ndim != self._ndim or x.shape[0] != self.batch_size:
            return None
        if self._ids:
            if x.dtype != np.int32 and x.dtype != np.int64:
                return None
            return x  # range checked by the step that reads the ids (as predict_on_batch does)
        if x.dtype != self._float or x.shape[-1] != self._features:
            return None
        check_finite(x, f"Input 0 (`x`) of model '{self.model.name}'")
        return x


def _walk(model):
    for l in model.layers:
        yield l
        inner = getattr(l, "layer", None)
        if inner is not None:
            yield inner


class _Generic:
    """A step run by its layer's forward (inference)."""

    direct = False

    def __init__(self, op, training=None):
        self.op, self.training = op, bool(training)

    def __call__(self, ins, masks, ctx):
        outs, oms, _ = self.op._fwd(ins, masks, self.training, ctx)
        return outs, oms


class _EmbeddingRnn:
    """Embedding -> LSTM/GRU/SimpleRNN: the kernel reads rows of the kept table."""

    direct = True

    def __init__(self, op):
        self.op, self.emb, self.rnn = op, op.emb, op.rnn

    def __call__(self, ins, masks, ctx):
        ids = self.emb.ids(ins[0])
        rnn = self.rnn
        (table,) = self.op._tables(False)
        y, final, _ = rnn._kernel_forward(ids, table, rnn.states, self.emb.mask_of(ids), None,
                                          rnn.zero_output_for_mask, False)
        rnn.states = list(final)
        outs = [y] + list(final) if rnn.return_state else [y]
        m = self.emb.mask_of(ids) if rnn.return_sequences else None
        return outs, [m] + [None] * (len(outs) - 1)


class _Dense:
    """Dense, or TimeDistributed(Dense): activation(x·W + b) over the last axis."""

    direct = True

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, ins, masks, ctx):
        d = self.layer
        x = ins[0]
        lead = x.shape[:-1]
        z = _core.matmul(x.reshape(-1, x.shape[-1]), d.kernel.value, precision=d._precision)
        if d.use_bias:
            z += d.bias.value
        y = z if d._linear else d.activation(z)
        return [y.reshape(lead + (d.units,))], [masks[0]]


def _compile(st):
    op = st.op
    if st.training is not None:  # a layer called with training= fixed (e.g. dropout at inference)
        return _Generic(op, st.training)
    if isinstance(op, EmbeddingLSTM) and isinstance(op.rnn, FusedRecurrent) and len(st.ins) == 1 \
            and op.table_keepable():
        return _EmbeddingRnn(op)
    if type(op) is Dense:
        return _Dense(op)
    if type(op) is TimeDistributed and type(op.layer) is Dense and not op._per_step():
        return _Dense(op.layer)
    return _Generic(op)
