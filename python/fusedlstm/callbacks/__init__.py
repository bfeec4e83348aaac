"""Callbacks for fit/evaluate/predict, with the names and behaviour of keras.callbacks."""

from .callback import Callback, History
from .callback_list import CallbackList
from .checkpoint import ModelCheckpoint, restore_checkpoint
from .csv_logger import CSVLogger
from .misc import LambdaCallback, LearningRateScheduler, TerminateOnNaN
from .monitor import EarlyStopping, MonitorCallback, ReduceLROnPlateau
from .progbar import Progbar, ProgbarLogger

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "Progbar",
    "EarlyStopping",
    "ModelCheckpoint",
    "restore_checkpoint",
    "TerminateOnNaN",
    "LambdaCallback",
    "CSVLogger",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "MonitorCallback",
]
