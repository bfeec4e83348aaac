"""Small callbacks: TerminateOnNaN, LambdaCallback, LearningRateScheduler."""

import inspect
import math
import numbers

import numpy as np

from .callback import Callback

__all__ = ["TerminateOnNaN", "LambdaCallback", "LearningRateScheduler"]


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss (or its gradient) is NaN or infinite.

    Args:
        raise_error: raise RuntimeError instead of setting model.stop_training.

    Unlike Keras, the bad step is not applied: while this callback is in fit's list,
    a step whose loss or gradient is not finite leaves the weights and the optimizer
    state (moments, iteration count) untouched, so after fit returns the model
    holds the weights of the last finite step and can be saved or trained further
    (with a lower learning rate, say). The message names the epoch (1-based, as the
    progress bar counts) and the batch (0-based, as Keras's message does); the
    callback keeps them in `stopped_at` = (epoch, batch).
    """

    # fit skips non-finite updates while a callback with this attribute is present.
    skips_nonfinite_updates = True

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error
        self._epoch = None
        self.stopped_at = None

    def on_train_begin(self, logs=None):
        self.stopped_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        bad_loss = isinstance(loss, (numbers.Real, np.generic)) and not math.isfinite(loss)
        skipped = getattr(self.model, "step_skipped", False) is True
        if not (bad_loss or skipped):
            return
        where = f"batch {batch}" if self._epoch is None else f"epoch {self._epoch + 1}, batch {batch}"
        what = f"Loss value: {loss}" if bad_loss else "the gradient is not finite"
        kept = (" The update of this batch was not applied: the model keeps the weights of the last "
                "finite step.") if skipped else ""
        self.stopped_at = (None if self._epoch is None else self._epoch + 1, batch)
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch} ({where}). {what}. "
                f"Terminating training immediately.{kept}"
            )
        print(f"Batch {batch}: Invalid loss, terminating training ({where}; {what}).{kept}", flush=True)
        self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of plain functions.

    Args:
        on_epoch_begin / on_epoch_end: f(epoch, logs).
        on_train_begin / on_train_end: f(logs).
        on_train_batch_begin / on_train_batch_end: f(batch, logs).
        **kwargs: other hooks by name (e.g. on_test_end=f) or attributes.

    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch))
    """

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs,
    ):
        super().__init__()
        hooks = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
        )
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(
                    f"Received an invalid value for argument `{name}`, expected a callable, "
                    f"got {type(fn).__name__}."
                )
            setattr(self, name, fn)
        self.__dict__.update(kwargs)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from `schedule`.

    Args:
        schedule: f(epoch, lr) -> new lr (epoch 0-based, lr the current rate),
            or the older f(epoch) -> new lr.
        verbose: 1 prints each update.

    Adds `learning_rate` to the epoch logs, so History records it.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "Received an invalid value for argument `schedule`, expected a callable, "
                f"got {type(schedule).__name__}."
            )
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        if self._takes_lr:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (float, np.floating, numbers.Integral)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        try:
            optimizer.learning_rate = float(lr)
        except TypeError as exc:  # a LearningRateSchedule or callable learning rate: Keras refuses too
            raise TypeError(f"LearningRateScheduler cannot set the learning rate: {exc}") from None
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _accepts_two_args(fn):
    # Keras tries f(epoch, lr) and retries f(epoch) on TypeError, which also
    # swallows TypeErrors raised inside the schedule; we read the signature.
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 2
