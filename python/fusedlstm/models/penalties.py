"""Regularization penalties and weight constraints in the training step.

Keras 3 adds `model.losses` to the compiled loss (trainers/trainer.py compute_loss):
every trainable weight's regularizer penalty, and every layer's activity penalty
penalty(output) / batch size of the current call; both count in the reported loss
(training and evaluation), not in the per-output losses. After each optimizer update
it replaces every constrained trainable weight w by constraint(w)
(optimizers/base_optimizer.py apply).

Here a weight's regularizer and constraint are attributes of its Variable (set by
Layer.add_weight), found once per parameter store; the activity penalties are
summed by the forward pass into the step's Context (models/functional.py) and their
gradients join the outputs' in the backward pass. A model without any of them pays
one cached lookup per step.
"""

from ..variables import generation

__all__ = ["PenaltyMixin"]


class PenaltyMixin:
    """Weight penalties, the activity-penalty switch, and constraints for the trainer."""

    def _penalties(self, store):
        """([(variable, regularizer)], [(variable, constraint)], any activity penalty) of the
        trainable weights and the plan, found again only when the store, the trainable set
        (generation) or the plan changed."""
        key = (id(store), generation(), id(self._plan))
        cached = self._penalty_cache
        if cached is None or cached[0] != key:
            regs = [(v, v.regularizer) for v in store.variables if v.regularizer is not None]
            cons = [(v, v.constraint) for v in store.variables if v.constraint is not None]
            activity = any(st.act is not None or _collects(st.op) for st in self._plan.steps)
            cached = self._penalty_cache = (key, regs, cons, activity)
        return cached

    def weight_penalty(self, gradients=False):
        """Σ regularizer(weight) over the trainable weights (a float, 0.0 without any); with
        `gradients`, each penalty's gradient is also added to the weight's gradient in the
        flat gradient buffer. (Part of the step interface: a data-parallel strategy adds
        this replica-independent term once, after reducing the data terms.)"""
        total = 0.0
        for v, reg in self._penalties(self._ensure_store())[1]:
            total += reg(v.value)
            if gradients:
                v.grad += reg.gradient(v.value)
        return total

    def _collects_activity_penalties(self):
        """Whether any layer of the model (nested models included) has an activity regularizer."""
        return self._penalties(self._ensure_store())[3]

    def _apply_constraints(self, store):
        for v, constraint in self._penalties(store)[2]:
            v._write(constraint(v.value))


def _collects(op):
    f = getattr(op, "_collects_activity_penalties", None)
    return bool(f()) if f is not None and getattr(op, "_plan", None) is not None else False
