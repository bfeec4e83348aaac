"""Which callbacks run on which rank, and fit's own end-of-epoch weight check.

Callbacks that print or write files (the progress bar, ModelCheckpoint, CSVLogger,
TensorBoard) run on rank 0 only; the others (EarlyStopping, ReduceLROnPlateau,
TerminateOnNaN...) run everywhere, and decide the same everywhere because the logs
hold the global numbers. A callback may say otherwise with `root_only = True/False`.
"""

from ..callbacks.callback import Callback
from ..callbacks.callback_list import flatten_callbacks
from .sync import weights_agree

__all__ = ["rank_callbacks", "SyncCheck"]

# Callback classes that print or write files: rank 0 runs them, the others skip them.
_ROOT_ONLY = frozenset({"ProgbarLogger", "ModelCheckpoint", "CSVLogger", "TensorBoard"})


def _root_only(cb):
    flag = getattr(cb, "root_only", None)
    if isinstance(flag, bool):
        return flag
    return any(cls.__name__ in _ROOT_ONLY for cls in type(cb).__mro__)


def rank_callbacks(callbacks, verbose, is_root, extra=()):
    """(verbose, callbacks) for a rank: rank 0 keeps all; the others print and write nothing."""
    cbs = flatten_callbacks(callbacks)
    if not is_root:
        verbose = 0
        cbs = [c for c in cbs if not _root_only(c)]
    return verbose, cbs + list(extra)


class SyncCheck(Callback):
    """fit's internal callback: verifies at each epoch's end that all ranks hold the same weights."""

    root_only = False

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_epoch_end(self, epoch, logs=None):
        weights_agree(self.strategy._comm, self.model, f"at the end of epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        self.strategy.end_fit(self.model)
