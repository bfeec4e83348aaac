"""One training step: forward, losses, backward into the flat gradient buffer, update.

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

The step interface (what a strategy, models/strategy.py, builds a step from):

    compute_step(xs, ys, sws, training=True, gradients=True, rng=None) -> StepResult
        the batch's loss sums and, with gradients, the flat gradient buffer; changes
        no weight and no metric
    apply_gradients(grads, loss) -> bool
        one optimizer update from the flat gradient buffer, then the weight constraints
        (skipped, returning False, when TerminateOnNaN asked fit to skip non-finite
        steps and this one is)
    weight_penalty(gradients=False) -> float
        the weight regularizers' penalty (models/penalties.py), their gradients added
        to the flat gradient buffer on request
    record_step(batch_size, result, ys=None, sws=None)
        the batch's losses into the loss trackers, and its predictions (if the result
        has them) into the metrics: what the progress bar and History report
"""

import math
from typing import List, NamedTuple, Optional

import numpy as np

from .. import _core
from .. import interrupt as _interrupt
from .. import losses as _losses
from ..layers.base import Context
from ..variables import note_write
from .strategy import LOCAL

__all__ = ["StepResult", "StepMixin"]


class StepResult(NamedTuple):
    """What compute_step returns for one batch.

    loss: Σ_k weight_k · loss_k, each output's loss reduced as Keras does.
    output_losses: loss_k per output (None for an output without a loss).
    grads: the model's flat gradient buffer (trainable_weights order, a view the next
        step overwrites), or None when not differentiated.
    predictions, masks: each output's values and mask (None where unmasked).
    penalty: the regularization penalties included in `loss` (activity penalties, and
        the weight penalties unless compute_step was told to leave them out).
    """
    loss: float
    output_losses: List[Optional[float]]
    grads: Optional[np.ndarray]
    predictions: list
    masks: list
    penalty: float = 0.0


def finite_step(total, grad):
    """Whether a step's loss and flat gradient are all finite (one O(n) pass, no temporaries)."""
    if not math.isfinite(total):
        return False
    if grad.size == 0 or math.isfinite(float(np.sum(grad))):
        return True
    # The sum overflowed or met a NaN/Inf: decide elementwise.
    return bool(np.isfinite(grad).all())


