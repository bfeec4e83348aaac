"""keras.preprocessing: `sequence.pad_sequences` (its Keras 2 home), `timeseries_dataset_from_array`,
and the logic of `TextVectorization` (text -> token ids; the layer wrapper is in fusedlstm.layers)."""

from ..timeseries import timeseries_dataset_from_array
from . import sequence
from .text_vectorization import TextVectorization

__all__ = ["sequence", "timeseries_dataset_from_array", "TextVectorization"]
