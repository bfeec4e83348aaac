"""compile / fit / evaluate / predict / train_on_batch ... (keras.Model's training API).

A training step is: the plan's forward (training=True, kernels keep their caches),
the losses, the plan's backward writing every weight gradient into the model's
flat gradient buffer, then one optimizer kernel call over the flat weights.
Python only walks the precomputed step list; all array work is in the kernels or
one NumPy pass.

A softmax (or, with from_logits, linear) Dense or TimeDistributed(Dense) whose
output goes straight into (sparse_)categorical_crossentropy is not run as a layer
in training or evaluation: `_core.dense_softmax_xent` does the GEMM, softmax,
loss and all three gradients in one call, on rows weighted by Keras's reduction
(sample weight × mask / count).

Reported numbers follow Keras 3: the epoch 'loss' is the batch losses' mean
weighted by batch size; metrics accumulate over the epoch (metrics.py);
'val_*' come from evaluate() on the validation data after each epoch;
train_on_batch/test_on_batch return that one batch's values (Keras 3 resets the
metrics first).
"""

import math
import numbers

import numpy as np

from .. import _core
from .. import distributed as _distributed
from .. import interrupt as _interrupt
from .. import resume as _resume
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..callbacks import CallbackList
from ..layers.base import Context, assign_weights
from ..layers.dense import Dense
from ..layers.wrappers import TimeDistributed
from ..validation import check_finite, check_numeric
from . import data as _data


class _LossSpec:
    __slots__ = ("loss", "weight", "name", "fused", "dense", "wcache")

    def __init__(self, loss, weight, name):
        self.loss = loss
        self.weight = weight
        self.name = name
        self.fused = None  # index of the plan step computed by dense_softmax_xent
        self.dense = None
        self.wcache = {}


