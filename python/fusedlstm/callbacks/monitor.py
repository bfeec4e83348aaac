"""Shared logic of callbacks that watch one logged quantity for improvement.

`mode='auto'` decides the direction from the name, as Keras 3 does through the
metric objects: losses and errors go down, accuracies and similar scores go up,
and a name it cannot place is an error asking for mode='min' or 'max'. An unknown
mode is an error here (Keras 3 warns and falls back to 'auto', which hides typos).
"""

import numbers
import operator
import warnings

import numpy as np

from .callback import Callback

_DOWN = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy", "hinge", "perplexity")
_UP = ("acc", "accuracy", "auc", "precision", "recall", "f1", "iou")


def _direction_from_name(monitor, model):
    name = monitor[4:] if monitor.startswith("val_") else monitor
    for metric in getattr(model, "metrics", None) or []:
        direction = getattr(metric, "_direction", None)
        if getattr(metric, "name", None) == name and direction in ("up", "down"):
            return direction
    lowered = name.lower()
    if any(lowered == d or lowered.endswith("_" + d) or lowered.endswith(d) for d in _DOWN):
        return "down"
    if any(lowered == u or lowered.endswith("_" + u) or lowered.startswith(u) for u in _UP):
        return "up"
    return None


class MonitorCallback(Callback):
    """Base of EarlyStopping, ModelCheckpoint and ReduceLROnPlateau.

    Args:
        monitor: the logs key to watch.
        mode: 'auto', 'min' or 'max'.
        baseline: initial best value, or None (the first value seen is the best).
        min_delta: an improvement must beat the best by more than |min_delta|.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"Received an invalid value for argument `monitor`, expected a non-empty string, got {monitor!r}."
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                "Received an invalid value for argument `mode`, expected 'auto', 'min' "
                f"or 'max', got {mode!r}."
            )
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real):
            raise TypeError(
                f"Received an invalid value for argument `min_delta`, expected a number, got {min_delta!r}."
            )
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(float(min_delta))
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            direction = "down"
        elif self.mode == "max":
            direction = "up"
        else:
            direction = _direction_from_name(self.monitor, self.model)
            if direction is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor!r}, but "
                    "cannot tell whether that metric should be maximized or minimized. "
                    "Pass mode='max' or mode='min'."
                )
        if direction == "down":
            self.monitor_op = operator.lt
            self._signed_delta = -self.min_delta
        else:
            self.monitor_op = operator.gt
            self._signed_delta = self.min_delta

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return bool(self.monitor_op(value - self._signed_delta, reference))

    def _get_monitor_value(self, logs, what):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{what} conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs.keys())}",
                stacklevel=3,
            )
        elif isinstance(value, np.ndarray) and value.size != 1:
            raise ValueError(
                f"{what}: the monitored metric `{self.monitor}` is an array of {value.size} values (one per "
                "class or threshold); monitor a single number, e.g. F1Score(average='macro') or a Precision "
                "with one threshold.")
        return value


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored quantity has stopped improving.

    Args:
        monitor: the logs key to watch ('val_loss').
        min_delta: changes smaller than this do not count as improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints when it stops and when it restores weights.
        mode: 'auto', 'min' or 'max'.
        baseline: training stops unless the quantity beats this within `patience`.
        restore_best_weights: at the end of training, set the weights of the best
            epoch (even when training was not stopped early).
        start_from_epoch: epochs of warm-up before monitoring starts.

    >>> cb = EarlyStopping(monitor="loss", patience=3)
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        _check_non_negative_int("patience", patience)
        _check_non_negative_int("start_from_epoch", start_from_epoch)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        # Reset so one instance can serve several fit calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._get_monitor_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Patience restarts only when the baseline is beaten too.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.",
                    flush=True,
                )
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when the quantity stops improving.

    Args:
        monitor: the logs key to watch ('val_loss').
        factor: new_lr = lr * factor (0 <= factor < 1).
        patience: epochs without improvement before reducing.
        verbose: 1 prints each reduction.
        mode: 'auto', 'min' or 'max'.
        min_delta: changes smaller than this do not count as improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the learning rate never goes below this.

    Adds `learning_rate` to the epoch logs, so History records it.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= factor < 1:
            raise ValueError(
                "Received an invalid value for argument `factor`, expected a number in "
                f"[0, 1), got {factor!r}."
            )
        _check_non_negative_int("patience", patience)
        _check_non_negative_int("cooldown", cooldown)
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0
        get_state = getattr(self.model.optimizer, "get_state", None)
        if callable(get_state) and get_state()["learning_rate"] is None:
            warnings.warn(
                "ReduceLROnPlateau: the optimizer's learning rate is a schedule (or a callable), which cannot be "
                f"lowered: if `{self.monitor}` stops improving for {self.patience} epoch(s), fit raises TypeError "
                "(as Keras does). Use a float learning rate with this callback.", UserWarning, stacklevel=2)

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._get_monitor_value(logs, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                # Compared in float32: the optimizer stores float32, so a value
                # that rounds to min_lr counts as having reached it.
                if np.float32(old_lr) > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    try:
                        optimizer.learning_rate = new_lr
                    except TypeError as exc:  # a schedule: Keras raises the same TypeError here
                        raise TypeError(f"ReduceLROnPlateau cannot lower the learning rate: {exc}") from None
                    if self.verbose > 0:
                        print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.",
                            flush=True,
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _check_non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a non-negative "
            f"integer, got {value!r}."
        )
