"""MPIStrategy: synchronous data-parallel training, one model replica per MPI rank.

    model.compile(optimizer="adam", loss="...", distribute=MPIStrategy())
    model.fit(x, y, batch_size=256, epochs=10)     # run as: mpirun -n 4 python train.py

Every rank runs the same script on the same data. fit() draws the same global
batches everywhere (the shuffle uses the library's Generator, whose state rank 0
broadcasts when fit starts); rank r trains on its contiguous slice of each global
batch (shards differ by at most one sample, and may be empty). One step:

1. forward and backward on the shard, as a single process would on that batch;
2. the flat gradient, scaled to the unnormalised sum (step.py), and behind it in
   the same buffer the shard's loss sums, normalisers, metric increments and a
   checksum of the global batch;
3. ONE in-place SUM Iallreduce of that buffer (comm.py: with a deadline);
4. every rank divides by the global count and applies the same optimizer update,
   so weights stay bitwise identical and equal the single-process step up to
   float32 round-off, for uneven shards and masked sequences alike.

Loss and metrics in the logs are the global ones, identical on every rank, so
callbacks that decide (EarlyStopping, ReduceLROnPlateau, TerminateOnNaN) decide
the same everywhere. Callbacks that print or write files (the progress bar,
ModelCheckpoint, CSVLogger) run on rank 0 only, and model.save/save_weights
write on rank 0 only. Validation inside fit is sharded and reduced like a training
step; evaluate() and predict() are local: every rank computes every sample (no
communication, so they may be called on rank 0 alone).

When fit starts (and before the first train_on_batch of a model) the
ranks compare a signature (weights' names, shapes and dtypes, optimizer, losses,
metrics, the data's size and batching, epochs) and then take rank 0's weights,
optimizer state and random state (sync.py). Stateful layers are refused. Dropout
draws from a per-rank stream derived from the broadcast state, so the shards get
independent masks.

MPIStrategy is a fusedlstm.models.Strategy: the trainer calls its hooks and its
train_step/test_step, which build the step from the trainer's public step
interface (compute_step, apply_gradients, record_step, metric_state) and put the
Allreduce between the gradients and the update. step.py holds the arithmetic,
sync.py the agreement between ranks, rank_callbacks.py which callbacks run where,
comm.py the collectives.
"""

import math
import numbers
import os
import weakref

import numpy as np

from .. import _core
from ..layers.walk import walk_layers
from ..models import Strategy
from . import step as _step
from .comm import TimedComm, install_job_guards, load_mpi
from .rank_callbacks import SyncCheck, rank_callbacks
from .sync import agree, describe_data, signature, sync_from_root, weights_agree

__all__ = ["MPIStrategy"]

DEFAULT_TIMEOUT = 300.0


def _timeout_from(value):
    if value is None:
        env = os.environ.get("FUSEDLSTM_MPI_TIMEOUT")
        if env is None:
            return DEFAULT_TIMEOUT
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"FUSEDLSTM_MPI_TIMEOUT must be a number of seconds, got {env!r}.") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            "Received an invalid value for argument `timeout`, expected a positive number of seconds, "
            f"got {value!r}.")
    return float(value)