def _per_output(spec, n, names, what):
    """A compile() argument as one entry per output (single value, list or dict by output name)."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"Unknown entries in `{what}` dictionary: {unknown}. Only expected the following keys: {names}")
        return [spec.get(k) for k in names]
    if isinstance(spec, (list, tuple)) and n > 1:
        if len(spec) != n:
            raise ValueError(
                f"When passing a list as `{what}`, it should have one entry per each model output. "
                f"The model has {n} outputs, but you passed {what} with {len(spec)} entries.")
        return list(spec)
    return [spec] * n


class Trainer:
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
        self._distribute = None  # a fusedlstm.distributed strategy (compile's `distribute`)

    # --- compile ------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True, sample_weight_mode=None, distribute=None,
                **kwargs):
        """Configure training (Keras 3 names; `sample_weight_mode` of Keras 2 is accepted:
        sample weights of shape (batch, time) are recognised from their shape).

        `distribute`: a fusedlstm.distributed.MPIStrategy trains data-parallel over MPI
        ranks (docs/distributed.md); None uses the default strategy (set by the CLI
        under mpirun), False none."""
        if kwargs:
            bad = sorted(kwargs)
            raise (NotImplementedError if "target_tensors" in kwargs else TypeError)(
                f"compile() got unsupported keyword argument(s): {bad}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, numbers.Integral) or steps_per_execution < 1:
            raise ValueError(f"Received an invalid value for argument `steps_per_execution`, expected a positive integer, got {steps_per_execution!r}.")
        if sample_weight_mode not in (None, "temporal"):
            raise ValueError(f"Received an invalid value for argument `sample_weight_mode`, expected None or 'temporal', got {sample_weight_mode!r}.")
        self._distribute = _distributed.resolve(distribute)
        self.optimizer = _optimizers.get(optimizer)
        self.loss = loss
        self._compile_args = (loss, loss_weights, metrics, weighted_metrics)
        self.compiled = True
        if self._graph_ready():
            self._finish_compile()

    def _graph_ready(self):
        return True

    def _finish_compile(self):
        """Resolve losses/metrics per output and the fused loss steps (needs the graph)."""
        loss, loss_weights, metrics, weighted_metrics = self._compile_args
        n, names = len(self.outputs), self.output_names
        losses = _per_output(loss, n, names, "loss")
        weights = _per_output(loss_weights, n, names, "loss_weights") if loss_weights is not None else [None] * n
        specs = []
        for k, (l, w) in enumerate(zip(losses, weights)):
            if l is None:
                specs.append(None)
                continue
            obj = _losses.get(l)
            if w is not None and (isinstance(w, bool) or not isinstance(w, numbers.Real)):
                raise TypeError(f"loss_weights entries must be numbers, got {w!r}.")
            specs.append(_LossSpec(obj, None if w is None else float(w), names[k]))
        self._loss_specs = specs
        self._metric_cfg = (_per_output(metrics, n, names, "metrics") if metrics is not None else [None] * n,
                            _per_output(weighted_metrics, n, names, "weighted_metrics") if weighted_metrics is not None else [None] * n)
        self._metric_objs = None
        self._has_metrics = any(c is not None for c in self._metric_cfg[0] + self._metric_cfg[1])
        self._out_loss_trackers = [_metrics.Mean(name=f"{s.name}_loss") if s is not None else None
                                   for s in specs] if sum(s is not None for s in specs) > 1 else []
        self._find_fused_losses()
        self._ensure_store()

    def _find_fused_losses(self):
        plan = self._plan
        consumers = {}
        for st in plan.steps:
            for i in st.ins:
                consumers[i] = consumers.get(i, 0) + 1
        outs = plan.output_slots
        fused = set()
        for k, spec in enumerate(self._loss_specs):
            if spec is None or spec.loss.fused_kind is None:
                continue
            slot = outs[k]
            if consumers.get(slot, 0) or outs.count(slot) > 1:
                continue
            idx = plan.producers.get(slot, -1)
            if idx < 0:
                continue
            st = plan.steps[idx]
            op = st.op
            dense = op.layer if isinstance(op, TimeDistributed) and type(op.layer) is Dense else op
            if type(dense) is not Dense or st.training is not None:
                continue
            from_logits = spec.loss.fused_kind[1]
            act = dense.activation.__name__
            if (act == "softmax" and not from_logits) or (act == "linear" and from_logits):
                spec.fused, spec.dense = idx, dense
                fused.add(idx)
        self._train_steps = [st for k, st in enumerate(plan.steps) if k not in fused]

    def _assert_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before using the model ({what}).")
        if self._loss_specs is None:
            raise ValueError(f"Model '{self.name}' has not been built yet; call it on data or build() it first ({what}).")
        if not any(s is not None for s in self._loss_specs):
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")

    # --- metrics --------------------------------------------------------------------------

    def _build_metrics(self, ys, preds):
        objs = []
        plain, weighted = self._metric_cfg
        multi = len(self.outputs) > 1
        for k in range(len(self.outputs)):
            for cfg, is_w in ((plain[k], False), (weighted[k], True)):
                if cfg is None:
                    continue
                for ident in (cfg if isinstance(cfg, (list, tuple)) else [cfg]):
                    if ident is None:
                        continue
                    m = _metrics.get(ident, np.shape(ys[k]), preds[k].shape)
                    name = m.name
                    if multi:
                        name = f"{self.output_names[k]}_{name}"
                    taken = {o[2] for o in objs}
                    if name in taken and is_w:
                        name = f"weighted_{m.name}" if not multi else f"{self.output_names[k]}_weighted_{m.name}"
                    base, i = name, 1
                    while name in taken:
                        name = f"{base}_{i}"
                        i += 1
                    objs.append((k, m, name, is_w))
        self._metric_objs = objs

    @property
    def metrics(self):
        out = [self._loss_tracker] if self.compiled else []
        for _, m, name, _ in self._metric_objs or []:
            out.append(m)
        out.extend(t for t in self._out_loss_trackers if t is not None)
        return out

    @property
    def metrics_names(self):
        return list(self._logs().keys()) if self.compiled else []

    def reset_metrics(self):
        self._loss_tracker.reset_state()
        for t in self._out_loss_trackers:
            if t is not None:
                t.reset_state()
        for _, m, _, _ in self._metric_objs or []:
            m.reset_state()

    def _logs(self):
        # Keras 3's order (evaluate's list): total loss, per-output losses, then metrics.
        logs = {"loss": self._loss_tracker.result()}
        for t in self._out_loss_trackers:
            if t is not None:
                logs[t.name] = t.result()
        for _, m, name, _ in self._metric_objs or []:
            logs[name] = m.result()
        return logs

    def _update_metrics(self, ys, preds, masks, sws):
        if self._metric_objs is None:
            self._build_metrics(ys, preds)
            _resume.apply_pending_metrics(self)
        for k, m, _, is_w in self._metric_objs:
            sw = None
            if is_w and sws is not None:
                sw = sws[k] if len(sws) > 1 else sws[0]
            m.update_state(ys[k], preds[k], sample_weight=sw, mask=masks[k])

    # --- one step ------------------------------------------------------------------------------

    def _prepare_batch(self, x, y, sw, need_y=True):
        xs = self._standardize_inputs(x)
        n_out = len(self.outputs)
        ys = None
        if y is not None:
            ys = self._split_targets(y)
            if len(ys) != n_out:
                raise ValueError(
                    f"Model '{self.name}' has {n_out} output(s) ({self.output_names}), but {len(ys)} "
                    "target array(s) were given.")
            ys = _checked_targets(ys)
        elif need_y:
            raise ValueError(f"Model '{self.name}': `y` (the targets) is required to compute the loss.")
        sws = None
        if sw is not None:
            sws = _checked_sample_weights(_data.as_list(sw))
            if len(sws) not in (1, n_out):
                raise ValueError(f"sample_weight must be one array or one per output ({n_out}), got {len(sws)}.")
        return xs, ys, sws

    def _split_targets(self, y):
        """Targets as one entry per output: a dict by output name, a list per output, or one array."""
        if isinstance(y, dict):
            return [y.get(k) for k in self.output_names]
        if len(self.outputs) > 1:
            if not isinstance(y, (list, tuple)):
                raise ValueError(f"Model '{self.name}' has {len(self.outputs)} outputs; pass `y` as a list (or dict by output name) of target arrays.")
            return list(y)
        if isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
            return [y[0]]
        return [y]

    def _loss_and_grads(self, vals, masks, ys, sws, ctx, backward):
        """Per-output losses (Keras reduction), output gradients into a slot list, predictions."""
        plan = self._plan
        grads = [None] * plan.n_slots if backward else None
        total, per_out, preds, pmasks = 0.0, [], [], []
        for k, spec in enumerate(self._loss_specs):
            slot = plan.output_slots[k]
            if spec is None:
                per_out.append(None)
                preds.append(vals[slot])
                pmasks.append(masks[slot])
                continue
            sw = None if sws is None else (sws[k] if len(sws) > 1 else sws[0])
            if ys[k] is None:
                raise ValueError(f"Model output '{spec.name}' has a loss but no target was given for it.")
            lw = 1.0 if spec.weight is None else spec.weight
            if spec.fused is not None:
                value, pred, mask = self._fused_loss(spec, vals, masks, ys[k], sw, lw, ctx, grads)
            else:
                pred, mask = vals[slot], masks[slot]
                t = spec.loss.prepare_targets(ys[k], pred.shape)
                v = spec.loss.values(t, pred)
                w = _losses.reduction_weights(v.shape, sw, _mask_for(mask, v.shape), spec.loss.reduction)
                value = float(np.sum(v * w))
                if backward and lw != 0:
                    dy = spec.loss.grad(t, pred, w * lw).astype(pred.dtype, copy=False)
                    grads[slot] = dy if grads[slot] is None else grads[slot] + dy
            total += lw * value
            per_out.append(value)
            preds.append(pred)
            pmasks.append(mask)
        return total, per_out, preds, pmasks, grads

    def _fused_loss(self, spec, vals, masks, y, sw, lw, ctx, grads):
        st = self._plan.steps[spec.fused]
        dense = spec.dense
        x = vals[st.ins[0]]
        mask = masks[st.ins[0]]
        C = dense.units
        pred_shape = x.shape[:-1] + (C,)
        labels = spec.loss.prepare_targets(y, pred_shape)
        rows = x.size // x.shape[-1] if x.shape[-1] else 0
        labels = labels.reshape(rows) if spec.loss.fused_kind[0] == "sparse" else labels.reshape(rows, C)
        if labels.dtype != x.dtype and labels.dtype.kind == "f":
            labels = labels.astype(x.dtype)
        w = self._row_weights(spec, x.shape[:-1], sw, mask, lw, x.dtype)
        x2 = x.reshape(rows, x.shape[-1])
        b = dense.bias.value if dense.use_bias else None
        backward = grads is not None
        value, probs, dx, dW, db = _core.dense_softmax_xent(
            x2, dense.kernel.value, b, labels, w, from_logits=spec.loss.fused_kind[1], backward=backward)
        if backward:
            ctx.add_grad(dense.kernel, dW)
            if db is not None:
                ctx.add_grad(dense.bias, db)
            if st.need[0] and dx is not None:
                s = st.ins[0]
                dx = dx.reshape(x.shape)
                grads[s] = dx if grads[s] is None else grads[s] + dx
        if lw != 0:
            value = value / lw
        return value, probs.reshape(pred_shape), mask

    def _row_weights(self, spec, shape, sw, mask, lw, dtype):
        if sw is None and mask is None:
            key = (shape, lw)
            w = spec.wcache.get(key)
            if w is None:
                n = int(np.prod(shape, dtype=np.int64))
                w = np.full(n, lw / max(n, 1), dtype=dtype)
                if len(spec.wcache) > 32:
                    spec.wcache.clear()
                spec.wcache[key] = w
            return w
        w = _losses.reduction_weights(shape, sw, _mask_for(mask, shape), spec.loss.reduction)
        return np.ascontiguousarray((w * lw).reshape(-1), dtype=dtype)

    def _forward_backward(self, xs, ys, sws, training=True):
        """Loss and every trainable weight's gradient in the flat gradient buffer."""
        store = self._ensure_store()
        plan = self._plan
        plan.prepare_grads([False] * len(xs))
        ctx = Context(training=training, want_grads=True)
        vals, masks, caches = self._run_forward(xs, training, ctx, steps=self._train_steps)
        total, per_out, preds, pmasks, grads = self._loss_and_grads(vals, masks, ys, sws, ctx, True)
        self._run_backward(self._train_steps, caches, grads, ctx)
        if store.size:
            store.zero_untouched(ctx.stamp)
        return store, total, per_out, preds, pmasks

    def _train_step(self, xs, ys, sws):
        if self._distribute is not None:
            return self._distribute.train_step(self, xs, ys, sws)
        store, total, per_out, preds, pmasks = self._forward_backward(xs, ys, sws)
        self._step_skipped = self._skip_nonfinite and not _finite_step(total, store.grad)
        if store.size and not self._step_skipped:
            self.optimizer.apply_flat(store.flat, store.grad, store.segments)
        self._track(xs, total, per_out, ys, preds, pmasks, sws)
        return total

    def compute_gradients(self, x, y, sample_weight=None, training=True):
        """(loss, gradients) for one batch without updating anything.

        Gradients are arrays in `trainable_weights` order, of the same total loss fit()
        minimises. fusedlstm extension (Keras needs a GradientTape for this); the
        gradient checks in the test-suite use it.
        """
        self._maybe_build_from_data(x)
        self._assert_compiled("compute_gradients")
        xs, ys, sws = self._prepare_batch(x, y, sample_weight)
        store, total, _, _, _ = self._forward_backward(xs, ys, sws, training)
        return total, [v.grad.copy() for v in store.variables]

    def _test_step(self, xs, ys, sws):
        if self._distribute is not None:
            return self._distribute.test_step(self, xs, ys, sws)
        ctx = Context(training=False, want_grads=False)
        vals, masks, _ = self._run_forward(xs, False, ctx, steps=self._train_steps)
        total, per_out, preds, pmasks, _ = self._loss_and_grads(vals, masks, ys, sws, ctx, False)
        self._track(xs, total, per_out, ys, preds, pmasks, sws)
        return total

    def _track(self, xs, total, per_out, ys, preds, pmasks, sws):
        # Keras weights each batch's loss by its batch size; nan/inf are reported as they are.
        B = xs[0].shape[0]
        self._loss_tracker.add(total, B)
        for t, v in zip(self._out_loss_trackers, per_out):
            if t is not None and v is not None:
                t.add(v, B)
        if self._has_metrics:
            self._update_metrics(ys, preds, pmasks, sws)

    def _predict_batch(self, xs):
        ctx = Context(training=False, want_grads=False)
        vals, _, _ = self._run_forward(xs, False, ctx)
        return [vals[s] for s in self._plan.output_slots]

    # --- public single-batch API ----------------------------------------------------------------

    def _result(self, logs, return_dict):
        if return_dict:
            return dict(logs)
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns its loss (and metrics: a list, or a dict)."""
        self._maybe_build_from_data(x)
        self._assert_compiled("train_on_batch")
        xs, ys, sws = self._prepare_batch(x, y, sample_weight)
        sws = self._apply_class_weight(ys, sws, class_weight)
        self.reset_metrics()
        # A Ctrl-C during the step raises after it, never half-way through the update.
        with _interrupt.deferred_sigint() as guard, guard:
            self._train_step(xs, ys, sws)
        return self._result(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._maybe_build_from_data(x)
        self._assert_compiled("test_on_batch")
        xs, ys, sws = self._prepare_batch(x, y, sample_weight)
        self.reset_metrics()
        self._test_step(xs, ys, sws)
        return self._result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        self._maybe_build_from_data(x)
        outs = self._predict_batch(self._standardize_inputs(x))
        return outs if self._outputs_list else outs[0]

    def __call__(self, *args, **kwargs):
        # model(x) on arrays is one inference forward (keras returns a tensor; we return arrays).
        if args and not _is_symbolic(args[0]) and "initial_state" not in kwargs:
            self._maybe_build_from_data(args[0])
        return super().__call__(*args, **kwargs)

    def _maybe_build_from_data(self, x):
        pass

    def _apply_class_weight(self, ys, sws, class_weight):
        if class_weight is None:
            return sws
        if sws is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        if len(self.outputs) > 1:
            raise ValueError("`class_weight` is only supported for Models with a single output.")
        return [_data.class_weight_to_sample_weights(ys[0], class_weight)]

    # --- fit / evaluate / predict --------------------------------------------------------------

    def _make_data(self, x, y, sample_weight, batch_size, shuffle, steps, what):
        _data.check_steps(steps, _STEPS_ARG.get(what, "steps"))
        if _data.is_sequence_like(x) and not hasattr(x, "shape"):
            if y is not None or sample_weight is not None:
                raise ValueError(f"`y` and `sample_weight` must be None when `x` is a Sequence/dataset ({what}).")
            return _data.SequenceData(x, steps, shuffle)
        if _data.is_generator_like(x):
            if y is not None or sample_weight is not None:
                raise ValueError(f"`y` and `sample_weight` must be None when `x` is a generator ({what}).")
            return _data.GeneratorData(x, steps)
        if x is None:
            raise ValueError(f"{what}: `x` is required.")
        xs = self._standardize_inputs(x)
        if xs[0].shape[0] == 0:
            raise ValueError(
                f"Received an invalid value for argument `x`, expected at least one sample, got an array of "
                f"shape {xs[0].shape} ({what}).")
        self._check_ids(xs)
        ys = None
        if y is not None:
            ys = _checked_targets(self._split_targets(y))
            self._check_all_targets(ys)
        sws = None
        if sample_weight is not None:
            sws = _checked_sample_weights(sample_weight if isinstance(sample_weight, (list, tuple)) and len(self.outputs) > 1 else [sample_weight])
        return _data.ArrayData(xs, ys, sws, _data.check_batch_size(batch_size), shuffle, steps)

    def _check_all_targets(self, ys):
        """Check whole target arrays against the losses before the first step, so a bad label
        is reported at its position in the data and no step has been applied yet."""
        if not self._loss_specs or len(ys) != len(self.outputs):
            return
        for spec, y, out in zip(self._loss_specs, ys, self.outputs):
            if spec is None or y is None or y.ndim == 0:
                continue
            shape = tuple(y.shape[i] if d is None and i < y.ndim else d for i, d in enumerate(out.shape))
            spec.loss.prepare_targets(y, (y.shape[0],) + shape[1:])

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, max_queue_size=10, workers=1,
            use_multiprocessing=False, nb_epoch=None):
        """Train for `epochs` epochs; returns the History (Keras 3 semantics and defaults)."""
        if nb_epoch is not None:
            epochs = nb_epoch
        for arg, v in (("epochs", epochs), ("initial_epoch", initial_epoch), ("validation_freq", validation_freq)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < (1 if arg == "validation_freq" else 0):
                raise ValueError(f"Received an invalid value for argument `{arg}`, expected a {'positive' if arg == 'validation_freq' else 'non-negative'} integer, got {v!r}.")
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
            raise TypeError(
                "Received an invalid value for argument `validation_split`, expected a float between 0 and 1, "
                f"got {validation_split!r}.")
        if validation_batch_size is not None:
            _data.check_batch_size(validation_batch_size, "validation_batch_size")
        self._maybe_build_from_data(x)
        self._assert_compiled("fit")
        verbose = _verbosity(verbose)
        if y is None and not (_data.is_sequence_like(x) or _data.is_generator_like(x)):
            raise ValueError("fit: `y` (the targets) is required when `x` is an array.")
        if validation_split and validation_data is None:
            if _data.is_sequence_like(x) or _data.is_generator_like(x):
                raise ValueError("`validation_split` is only supported for arrays, not generators or Sequences.")
            xs = self._standardize_inputs(x)
            ylist = self._split_targets(y) if y is not None else []
            swl = _data.as_list(sample_weight)
            arrays = xs + [np.asarray(t) for t in ylist] + ([np.asarray(s) for s in swl] if swl else [])
            tr, va = _data.validation_split(arrays, validation_split)
            nx, ny = len(xs), len(ylist)
            x, y = tr[:nx], (tr[nx:nx + ny] if ny > 1 else tr[nx])
            validation_data = (va[:nx], va[nx:nx + ny] if ny > 1 else va[nx]) + ((va[nx + ny:] if len(swl) > 1 else va[nx + ny],) if swl else ())
            if swl:
                sample_weight = tr[nx + ny:] if len(swl) > 1 else tr[nx + ny]
            if nx == 1:
                x = x[0]
                validation_data = (validation_data[0][0],) + validation_data[1:]
        if class_weight is not None:
            if _data.is_sequence_like(x) or _data.is_generator_like(x):
                raise NotImplementedError("`class_weight` with a generator/Sequence is not supported; yield sample weights instead.")
            sample_weight = self._apply_class_weight([np.asarray(y)], _data.as_list(sample_weight), class_weight)[0]
        train = self._make_data(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, "fit")
        val = None
        if validation_data is not None:
            val = self._validation(validation_data, validation_batch_size or batch_size, validation_steps)
        if self._distribute is not None:
            verbose, callbacks = self._distribute.begin_fit(self, train, val, callbacks, verbose, epochs, initial_epoch)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=train.steps)
        progress = _resume.FitProgress(self, train, initial_epoch)
        with _interrupt.deferred_sigint() as guard:
            self._fit_progress, self._sigint_guard = progress, guard
            self._skip_nonfinite = any(getattr(c, "skips_nonfinite_updates", False) for c in cbs.callbacks)
            try:
                return self._run_epochs(train, val, cbs, progress, guard, initial_epoch, epochs, validation_freq)
            finally:
                self._fit_progress = self._sigint_guard = None
                self._skip_nonfinite = False

    def _run_epochs(self, train, val, cbs, progress, guard, initial_epoch, epochs, validation_freq):
        self.stop_training = False
        cbs.on_train_begin()
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            batches, start = progress.epoch_batches(epoch, train)
            logs = self._logs() if start else {}  # a resumed epoch continues its running means
            for step, (xb, yb, swb) in batches:
                cbs.on_train_batch_begin(step)
                xs, ys, sws = self._prepare_batch(xb, yb, swb) if not isinstance(train, _data.ArrayData) else (xb, yb, swb)
                if ys is None:
                    raise ValueError("fit: the data gave no targets `y`.")
                with guard:
                    self._train_step(xs, ys, sws)
                    progress.step_done(step)
                logs = self._logs()
                cbs.on_train_batch_end(step, logs)
                guard.check(f"after epoch {epoch + 1}, batch {step}")
                if self.stop_training:
                    break
            train.end_epoch()
            progress.end_epoch()
            if not logs:
                raise ValueError("fit: the training data is empty (no batch in an epoch).")
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_data(val, cbs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            guard.check(f"at the end of epoch {epoch + 1}")
            if self.stop_training:
                break
        cbs.on_train_end(epoch_logs)
        return self.history

    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True,
                      initial_epoch=0):
        """Keras 2 spelling of fit(generator, ...)."""
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, class_weight=class_weight,
                        shuffle=shuffle, initial_epoch=initial_epoch)

    def _validation(self, vd, batch_size, steps):
        if _data.is_sequence_like(vd) or _data.is_generator_like(vd):
            return self._make_data(vd, None, None, batch_size, False, steps, "validation_data")
        if not isinstance(vd, (tuple, list)) or len(vd) not in (2, 3):
            raise ValueError(
                "When passing `validation_data`, it must contain either 2 items (x_val, y_val), or 3 "
                f"items (x_val, y_val, val_sample_weights), or alternatively it could be a dataset or a "
                f"dataset iterator. However we received `validation_data={type(vd).__name__}` of length "
                f"{len(vd) if hasattr(vd, '__len__') else '?'}.")
        return self._make_data(vd[0], vd[1], vd[2] if len(vd) == 3 else None, batch_size, False, steps, "validation_data")

    def _evaluate_data(self, data, cbs):
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step, (xb, yb, swb) in enumerate(data.epoch()):
            cbs.on_test_batch_begin(step)
            xs, ys, sws = self._prepare_batch(xb, yb, swb) if not isinstance(data, _data.ArrayData) else (xb, yb, swb)
            if ys is None:
                raise ValueError("evaluate: the data gave no targets `y`.")
            self._test_step(xs, ys, sws)
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
            if self._sigint_guard is not None:  # fit's validation: a Ctrl-C need not wait for its end
                self._sigint_guard.check(f"during validation batch {step}")
        data.end_epoch()
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics on data (returns a float, a list, or a dict with return_dict)."""
        if kwargs:
            raise TypeError(f"evaluate() got unexpected keyword argument(s): {sorted(kwargs)}")
        self._maybe_build_from_data(x)
        self._assert_compiled("evaluate")
        verbose = _verbosity(verbose)
        data = self._make_data(x, y, sample_weight, batch_size, False, steps, "evaluate")
        if self._distribute is not None:
            verbose, callbacks = self._distribute.begin_evaluate(self, data, callbacks, verbose)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=data.steps)
        logs = self._evaluate_data(data, cbs)
        return self._result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for every sample of x, computed in batches (default 32)."""
        self._maybe_build_from_data(x)
        verbose = _verbosity(verbose)
        data = self._make_data(x, None, None, batch_size, False, steps, "predict")
        if self._distribute is not None:  # local: every rank predicts every sample
            verbose, callbacks = self._distribute.local_callbacks(callbacks, verbose)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=data.steps)
        cbs.on_predict_begin()
        chunks = None
        for step, (xb, _, _) in enumerate(data.epoch()):
            cbs.on_predict_batch_begin(step)
            xs = xb if isinstance(data, _data.ArrayData) else self._standardize_inputs(xb)
            outs = self._predict_batch(xs)
            if chunks is None:
                chunks = [[] for _ in outs]
            for c, o in zip(chunks, outs):
                c.append(o)
            cbs.on_predict_batch_end(step, {"outputs": outs[0] if len(outs) == 1 else outs})
        cbs.on_predict_end()
        if chunks is None:
            raise ValueError("predict: the input data is empty.")
        res = [c[0] if len(c) == 1 else np.concatenate(c, axis=0) for c in chunks]
        return res if self._outputs_list else res[0]

    def predict_generator(self, generator, steps=None, verbose=0, **kwargs):
        """Keras 2 spelling of predict(generator, steps=...)."""
        return self.predict(generator, steps=steps, verbose=verbose)

    def evaluate_generator(self, generator, steps=None, verbose=0, **kwargs):
        """Keras 2 spelling of evaluate(generator, steps=...)."""
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras <= 2.5: argmax of the outputs, or (p > 0.5) for a single sigmoid unit."""
        p = self.predict(x, batch_size=batch_size, verbose=verbose)
        if p.shape[-1] > 1:
            return p.argmax(axis=-1)
        return (p > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras <= 2.5: the model outputs (probabilities for a softmax/sigmoid head)."""
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    # --- weights and saving -----------------------------------------------------------------------

    def get_weights(self):
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        assign_weights(self.weights, weights, f"model '{self.name}'", "path")

    def count_params(self):
        return int(sum(v.value.size for v in self.weights))

    def save(self, filepath, overwrite=True, **kwargs):
        if self._distribute is not None and not self._distribute.allows_save():
            return  # data-parallel: rank 0 writes, the other ranks hold the same weights
        from ..saving import save_model
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        if self._distribute is not None and not self._distribute.allows_save():
            return
        from ..saving import save_weights
        save_weights(self, filepath, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        from ..saving import load_weights
        load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)


# The name of `steps` in each entry point's signature.
_STEPS_ARG = {"fit": "steps_per_epoch", "validation_data": "validation_steps"}


def _checked_arrays(arrays, name, dtype=None):
    """One entry per output as arrays (None kept), after refusing non-numeric dtypes
    and NaN/Inf; `name` leads the error messages, `dtype` casts after the dtype check."""
    out = []
    for k, v in enumerate(arrays):
        if v is None:
            out.append(None)
            continue
        a = np.asarray(v)
        what = name + (f" (output {k})" if len(arrays) > 1 else "")
        check_numeric(a, what)
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        check_finite(a, what)
        out.append(a)
    return out


def _checked_targets(ys):
    return _checked_arrays(ys, "The targets `y`")


def _checked_sample_weights(sws):
    return _checked_arrays(sws, "`sample_weight`", np.float32)


def _finite_step(total, grad):
    """Whether a step's loss and flat gradient are all finite (one O(n) pass, no temporaries)."""
    if not math.isfinite(total):
        return False
    if grad.size == 0 or math.isfinite(float(np.sum(grad))):
        return True
    # The sum overflowed or met a NaN/Inf: decide elementwise.
    return bool(np.isfinite(grad).all())


def _mask_for(mask, shape):
    if mask is None:
        return None
    if mask.shape == tuple(shape):
        return mask
    if mask.ndim < len(shape) and mask.shape == tuple(shape[:mask.ndim]):
        return mask
    return None


def _verbosity(v):
    if v == "auto":
        return 1
    if v not in (0, 1, 2):
        raise ValueError(f"Received an invalid value for argument `verbose`, expected 0, 1, 2 or 'auto', got {v!r}.")
    return int(v)


def _is_symbolic(x):
    from ..layers.base import KerasTensor
    if isinstance(x, (list, tuple)):
        return any(isinstance(t, KerasTensor) for t in x)
    return isinstance(x, KerasTensor)
