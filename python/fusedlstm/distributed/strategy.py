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
optimizer state and random state. Stateful layers are refused. Dropout draws
from a per-rank stream derived from the broadcast state, so the shards get
independent masks.
"""

import hashlib
import json
import math
import numbers
import os
import pickle
import weakref

import numpy as np

from .. import utils
from ..callbacks.callback import Callback
from . import step as _step
from .comm import TimedComm, install_job_guards, load_mpi

__all__ = ["MPIStrategy"]

DEFAULT_TIMEOUT = 300.0
# Callback classes that print or write files: rank 0 runs them, the others skip them.
# A callback may say otherwise with an attribute `root_only = True/False`.
_ROOT_ONLY = frozenset({"ProgbarLogger", "ModelCheckpoint", "CSVLogger", "TensorBoard"})


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


class MPIStrategy:
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
        from .. import _core

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
        from ..callbacks.callback import _flatten

        cbs = _flatten(callbacks)
        if not self.is_root:
            verbose = 0
            cbs = [c for c in cbs if not _root_only(c)]
        return verbose, cbs + list(extra)

    def allows_save(self):
        """model.save/save_weights write on rank 0 only (every rank holds the same weights)."""
        return self.is_root

    # --- agreement and synchronisation ----------------------------------------------------------------

    def _check_model(self, model):
        for path, layer in _walk(model):
            if getattr(layer, "stateful", False):
                raise ValueError(
                    f"MPIStrategy: layer '{getattr(layer, 'name', path)}' is stateful; a stateful "
                    "layer carries each batch row's state into the next batch, which has no meaning "
                    "once the rows are split across ranks. Train it in one process (no distribute=; the "
                    "CLI's --distribute none), or with stateful=False.")
        _step.loss_mode(model)

    def _signature(self, model, extra):
        from .. import __version__

        store = model._ensure_store()
        opt = model.optimizer
        try:
            opt_cfg = opt.get_config() if opt is not None else None
        except NotImplementedError:
            opt_cfg = type(opt).__name__
        sig = {
            "fusedlstm": __version__,
            "model": type(model).__name__,
            "weights": [[v.path, list(v.value.shape), str(v.value.dtype), bool(v.trainable)] for v in model.weights],
            "trainable floats": int(store.size),
            "optimizer": [type(opt).__name__, opt_cfg],
            "losses": [None if s is None else [s.name, type(s.loss).__name__, s.loss.reduction, s.weight]
                       for s in model._loss_specs],
            "metrics": repr(model._metric_cfg),
        }
        sig.update(extra)
        return json.dumps(sig, sort_keys=True, default=repr)

    def _agree(self, text, what):
        """Raise ValueError on every rank unless all ranks have the same signature `text`."""
        digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint8)
        everyone = self._comm.allgather(digest, f"the signature check of {what}")
        if (everyone == everyone[0]).all():
            return
        texts = [json.loads(t) for t in self._comm.allgather_bytes(text.encode(), f"the signature check of {what}")]
        other = next(r for r in range(self.size) if texts[r] != texts[0])
        keys = sorted(set(texts[0]) | set(texts[other]))
        diffs = [k for k in keys if texts[0].get(k) != texts[other].get(k)]
        lines = [_difference(k, texts[0].get(k), texts[other].get(k), other) for k in diffs[:4]]
        raise ValueError(
            f"MPIStrategy: the ranks disagree at {what}; every rank must build the same model, compile "
            "it the same way and pass the same data and fit arguments:\n" + "\n".join(lines))

    def _sync(self, model):
        """Every rank takes rank 0's weights, optimizer state and random state."""
        c = self._comm
        store = model._ensure_store()
        c.bcast(store.flat, "the broadcast of rank 0's weights")
        for v in model.weights:
            if v._owner is not store:
                buf = np.ascontiguousarray(v.value)
                c.bcast(buf, "the broadcast of rank 0's weights")
                if buf is not v.value:
                    v.value[...] = buf
        opt = model.optimizer
        if opt is not None and store.size:
            opt.build(store.size)
            it = np.array([opt.iterations], dtype=np.int64)
            c.bcast(it, "the broadcast of rank 0's optimizer state")
            opt.iterations = int(it[0])
            for slot in opt._slot_arrays():
                c.bcast(slot, "the broadcast of rank 0's optimizer state")
        gen = utils._global_rng()
        state = c.bcast_bytes(pickle.dumps(gen.bit_generator.state), "the broadcast of rank 0's random state")
        gen.bit_generator.state = pickle.loads(state)
        seed = int.from_bytes(hashlib.sha256(state).digest()[:16], "little")
        self._dropout_rng = np.random.default_rng([seed, self.rank])
        self._synced[model] = store

    def _ensure_synced(self, model, what):
        store = model._ensure_store()
        if self._synced.get(model) is not store:
            self._check_model(model)
            self._agree(self._signature(model, {}), what)
            self._sync(model)
        return store

    def begin_fit(self, model, train, val, callbacks, verbose, epochs, initial_epoch):
        """Called by fit before its callbacks start: checks, rank 0's state, this rank's callbacks."""
        self._check_model(model)
        extra = {"fit": {"epochs": epochs, "initial_epoch": initial_epoch, "train": _describe(train),
                         "validation": None if val is None else _describe(val)}}
        self._agree(self._signature(model, extra), "the start of fit()")
        self._sync(model)
        self._fitting.add(model)
        return self.local_callbacks(callbacks, verbose, extra=[_SyncCheck(self)])

    def begin_evaluate(self, model, data, callbacks, verbose):
        """Called by evaluate(), which is local (no communication): only rank 0 prints.

        evaluate() is not called by fit, so the model is not training: the flag that makes
        validation sharded is cleared (fit may have ended with an exception)."""
        self._fitting.discard(model)
        return self.local_callbacks(callbacks, verbose)

    # --- the steps ------------------------------------------------------------------------------

    def _layout(self, model):
        n_losses = sum(s is not None for s in model._loss_specs)
        n_metrics = _n_metrics(model)
        lay = self._layouts.get(model)
        if lay is None or (lay.K, lay.M) != (n_losses, n_metrics):
            lay = _step.Layout(n_losses, n_metrics)
            self._layouts[model] = lay
        return lay

    def _metrics_without_shard(self, model, xs, ys):
        """Build the metric objects on a rank whose shard is empty (fit builds them from the
        first batch's shapes): a one-row prediction of the global batch gives the shapes."""
        if model._has_metrics and model._metric_objs is None:
            preds = model._predict_batch([x[:1] for x in xs])
            _build_metrics(model, [None if y is None else y[:1] for y in ys], preds)

    def _shard(self, arrays, a, b):
        if arrays is None:
            return None
        return [None if t is None else t[a:b] for t in arrays]

    def _pack_local(self, model, lay, tail, mode, per_out, preds, pmasks, ys, sws, batch):
        """Loss sums, normalisers and metric increments of this shard into `tail`; returns the scale."""
        norms = _step.normalisers(model, preds, pmasks, mode)
        k = 0
        for spec, value in zip(model._loss_specs, per_out):
            if spec is None:
                continue
            tail[lay.S + k] = value * norms[k] if mode != "sum" else value
            tail[lay.N + k] = norms[k]
            k += 1
        if model._has_metrics:
            if model._metric_objs is None:
                _build_metrics(model, ys, preds)
            before = _metric_state(model)
            model._update_metrics(ys, preds, pmasks, sws)
            tail[lay.m:lay.d] = (_metric_state(model) - before)
            _set_metric_state(model, before)
        if mode == "single":
            return norms[0]
        return float(batch) if mode == "batch" else 1.0

    def _finish(self, model, lay, tail, mode, batch, own_digits, what):
        """After the Allreduce: check the batch checksums, update the trackers; the global loss."""
        if not _step.digits_agree(tail[lay.d:lay.size], own_digits, self.size):
            raise ValueError(
                f"MPIStrategy: the ranks were given different batches at {what} (or run different "
                "numbers of steps): every rank must see the same data in the same order. Load the same "
                "arrays on every rank, and seed data generators the same way on every rank "
                "(fusedlstm.utils.set_random_seed).")
        total, per_out, k = 0.0, [], 0
        for spec in model._loss_specs:
            if spec is None:
                continue
            s, n = float(tail[lay.S + k]), float(tail[lay.N + k])
            value = s if mode == "sum" else (s / n if n > 0 else 0.0)
            per_out.append(value)
            total += (1.0 if spec.weight is None else spec.weight) * value
            k += 1
        model._loss_tracker.add(total, batch)
        trackers = [t for t in model._out_loss_trackers if t is not None]
        for t, v in zip(trackers, per_out):
            t.add(v, batch)
        if model._has_metrics and lay.M:
            _set_metric_state(model, _metric_state(model) + tail[lay.m:lay.d].astype(np.float64))
        return total

    def train_step(self, model, xs, ys, sws):
        """fit/train_on_batch's step on the global batch (xs, ys, sws): see the module doc."""
        store = self._ensure_synced(model, "the first training step")
        mode = _step.loss_mode(model)
        B = xs[0].shape[0]
        a, b = _step.shard_bounds(B, self.rank, self.size)
        lay = self._layout(model)
        buf = store.reserve_tail(lay.size)
        g, tail = buf[:store.size], buf[store.size:]
        tail[...] = 0
        if b > a:
            lx, ly, lsw = self._shard(xs, a, b), self._shard(ys, a, b), self._shard(sws, a, b)
            saved, utils._rng = utils._rng, self._dropout_rng
            try:
                _, _, per_out, preds, pmasks = model._forward_backward(lx, ly, lsw)
            finally:
                utils._rng = saved
            scale = self._pack_local(model, lay, tail, mode, per_out, preds, pmasks, ly, lsw, b - a)
            if scale != 1.0:
                g *= np.float32(scale)
            tail[0] = scale if mode != "sum" else 0.0
        else:
            g[...] = 0
            self._metrics_without_shard(model, xs, ys)
        self._ops += 1
        own = _step.batch_digits(list(xs) + list(ys), self._ops, B, np.empty(2 * _step.N_DIGITS, np.float32))
        tail[lay.d:lay.size] = own
        self._comm.allreduce_sum(buf, f"the gradient Allreduce of training step {self._ops}")
        count = float(tail[0])
        if mode != "sum" and count > 0 and count != 1.0:
            np.divide(g, np.float32(count), out=g)
        total = self._finish(model, lay, tail, mode, B, own, f"training step {self._ops}")
        skip = bool(getattr(model, "_skip_nonfinite", False)) and not _finite(total, g)
        model._step_skipped = skip
        if store.size and not skip:
            model.optimizer.apply_flat(store.flat, g, store.segments)
        return total

    def test_step(self, model, xs, ys, sws):
        """fit's validation step: the shard's loss sums and metric increments, reduced.

        Outside fit (evaluate(), test_on_batch) the step is the model's own, on the whole
        batch: every rank gets the same numbers without communicating, so evaluate() may
        be called on rank 0 alone."""
        from ..layers.base import Context

        if model not in self._fitting:
            saved, model._distribute = model._distribute, None
            try:
                return model._test_step(xs, ys, sws)
            finally:
                model._distribute = saved
        self._ensure_synced(model, "the first evaluation step")
        mode = _step.loss_mode(model)
        B = xs[0].shape[0]
        a, b = _step.shard_bounds(B, self.rank, self.size)
        lay = self._layout(model)
        tail = np.zeros(lay.size, dtype=np.float32)
        if b > a:
            lx, ly, lsw = self._shard(xs, a, b), self._shard(ys, a, b), self._shard(sws, a, b)
            ctx = Context(training=False, want_grads=False)
            vals, masks, _ = model._run_forward(lx, False, ctx, steps=model._train_steps)
            _, per_out, preds, pmasks, _ = model._loss_and_grads(vals, masks, ly, lsw, ctx, False)
            self._pack_local(model, lay, tail, mode, per_out, preds, pmasks, ly, lsw, b - a)
        else:
            self._metrics_without_shard(model, xs, ys)
        self._ops += 1
        own = _step.batch_digits(list(xs) + list(ys), self._ops, B, np.empty(2 * _step.N_DIGITS, np.float32))
        tail[lay.d:] = own
        self._comm.allreduce_sum(tail, f"the loss Allreduce of evaluation step {self._ops}")
        return self._finish(model, lay, tail, mode, B, own, f"evaluation step {self._ops}")

    def weights_agree(self, model, what):
        """Raise RuntimeError on every rank unless all ranks hold bitwise identical weights."""
        import zlib

        store = model._ensure_store()
        crc = np.array([zlib.crc32(store.flat)], dtype=np.int64)
        crcs = self._comm.allgather(crc, f"the weight check {what}")[:, 0]
        if (crcs != crcs[0]).any():
            bad = [r for r in range(self.size) if crcs[r] != crcs[0]]
            raise RuntimeError(
                f"MPIStrategy: the weights of rank(s) {bad} differ from rank 0's {what}. Either code "
                "changed weights on some ranks only (inside fit, e.g. in a callback), or this MPI's "
                "Allreduce returned different sums on different ranks.")


