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

The common plan of a sampling model runs in one C++ call per step (`_core.StreamKernel`,
csrc/stream.h): token ids (through the Embedding's kept E·W table) or dense input ->
one or more stacked LSTM / GRU / SimpleRNN layers -> Dense / TimeDistributed(Dense)
heads. It makes the layers' own kernel calls, with their weights, packings and options,
and writes the new states into the layers' state arrays in place. A head's softmax is
the kernels' there (a few ulp from NumPy's exp, which predict_on_batch uses), unless
`exact=True`, which applies the layer's own NumPy activation: bitwise predict_on_batch.
Anything else (other layers or wrappers, return_state, a layer called with training=,
several outputs, inputs of another kind, states that are not writeable arrays of the
model's dtype) takes the Python path; `stream.uses_kernel` says which one a model gets.
"""

import numpy as np

from .. import _core
from ..layers.base import Context
from ..layers.dense import Dense
from ..layers.gru import GRU
from ..layers.lstm import LSTM
from ..layers.recurrent import FusedRecurrent
from ..layers.simple_rnn import SimpleRNN
from ..layers.wrappers import TimeDistributed
from ..validation import check_finite
from ..variables import _WRITES, write_version
from .fusion import EmbeddingLSTM

__all__ = ["Stream"]


class Stream:
    """One step of a stateful model per call: `stream.step(x)` == `model.predict_on_batch(x)`
    (bitwise, except a softmax head computed by the C++ step: within a few ulp unless `exact`).

    Args:
        model: a built model with one input whose recurrent layers are all stateful (the
            batch size is then fixed, as Keras's sampling models are built).
        exact: apply a softmax head with the layer's NumPy softmax (bitwise
            predict_on_batch, ~4 us more per step) instead of the kernels' (within a few
            ulp of it).

    A step updates the stateful layers' `states` arrays in place.

    >>> stream = Stream(model)          # doctest: +SKIP
    >>> probs = stream.step(ids[:, :1])  # doctest: +SKIP
    """

    def __init__(self, model, exact=False):
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
        self._exact = bool(exact)
        self._kernel, self._post = None, None
        self._fits = not self._list and len(self._out_slots) == 1
        self._make_kernel()

    def reset_states(self):
        """Zero the carried states (the model's reset_states)."""
        self.model.reset_states()

    def step(self, x):
        """The model's outputs for `x` (batch_size rows, any number of steps), states carried on."""
        k = self._kernel
        if k is not None:
            y = k.step(x)
            if y is not None:
                return y if self._post is None else self._post(y)
            if not k.current:  # a weight was written: read the weights again
                self._make_kernel()
                return self.step(x)
        return self._plan_step(x)

    __call__ = step

    @property
    def exact(self):
        """Whether a softmax head is NumPy's (bitwise predict_on_batch), fixed at construction."""
        return self._exact

    @property
    def uses_kernel(self):
        """Whether steps run as one C++ call (the model's plan fits `_core.StreamKernel`)."""
        return self._kernel is not None

    def _make_kernel(self):
        self._kernel, self._post = None, None
        if self._fits:
            made = _stream_kernel(self.model, self.batch_size, self._ids, self._float, self._exact)
            if made is not None:
                self._kernel, self._post = made

    def _plan_step(self, x):
        """A step through the plan's layers (the Python path)."""
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


# ---- the C++ step (_core.StreamKernel) ------------------------------------------------

_KERNEL_HEAD_ACTS = ("linear", "relu", "softmax")
# The layers whose inference forward is exactly their kernel call (a subclass may change it).
_KERNEL_RNNS = (LSTM, GRU, SimpleRNN)


def _stream_kernel(model, batch, ids, dtype, exact):
    """(StreamKernel, post) for the model's plan, or None when the plan does not fit.

    post: the last head's activation when the kernel leaves it to NumPy, else None."""
    if dtype not in (np.float32, np.float64):
        return None
    steps = model._plan.steps
    slot = model._plan.input_slots[0]
    chain = []
    for st in steps:  # one chain: each step reads the one output of the step before
        if st.training is not None or len(st.ins) != 1 or st.ins[0] != slot or len(st.outs) != 1:
            return None
        chain.append(st.op)
        slot = st.outs[0]
    if slot != model._plan.output_slots[0]:
        return None
    rnns, heads = [], []
    for k, op in enumerate(chain):
        if k == 0 and ids:
            if not (type(op) is EmbeddingLSTM and type(op.rnn) in _KERNEL_RNNS):
                return None
            rnns.append(op.rnn)
        elif type(op) in _KERNEL_RNNS and not heads:
            rnns.append(op)
        elif type(op) is Dense:
            heads.append(op)
        elif type(op) is TimeDistributed and type(op.layer) is Dense and not op._per_step():
            heads.append(op.layer)
        else:
            return None
    if not rnns:
        return None
    for r in rnns:
        if (not r.stateful or r.return_state or r._cell_kind is None or r.dtype != dtype
                or r._state_batch != batch):
            return None
    for r in rnns[:-1]:
        if not r.return_sequences:
            return None
    post = None
    for k, d in enumerate(heads):
        name = "linear" if d._linear else getattr(d.activation, "__name__", None)
        if d.dtype != dtype:
            return None
        if name not in _KERNEL_HEAD_ACTS or (exact and name == "softmax"):
            if k + 1 < len(heads):
                return None
            post = _post_activation(d)
    emb = chain[0].emb if ids else None
    kernel = _core.StreamKernel(batch, np.dtype(dtype).name, ids, emb.input_dim if ids else rnns[0].kernel.shape[0],
                                _WRITES, mask_zero=bool(ids and emb.mask_zero))
    version = write_version()
    # A table too large to keep: predict_on_batch gathers E's rows into the layer's kernel instead.
    table = ids and chain[0].table_keepable()
    if ids and not table:
        kernel.set_embedding(emb.embeddings.value)
    for k, r in enumerate(rnns):
        W = chain[0]._tables(False)[0] if (k == 0 and table) else r.kernel.value
        kernel.add_recurrent(r, r._cell_kind, W, r.recurrent_kernel.value, r.bias.value if r.use_bias else None,
                             r._packed_recurrent(False, batch), activation=r._act,
                             recurrent_activation=getattr(r, "_ract", "sigmoid"),
                             reset_after=getattr(r, "reset_after", True), return_sequences=r.return_sequences,
                             go_backwards=r.go_backwards, zero_output_for_mask=r.zero_output_for_mask,
                             precision=r._precision)
    for k, d in enumerate(heads):
        name = "linear" if (d._linear or (post is not None and k + 1 == len(heads))) else d.activation.__name__
        kernel.add_dense(d.kernel.value, d.bias.value if d.use_bias else None, activation=name,
                         precision=d._precision)
    if write_version() != version:  # the table or a packing was made with a write in between (never expected)
        return None
    return kernel, post


def _post_activation(d):
    """The Dense layer's own activation on the kernel's logits, as its forward applies it (on rows)."""
    act, units = d.activation, d.units

    def post(z):
        return act(z.reshape(-1, units)).reshape(z.shape)
    return post
