"""Plan-level fusions of a producer layer into the recurrent layer (LSTM, GRU, SimpleRNN) that consumes it.

Both rewrites feed the LSTM kernel integer ids and a lookup table instead of a
dense (B, T, I) input, so the input projection x·W is computed once per distinct
row rather than once per (batch, step):

* Embedding -> LSTM / Bidirectional: table = E·W (V, 4H), ids are the tokens
  (mask_zero masks id 0 as Keras does). Backward: dE = dtable·Wᵀ, dW = Eᵀ·dtable.
  Chosen per call when V <= B·T (otherwise the gather + (B·T, D)·W GEMM is
  cheaper) and, in training, when the LSTM has no input dropout (a per-sample
  dropout mask makes the projection differ per sample).
* RepeatVector(n) -> LSTM / Bidirectional: table = x·W (B, 4H), ids[b, t] = b:
  the repeated input is projected once per sample, never materialised. LSTM
  input dropout (one (B, I) mask per call, reused over time) applies to x first.

The table products take the recurrent layer's precision (bfloat16 operands and float32
sums under mixed_bfloat16, as the layer's own x·W): the forward table equals the unfused
route's products row for row; backward, dtable is summed over the rows sharing an id in
float32 before its one rounding to bfloat16.

In inference the Embedding's table is kept (with the weights it was made from, until
any weight is written: variables.write_version) when it is small, so that a call on
a few ids (a streaming step) reads rows of it instead of gathering and projecting.

A fused step behaves as a layer in the plan (same _fwd/_bwd protocol); the model's
`layers`, weights and summary are unchanged.
"""

import numpy as np

from .. import _core
from ..layers.core import RepeatVector
from ..layers.embedding import Embedding
from ..layers.recurrent import FusedRecurrent, dropout_mask
from ..layers.wrappers import Bidirectional
from ..variables import write_version

# Largest E·W table (bytes, all directions) an EmbeddingLSTM keeps between inference calls.
_KEPT_TABLE_BYTES = 8 << 20


def _rnn_kernels(rnn):
    if isinstance(rnn, Bidirectional):
        return [rnn.forward_layer, rnn.backward_layer]
    return [rnn]


def _run_rnn(rnn, ids, tables, inputs, mask, training, ctx):
    if isinstance(rnn, Bidirectional):
        return rnn._run_both(ids, tables[0], ids, tables[1], inputs, mask, training, ctx)
    return rnn._run(ids, tables[0], inputs, mask, training, ctx)


def _bwd_rnn(rnn, cache, douts, ctx):
    """Backward through the LSTM(s): (d state inputs, [dtable per direction])."""
    if isinstance(rnn, Bidirectional):
        _, dWf, dWb, extra = rnn._bwd_both(cache, douts, False, ctx)
        return extra, [dWf, dWb]
    _, dinit, dW = rnn._run_backward(cache, douts, False, ctx)
    return (list(dinit) if cache[2] else []), [dW]


