"""Keras-compatible models (`from fusedlstm.models import Sequential, Model, load_model`)."""

from ..saving import load_model as _load_model
from .functional import Functional, Model
from .sequential import Sequential
from .strategy import Strategy
from .step import StepResult
from .streaming import Stream


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved with model.save() (see fusedlstm.saving for the formats)."""
    return _load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


__all__ = ["Sequential", "Model", "Functional", "load_model", "Strategy", "StepResult", "Stream"]