class StepMixin:
    """The step interface and the single-batch API built on it."""

    # --- losses and gradients ----------------------------------------------------------------

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
                vmask = _losses.combine_masks(_losses.mask_for_values(mask, v.shape), spec.loss.values_mask(t))
                w = _losses.reduction_weights(v.shape, sw, vmask, spec.loss.reduction)
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
        own_mask = spec.loss.values_mask(labels)  # ignore_class: those rows weigh 0
        rows = x.size // x.shape[-1] if x.shape[-1] else 0
        labels = np.asarray(labels)
        labels = labels.reshape(rows) if spec.loss.fused_kind[0] == "sparse" else labels.reshape(rows, C)
        if labels.dtype != x.dtype and labels.dtype.kind == "f":
            labels = labels.astype(x.dtype)
        w = self._row_weights(spec, x.shape[:-1], sw, mask, lw, x.dtype, own_mask)
        x2 = x.reshape(rows, x.shape[-1])
        b = dense.bias.value if dense.use_bias else None
        backward = grads is not None
        value, probs, dx, dW, db = _core.dense_softmax_xent(
            x2, dense.kernel.value, b, labels, w, from_logits=spec.loss.fused_kind[1], backward=backward,
            precision=dense._precision)
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

    def _row_weights(self, spec, shape, sw, mask, lw, dtype, own_mask=None):
        if sw is None and mask is None and own_mask is None and spec.loss.reduction != "sum":
            key = (shape, lw)
            w = spec.wcache.get(key)
            if w is None:
                n = int(np.prod(shape, dtype=np.int64))
                w = np.full(n, lw / max(n, 1), dtype=dtype)
                if len(spec.wcache) > 32:
                    spec.wcache.clear()
                spec.wcache[key] = w
            return w
        mask = _losses.combine_masks(_losses.mask_for_values(mask, shape), own_mask)
        w = _losses.reduction_weights(shape, sw, mask, spec.loss.reduction)
        return np.ascontiguousarray((w * lw).reshape(-1), dtype=dtype)

    def _step_context(self, store, training, want_grads, rng):
        """The step's Context, and the model's penalties (penalties.py)."""
        pen = self._penalties(store)
        return Context(training=training, want_grads=want_grads, rng=rng, penalty=0.0 if pen[3] else None), pen

    def _forward_backward(self, xs, ys, sws, training=True, rng=None, weight_penalty=True):
        """Loss (penalties included) and every trainable weight's gradient in the flat
        gradient buffer; also returns the penalties."""
        store = self._ensure_store()
        plan = self._plan
        plan.prepare_grads([False] * len(xs))
        ctx, pen = self._step_context(store, training, True, rng)
        vals, masks, caches = self._run_forward(xs, training, ctx, steps=self._train_steps)
        total, per_out, preds, pmasks, grads = self._loss_and_grads(vals, masks, ys, sws, ctx, True)
        self._run_backward(self._train_steps, caches, grads, ctx)
        if store.size:
            store.zero_untouched(ctx.stamp)
        penalty = ctx.penalty or 0.0
        if weight_penalty and pen[1]:
            penalty += self.weight_penalty(gradients=True)
        return store, total + penalty, per_out, preds, pmasks, penalty

    # --- the step interface -------------------------------------------------------------------

    def compute_step(self, xs, ys, sws, training=True, gradients=True, rng=None, weight_penalty=True):
        """Forward (and backward) on one prepared batch; no weight or metric changes.

        Args:
            xs, ys, sws: lists of arrays, one per input / output (sws may be None), as
                fit passes them after checking.
            training: run dropout and other training-only behaviour.
            gradients: also run the backward pass into the flat gradient buffer.
            rng: the Generator dropout draws from where a layer has no seed of its own
                (None: the library's stream, fusedlstm.utils).
            weight_penalty: include the weight regularizers' penalties (and gradients);
                a data-parallel strategy leaves them out and adds them once
                (weight_penalty()).
        """
        if gradients:
            store, total, per_out, preds, pmasks, penalty = self._forward_backward(
                xs, ys, sws, training, rng=rng, weight_penalty=weight_penalty)
            return StepResult(total, per_out, store.grad, preds, pmasks, penalty)
        ctx, pen = self._step_context(self._ensure_store(), training, False, rng)
        vals, masks, _ = self._run_forward(xs, training, ctx, steps=self._train_steps)
        total, per_out, preds, pmasks, _ = self._loss_and_grads(vals, masks, ys, sws, ctx, False)
        penalty = ctx.penalty or 0.0
        if weight_penalty and pen[1]:
            penalty += self.weight_penalty()
        return StepResult(total + penalty, per_out, None, preds, pmasks, penalty)

    def apply_gradients(self, grads, loss):
        """One optimizer update of the flat weights from `grads` (the flat gradient buffer,
        which the update only reads); `loss` is the step's total loss.

        Returns False, leaving weights and optimizer state untouched, when a callback in
        fit asked to skip non-finite steps (TerminateOnNaN) and the loss or a gradient is
        not finite; `step_skipped` tells callbacks.
        """
        store = self._ensure_store()
        self._step_skipped = self._skip_nonfinite and not finite_step(loss, grads)
        if store.size and not self._step_skipped:
            self.optimizer.build(store.variables)  # per-variable options (clipnorm, decay exclusions)
            self.optimizer.apply_flat(store.flat, grads, store.segments)
            note_write()
            self._apply_constraints(store)
        return not self._step_skipped

    def record_step(self, batch_size, result, ys=None, sws=None):
        """Add one batch to the running means: its losses (weighted by batch size, as Keras
        does; nan/inf reported as they are) and, when `result` has predictions, its metrics."""
        self._loss_tracker.add(result.loss, batch_size)
        for t, v in zip(self._out_loss_trackers, result.output_losses):
            if t is not None and v is not None:
                t.add(v, batch_size)
        if self._has_metrics and result.predictions is not None:
            self.update_metrics(ys, result.predictions, result.masks, sws)

    @property
    def step_skipped(self):
        """Whether the last training step's update was skipped (non-finite, see apply_gradients)."""
        return self._step_skipped

    def _strategy(self):
        return self._distribute if self._distribute is not None else LOCAL

    def _train_step(self, xs, ys, sws):
        return self._strategy().train_step(self, xs, ys, sws)

    def _test_step(self, xs, ys, sws):
        return self._strategy().test_step(self, xs, ys, sws)

    def _predict_batch(self, xs):
        ctx = Context(training=False, want_grads=False)
        vals, _, _ = self._run_forward(xs, False, ctx)
        return [vals[s] for s in self._plan.output_slots]

    # --- public single-batch API ----------------------------------------------------------------

    def compute_gradients(self, x, y, sample_weight=None, training=True):
        """(loss, gradients) for one batch without updating anything.

        Gradients are arrays in `trainable_weights` order, of the same total loss fit()
        minimises. fusedlstm extension (Keras needs a GradientTape for this); the
        gradient checks in the test-suite use it.
        """
        self._maybe_build_from_data(x)
        self._assert_compiled("compute_gradients")
        xs, ys, sws = self._prepare_batch(x, y, sample_weight)
        store, total, _, _, _, _ = self._forward_backward(xs, ys, sws, training)
        return total, [v.grad.copy() for v in store.variables]

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