class EmbeddingLSTM:
    """Embedding followed by an LSTM (or Bidirectional LSTM) as one plan step."""

    def __init__(self, emb, rnn):
        self.emb, self.rnn = emb, rnn
        self.layers = [emb, rnn]
        self.activity_regularizer = rnn.activity_regularizer
        self._kept = None  # (write_version, E, [W per direction], [table per direction]) in inference
        self._seen = None  # write_version of the last inference call that did not use a table

    def _kept_tables(self, want_grads):
        """The inference tables made from the current weights, or None."""
        c = self._kept
        if want_grads or c is None or c[0] != write_version() or c[1] is not self.emb.embeddings.value:
            return None
        if any(w is not k.kernel.value or p != k._precision for (w, p), k in zip(c[2], _rnn_kernels(self.rnn))):
            return None
        return c[3]

    def _tables(self, want_grads):
        kept = self._kept_tables(want_grads)
        if kept is not None:
            return kept
        E = self.emb.embeddings.value
        made_from = [(k.kernel.value, k._precision) for k in _rnn_kernels(self.rnn)]
        tables = [_core.matmul(E, W, precision=p) for W, p in made_from]
        if not want_grads and sum(t.nbytes for t in tables) <= _KEPT_TABLE_BYTES:
            self._kept = (write_version(), E, made_from, tables)
        return tables

    def _use_table(self, ids, training, want_grads):
        if training and any(k.dropout > 0 for k in _rnn_kernels(self.rnn)):
            return False
        if ids.ndim != 2:
            return False
        if self.emb.input_dim <= ids.size:
            return True
        if want_grads:
            return False
        if self._kept_tables(False) is not None:
            return True
        # Fewer ids than table rows: the table pays once it is reused, so it is made (and
        # kept) at the second inference call on the same weights, when it is small.
        v = write_version()
        if self._seen == v:
            return self.table_keepable()
        self._seen = v
        return False

    def table_keepable(self):
        """Whether the inference tables are small enough to keep between calls."""
        kernels = [k.kernel.value for k in _rnn_kernels(self.rnn)]
        return sum(self.emb.input_dim * W.shape[1] * W.itemsize for W in kernels) <= _KEPT_TABLE_BYTES

    def _fwd(self, inputs, masks, training, ctx):
        ids = self.emb.ids(inputs[0])
        if not self._use_table(ids, training, ctx.want_grads):
            eo, em, ec = self.emb._fwd_ids(ids, ctx)
            ro, rm, rc = self.rnn._fwd([eo[0]] + list(inputs[1:]), [em[0]] + list(masks[1:]), training, ctx)
            return ro, rm, (False, ec, rc)
        tables = self._tables(ctx.want_grads)
        outs, oms, rc = _run_rnn(self.rnn, ids, tables, [ids] + list(inputs[1:]), self.emb.mask_of(ids), training, ctx)
        return outs, oms, (True, None, rc)

    def _bwd(self, cache, douts, need, ctx):
        fused, ec, rc = cache
        if not fused:
            dins = self.rnn._bwd(rc, douts, [True] + list(need[1:]), ctx)
            self.emb._bwd(ec, [dins[0]], [False], ctx)
            return [None] + list(dins[1:])
        extra, dtables = _bwd_rnn(self.rnn, rc, douts, ctx)
        E = self.emb.embeddings.value
        for k, dt in zip(_rnn_kernels(self.rnn), dtables):
            out, acc = ctx.grad_out(self.emb.embeddings)
            if out is not None:
                _core.matmul(dt, k.kernel.value, trans_b=True, out=out, accumulate=acc, precision=k._precision)
            out, acc = ctx.grad_out(k.kernel)
            if out is not None:
                _core.matmul(E, dt, trans_a=True, out=out, accumulate=acc, precision=k._precision)
        return [None] + extra


class RepeatLSTM:
    """RepeatVector(n) followed by an LSTM (or Bidirectional LSTM) as one plan step."""

    def __init__(self, rep, rnn):
        self.rep, self.rnn = rep, rnn
        self.layers = [rep, rnn]
        self.activity_regularizer = rnn.activity_regularizer
        self._ids = {}

    def _ids_for(self, B):
        # ids[b, t] = b; read-only and shared, so cached per (B, n).
        key = B
        ids = self._ids.get(key)
        if ids is None:
            ids = np.ascontiguousarray(np.broadcast_to(np.arange(B, dtype=np.int32)[:, None], (B, self.rep.n)))
            ids.setflags(write=False)
            if len(self._ids) < 16:
                self._ids[key] = ids
        return ids

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        B = x.shape[0]
        ids = self._ids_for(B)
        tables, xins, dps = [], [], []
        for k in _rnn_kernels(self.rnn):
            dp = None
            xin = x
            if training and 0.0 < k.dropout < 1.0:
                dp = dropout_mask(ctx.generator(k._rng), x.shape, k.dropout, k.dtype)
                xin = x * dp
            tables.append(_core.matmul(xin, k.kernel.value, precision=k._precision))
            xins.append(xin)
            dps.append(dp)
        outs, oms, rc = _run_rnn(self.rnn, ids, tables, [ids] + list(inputs[1:]), None, training, ctx)
        return outs, oms, (rc, xins, dps)

    def _bwd(self, cache, douts, need, ctx):
        rc, xins, dps = cache
        extra, dtables = _bwd_rnn(self.rnn, rc, douts, ctx)
        dx = None
        for k, dt, xin, dp in zip(_rnn_kernels(self.rnn), dtables, xins, dps):
            out, acc = ctx.grad_out(k.kernel)
            if out is not None:
                _core.matmul(xin, dt, trans_a=True, out=out, accumulate=acc, precision=k._precision)
            if need[0]:
                d = _core.matmul(dt, k.kernel.value, trans_b=True, precision=k._precision)
                if dp is not None:
                    d *= dp
                dx = d if dx is None else dx + d
        return [dx] + extra


def fuse(producer, consumer):
    """The fused step for producer -> consumer, or None when the pair does not fuse (nor
    when the producer's output carries an activity penalty: fused, it is never made)."""
    if not isinstance(consumer, (FusedRecurrent, Bidirectional)) or producer.activity_regularizer is not None:
        return None
    if type(producer) is Embedding:
        return EmbeddingLSTM(producer, consumer)
    if type(producer) is RepeatVector:
        return RepeatLSTM(producer, consumer)
    return None
