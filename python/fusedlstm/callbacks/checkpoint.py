"""ModelCheckpoint: save the model or its weights during training.

The path is a format string filled with the 1-based epoch and the epoch's logs
("w.{epoch:02d}-{val_loss:.2f}.weights.h5"). Unlike Keras we do not demand a
particular suffix: `model.save` / `model.save_weights` choose the format from it
and reject one they do not know.

In fusedlstm's own formats ('.fusedlstm', '.weights.npz') the file is a full
training checkpoint: weights plus optimizer state, position in the epoch, random
streams and running metric sums, written atomically. `restore_checkpoint(model,
path)` then lets `fit(..., initial_epoch=...)` continue exactly (fusedlstm.resume).
"""

import numbers
import os
import warnings

import numpy as np

from .. import resume as _resume
from .monitor import MonitorCallback

__all__ = ["ModelCheckpoint", "restore_checkpoint"]

restore_checkpoint = _resume.restore_checkpoint


class ModelCheckpoint(MonitorCallback):
    """Save the model (or its weights) every epoch or every `save_freq` batches.

    Args:
        filepath: str or os.PathLike; may contain {epoch}, {batch} (with an
            integer save_freq) and any logs key, with format specs.
        monitor: the logs key compared when save_best_only.
        verbose: 1 prints each save.
        save_best_only: save only when `monitor` improved; with a constant
            filepath the file always holds the best model.
        save_weights_only: call model.save_weights instead of model.save.
        mode: 'auto', 'min' or 'max'.
        save_freq: 'epoch', or a positive integer number of batches.
        initial_value_threshold: a best value to beat before the first save.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__(monitor, mode, initial_value_threshold)
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(
                "Received an invalid value for argument `filepath`, expected a str or "
                f"os.PathLike, got {type(filepath).__name__}."
            )
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral) or save_freq < 1
        ):
            raise ValueError(
                "Received an invalid value for argument `save_freq`, expected 'epoch' or "
                f"a positive integer, got {save_freq!r}."
            )
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_since_save = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        self._first_batch_of_fit = False

    def on_train_begin(self, logs=None):
        self._first_batch_of_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if self._first_batch_of_fit:
            self._first_batch_of_fit = False
            if batch > 0:
                # A fit resumed mid-epoch from our own checkpoint (restore_checkpoint): its
                # first batch is not batch 0, and that checkpoint's save reset the count.
                self._last_batch_seen, self._batches_since_save = batch - 1, 0
        # Batch indices restart each epoch: a smaller index starts a new count.
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            self._batches_since_save += batch + 1
        else:
            self._batches_since_save += batch - self._last_batch_seen
        self._last_batch_seen = batch
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            return True
        return False

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}", flush=True)
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn(
                f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                "Falling back to `save_best_only=False`.",
                stacklevel=3,
            )
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                    f"{current:.5f}, saving model to {path}",
                    flush=True,
                )
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}", flush=True)
        return False

    def _file_path(self, epoch, batch, logs):
        logs = dict(logs or {})
        fields = {"epoch": epoch + 1}
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields, **logs)
        except (KeyError, IndexError) as exc:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {exc!r} '
                f"is not among the fields available: {sorted({**fields, **logs})}"
            ) from None

    def _save(self, epoch, batch, logs):
        path = self._file_path(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {path}"
            )
        if not self._should_save(epoch, logs, path):
            return
        dirname = os.path.dirname(path)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if _resume.can_checkpoint(self.model, path, self.save_weights_only):
            _resume.save_checkpoint(self.model, path, self.save_weights_only)
        elif self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