class _SyncCheck(Callback):
    """fit's internal callback: verifies at each epoch's end that all ranks hold the same weights."""

    root_only = False

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_epoch_end(self, epoch, logs=None):
        self.strategy.weights_agree(self.model, f"at the end of epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        self.strategy._fitting.discard(self.model)


def _root_only(cb):
    flag = getattr(cb, "root_only", None)
    if isinstance(flag, bool):
        return flag
    return any(cls.__name__ in _ROOT_ONLY for cls in type(cb).__mro__)


def _walk(model, prefix=""):
    for i, layer in enumerate(getattr(model, "layers", []) or []):
        path = f"{prefix}{i}:{type(layer).__name__}"
        yield path, layer
        inner = getattr(layer, "layer", None)  # wrappers (TimeDistributed, Bidirectional)
        if inner is not None:
            yield path + "/layer", inner
        for sub in ("forward_layer", "backward_layer"):
            s = getattr(layer, sub, None)
            if s is not None:
                yield f"{path}/{sub}", s
        if layer is not model and hasattr(layer, "layers"):
            yield from _walk(layer, path + "/")


def _describe(data):
    return {"kind": type(data).__name__, "samples": getattr(data, "n", None),
            "batch_size": getattr(data, "batch_size", None), "steps": getattr(data, "steps", None),
            "shuffle": getattr(data, "shuffle", None)}


def _n_metrics(model):
    """How many metric objects compile's metrics make (as models.training._build_metrics counts)."""
    if not model._has_metrics:
        return 0
    if model._metric_objs is not None:
        return len(model._metric_objs)
    plain, weighted = model._metric_cfg
    n = 0
    for cfg in list(plain) + list(weighted):
        if cfg is not None:
            n += sum(i is not None for i in (cfg if isinstance(cfg, (list, tuple)) else [cfg]))
    return n


def _build_metrics(model, ys, preds):
    model._build_metrics(ys, preds)
    try:
        from .. import resume
    except ImportError:
        return
    apply = getattr(resume, "apply_pending_metrics", None)
    if apply is not None:
        apply(model)  # a restored checkpoint's running sums, as fit's lazy build applies them


def _metric_state(model):
    return np.array([v for _, m, _, _ in model._metric_objs for v in (m.total, m.count)], dtype=np.float64)


def _set_metric_state(model, state):
    for i, (_, m, _, _) in enumerate(model._metric_objs):
        m.total, m.count = float(state[2 * i]), float(state[2 * i + 1])


def _finite(total, g):
    if not math.isfinite(total):
        return False
    return g.size == 0 or math.isfinite(float(np.sum(g))) or bool(np.isfinite(g).all())


def _difference(key, mine, theirs, other):
    """One line naming the first differing entry of a signature field."""
    if isinstance(mine, list) and isinstance(theirs, list):
        for i, (p, q) in enumerate(zip(mine, theirs)):
            if p != q:
                return f"  {key}, entry {i}: rank 0 has {_short(p)}, rank {other} has {_short(q)}"
        return f"  {key}: rank 0 has {len(mine)} entries, rank {other} has {len(theirs)}"
    return f"  {key}: rank 0 has {_short(mine)}, rank {other} has {_short(theirs)}"


def _short(value, limit=160):
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit] + "..."
