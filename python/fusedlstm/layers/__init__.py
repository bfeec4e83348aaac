"""Keras-compatible layers (`from fusedlstm.layers import LSTM, Dense, ...`).

Importing a Keras layer this library does not implement (GRU, Conv1D, Attention...)
raises NotImplementedError naming it, rather than a bare ImportError, so a ported
notebook says exactly what is missing.
"""

from .base import KerasTensor, Layer, Variable
from .core import (Activation, Dropout, Flatten, Input, InputLayer, Masking, RepeatVector,
                   Reshape, SpatialDropout1D)
from .dense import Dense
from .embedding import Embedding
from .lstm import LSTM
from .merge import Add, Average, Concatenate, Multiply, Subtract
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "LSTM", "Dense", "Embedding",
           "TimeDistributed", "Bidirectional", "RepeatVector", "Dropout", "SpatialDropout1D",
           "Activation", "Masking", "Flatten", "Reshape", "Concatenate", "Add", "Subtract",
           "Multiply", "Average", "deserialize", "serialize", "get_layer_class"]

_CLASSES = {c.__name__: c for c in (InputLayer, LSTM, Dense, Embedding, TimeDistributed,
                                     Bidirectional, RepeatVector, Dropout, SpatialDropout1D,
                                     Activation, Masking, Flatten, Reshape, Concatenate, Add,
                                     Subtract, Multiply, Average)}

# Keras layers a notebook may import that fusedlstm does not provide.
_KERAS_ONLY = {
    "GRU", "SimpleRNN", "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells",
    "ConvLSTM1D", "ConvLSTM2D", "CuDNNLSTM", "CuDNNGRU", "Conv1D", "Conv2D", "MaxPooling1D",
    "MaxPool1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "AveragePooling1D",
    "BatchNormalization", "LayerNormalization", "Attention", "AdditiveAttention",
    "MultiHeadAttention", "Lambda", "GaussianNoise", "LeakyReLU", "PReLU", "ReLU", "Softmax",
    "Permute", "Cropping1D", "ZeroPadding1D", "UpSampling1D", "Dot", "Maximum", "Minimum",
    "TextVectorization", "Normalization", "StringLookup", "IntegerLookup", "CategoryEncoding",
    "Hashing", "Discretization", "Wrapper", "ActivityRegularization", "AlphaDropout",
    "GaussianDropout", "SpatialDropout2D", "Layer_", "TimeDistributedDense", "Merge",
}


def __getattr__(name):
    if name in _KERAS_ONLY:
        raise NotImplementedError(
            f"keras.layers.{name} is not implemented by fusedlstm; supported layers: "
            f"{sorted(_CLASSES)}.")
    raise AttributeError(f"module 'fusedlstm.layers' has no attribute {name!r}")


def get_layer_class(class_name):
    """The class for a layer config's class_name; NotImplementedError for anything else.

    Loading a saved model only ever instantiates these classes: no code named in a
    file (Lambda, custom objects) is ever imported or run.
    """
    cls = _CLASSES.get(class_name)
    if cls is None:
        raise NotImplementedError(
            f"Layer class {class_name!r} is not supported by fusedlstm (refusing to load it); "
            f"supported: {sorted(_CLASSES)}.")
    return cls


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A layer config must be a dict with 'class_name' and 'config', got {config!r}.")
    return get_layer_class(config["class_name"]).from_config(dict(config.get("config", {})))