class MPIStrategy(Strategy):
    """Data-parallel training over the ranks of an MPI communicator.

    Args:
        comm: an mpi4py communicator; default MPI.COMM_WORLD. It is duplicated, so
            the strategy's messages never mix with the program's own.
        timeout: seconds any collective may wait for the other ranks before the job
            is aborted with a message (default FUSEDLSTM_MPI_TIMEOUT or 300).
        threads: 'auto' (default) gives each rank an equal share of the CPUs it
            shares with other ranks of the same machine when the launcher did not bind
            ranks to separate cores and set_num_threads was not called; None leaves
            the kernel thread count alone; an integer sets it.

    Creating it is collective: every rank of `comm` must create one, in the same
    order as its other collective calls.

    >>> strategy = MPIStrategy()                                  # doctest: +SKIP
    >>> model.compile(optimizer="adam", loss="mse", distribute=strategy)  # doctest: +SKIP
    """

    def __init__(self, comm=None, timeout=None, threads="auto"):
        timeout = _timeout_from(timeout)
        if not (threads is None or threads == "auto" or (
                isinstance(threads, numbers.Integral) and not isinstance(threads, bool) and threads > 0)):
            raise ValueError(
                "Received an invalid value for argument `threads`, expected 'auto', None or a positive "
                f"integer, got {threads!r}.")
        MPI = load_mpi()
        if comm is None:
            comm = MPI.COMM_WORLD
        elif not isinstance(comm, MPI.Comm):
            raise TypeError(
                "Received an invalid value for argument `comm`, expected an mpi4py communicator "
                f"(mpi4py.MPI.Comm), got {type(comm).__name__}.")
        self._MPI = MPI
        self._comm = TimedComm(MPI, comm, timeout)
        self.rank = self._comm.rank
        self.size = self._comm.size
        self.timeout = timeout
        install_job_guards(self._comm)
        self._set_threads(threads)
        self._synced = weakref.WeakKeyDictionary()
        self._fitting = weakref.WeakSet()  # models inside fit: their validation is sharded
        self._layouts = weakref.WeakKeyDictionary()
        self._dropout_rng = None
        self._ops = 0  # collective steps so far: part of every batch checksum

    @property
    def is_root(self):
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    @property
    def num_replicas_in_sync(self):
        """Number of ranks (the name tf.distribute strategies use)."""
        return self.size

    def __repr__(self):
        return f"MPIStrategy(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    # --- set-up ---------------------------------------------------------------------------------

    def _set_threads(self, threads):
        if threads is None:
            return
        if threads != "auto":
            _core.set_num_threads(int(threads))
            return
        if _core.get_num_threads() != _core.build_info()["default_threads"] or not hasattr(os, "sched_getaffinity"):
            return
        mine = sorted(os.sched_getaffinity(0))
        local = self._comm.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            lc = TimedComm(self._MPI, local, self.timeout)
            try:
                width = max(mine) + 1
                width = int(lc.allgather(np.array([width], np.int64), "the CPU affinity exchange").max())
                mask = np.zeros(width, np.uint8)
                mask[mine] = 1
                masks = lc.allgather(mask, "the CPU affinity exchange")
                sharing = int(np.count_nonzero((masks & mask).any(axis=1)))
            finally:
                lc.comm.Free()
        finally:
            local.Free()
        if sharing > 1:
            _core.set_num_threads(max(1, len(mine) // sharing))

    def broadcast_int(self, value, what="a broadcast integer"):
        """Rank 0's integer on every rank (e.g. a seed drawn on rank 0)."""
        buf = np.array([0 if value is None else int(value)], dtype=np.int64)
        self._comm.bcast(buf, what)
        return int(buf[0])

    # --- callbacks and verbosity -------------------------------------------------------------------

    def local_callbacks(self, callbacks, verbose, extra=()):
        """(verbose, callbacks) for this rank: rank 0 keeps all; the others print and write nothing."""
        return rank_callbacks(callbacks, verbose, self.is_root, extra)

    def allows_save(self):
        """model.save/save_weights write on rank 0 only (every rank holds the same weights)."""
        return self.is_root

    # --- agreement and synchronisation ----------------------------------------------------------------

    def _check_model(self, model):
        for path, layer in walk_layers(model):
            if getattr(layer, "stateful", False):
                raise ValueError(
                    f"MPIStrategy: layer '{getattr(layer, 'name', path)}' is stateful; a stateful "
                    "layer carries each batch row's state into the next batch, which has no meaning "
                    "once the rows are split across ranks. Train it in one process (no distribute=; the "
                    "CLI's --distribute none), or with stateful=False.")
            if getattr(layer, "_batch_statistics", False) and layer.trainable:
                raise ValueError(
                    f"MPIStrategy: layer '{getattr(layer, 'name', path)}' uses batch statistics in training "
                    "(BatchNormalization): each rank would normalise its shard by the shard's statistics, not "
                    "the global batch's, so the step would not be the single-process step. Train it in one "
                    "process, or freeze the layer (layer.trainable = False: it then uses its moving statistics).")
        if model._collects_activity_penalties():
            raise NotImplementedError(
                "MPIStrategy: the model has an activity_regularizer; its penalty is divided by each "
                "shard's batch size, which does not add up to the global batch's. Train it in one process, "
                "or use weight regularizers (kernel_regularizer=...), which are supported.")
        _step.loss_mode(model)

    def _sync(self, model):
        self._dropout_rng = sync_from_root(self._comm, model)
        self._synced[model] = model.parameter_store()

    def _ensure_synced(self, model, what):
        store = model.parameter_store()
        if self._synced.get(model) is not store:
            self._check_model(model)
            agree(self._comm, signature(model, {}), what)
            self._sync(model)
        return store

    def weights_agree(self, model, what):
        """Raise RuntimeError on every rank unless all ranks hold bitwise identical weights."""
        weights_agree(self._comm, model, what)

    # --- the trainer's hooks ------------------------------------------------------------------------

    def begin_fit(self, model, train, val, callbacks, verbose, epochs, initial_epoch):
        """Called by fit before its callbacks start: checks, rank 0's state, this rank's callbacks."""
        self._check_model(model)
        extra = {"fit": {"epochs": epochs, "initial_epoch": initial_epoch, "train": describe_data(train),
                         "validation": None if val is None else describe_data(val)}}
        agree(self._comm, signature(model, extra), "the start of fit()")
        self._sync(model)
        self._fitting.add(model)
        return self.local_callbacks(callbacks, verbose, extra=[SyncCheck(self)])

    def end_fit(self, model):
        """fit ended: its validation is no longer sharded."""
        self._fitting.discard(model)

    def begin_evaluate(self, model, data, callbacks, verbose):
        """Called by evaluate(), which is local (no communication): only rank 0 prints.

        evaluate() is not called by fit, so the model is not training: the flag that makes
        validation sharded is cleared (fit may have ended with an exception)."""
        self._fitting.discard(model)
        return self.local_callbacks(callbacks, verbose)

    def begin_predict(self, model, data, callbacks, verbose):
        """predict() is local: every rank predicts every sample; only rank 0 prints."""
        return self.local_callbacks(callbacks, verbose)

    # --- the steps ------------------------------------------------------------------------------

    def _layout(self, model):
        n_losses = sum(s is not None for s in model.compiled_losses)
        n_metrics = model.metric_state().size  # accumulator floats (sums), not metric objects
        lay = self._layouts.get(model)
        if lay is None or (lay.K, lay.M) != (n_losses, n_metrics):
            lay = _step.Layout(n_losses, n_metrics)
            self._layouts[model] = lay
        return lay

    def _local_part(self, model, xs, ys, sws, gradients):
        """This rank's shard of the global batch and its StepResult (None for an empty shard);
        the compiled metrics exist afterwards either way (the tail's layout counts them)."""
        a, b = _step.shard_bounds(xs[0].shape[0], self.rank, self.size)
        if b <= a:
            if not model.metrics_built:
                # The metric objects are made from the first batch's shapes: a one-row
                # prediction of the global batch gives them on a rank without samples.
                preds = model.predict_on_batch([x[:1] for x in xs])
                model.build_metrics([None if y is None else y[:1] for y in ys],
                                    preds if isinstance(preds, list) else [preds])
            return None, None, None, 0
        lx, ly, lsw = (None if arrays is None else [None if t is None else t[a:b] for t in arrays]
                       for arrays in (xs, ys, sws))
        rng = self._dropout_rng if gradients else None
        # The weight penalties do not depend on the data: added once, after the reduction.
        result = model.compute_step(lx, ly, lsw, training=gradients, gradients=gradients, rng=rng,
                                    weight_penalty=False)
        model.build_metrics(ly, result.predictions)
        return result, ly, lsw, b - a

    def _check_digits(self, lay, tail, own, what):
        if not _step.digits_agree(tail[lay.d:lay.size], own, self.size):
            raise ValueError(
                f"MPIStrategy: the ranks were given different batches at {what} (or run different "
                "numbers of steps): every rank must see the same data in the same order. Load the same "
                "arrays on every rank, and seed data generators the same way on every rank "
                "(fusedlstm.utils.set_random_seed).")

    def train_step(self, model, xs, ys, sws):
        """fit/train_on_batch's step on the global batch (xs, ys, sws): see the module doc."""
        store = self._ensure_synced(model, "the first training step")
        mode = _step.loss_mode(model)
        B = xs[0].shape[0]
        result, ly, lsw, n = self._local_part(model, xs, ys, sws, gradients=True)
        lay = self._layout(model)
        buf = store.reserve_tail(lay.size)  # the gradient just computed moves along
        g, tail = buf[:store.size], buf[store.size:]
        tail[...] = 0
        if result is not None:
            scale = _step.pack_shard(model, lay, tail, mode, result, ly, lsw, n)
            if scale != 1.0:
                g *= np.float32(scale)
            tail[0] = scale if mode != "sum" else 0.0
        else:
            g[...] = 0
        self._ops += 1
        own = _step.batch_digits(list(xs) + list(ys), self._ops, B, np.empty(2 * _step.N_DIGITS, np.float32))
        tail[lay.d:lay.size] = own
        self._comm.allreduce_sum(buf, f"the gradient Allreduce of training step {self._ops}")
        count = float(tail[0])
        if mode != "sum" and count > 0 and count != 1.0:
            np.divide(g, np.float32(count), out=g)
        self._check_digits(lay, tail, own, f"training step {self._ops}")
        penalty = model.weight_penalty(gradients=True)
        total = _step.combine(model, lay, tail, mode, B, penalty)
        model.apply_gradients(g, total)
        return total

    def test_step(self, model, xs, ys, sws):
        """fit's validation step: the shard's loss sums and metric increments, reduced.

        Outside fit (evaluate(), test_on_batch) the step is the model's own, on the whole
        batch: every rank gets the same numbers without communicating, so evaluate() may
        be called on rank 0 alone."""
        if model not in self._fitting:
            return super().test_step(model, xs, ys, sws)
        self._ensure_synced(model, "the first evaluation step")
        mode = _step.loss_mode(model)
        B = xs[0].shape[0]
        result, ly, lsw, n = self._local_part(model, xs, ys, sws, gradients=False)
        lay = self._layout(model)
        tail = np.zeros(lay.size, dtype=np.float32)
        if result is not None:
            _step.pack_shard(model, lay, tail, mode, result, ly, lsw, n)
        self._ops += 1
        own = _step.batch_digits(list(xs) + list(ys), self._ops, B, np.empty(2 * _step.N_DIGITS, np.float32))
        tail[lay.d:] = own
        self._comm.allreduce_sum(tail, f"the loss Allreduce of evaluation step {self._ops}")
        self._check_digits(lay, tail, own, f"evaluation step {self._ops}")
        return _step.combine(model, lay, tail, mode, B, model.weight_penalty())
