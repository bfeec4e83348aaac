"""Keras-compatible layers (`from fusedlstm.layers import LSTM, Dense, ...`).

Importing a Keras layer this library does not implement (Conv1D, Attention...)
raises NotImplementedError naming it, rather than a bare ImportError, so a ported
notebook says exactly what is missing.
"""

from .. import registry as _registry
from .base import KerasTensor, Layer, Variable
from .core import (Activation, Dropout, Flatten, Input, InputLayer, Masking, RepeatVector,
                   Reshape, SpatialDropout1D)
from .dense import Dense
from .embedding import Embedding
from .gru import GRU
from .lstm import LSTM
from .merge import Add, Average, Concatenate, Multiply, Subtract
from .simple_rnn import SimpleRNN
from .serialization import deserialize, get_layer_class, serialize
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "LSTM", "GRU", "SimpleRNN", "Dense", "Embedding",
           "TimeDistributed", "Bidirectional", "RepeatVector", "Dropout", "SpatialDropout1D",
           "Activation", "Masking", "Flatten", "Reshape", "Concatenate", "Add", "Subtract",
           "Multiply", "Average", "deserialize", "serialize", "get_layer_class"]

# Keras layers a notebook may import that fusedlstm does not provide.
_KERAS_ONLY = {
    "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells",
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
            f"{_registry.names('layers')}.")
    raise AttributeError(f"module 'fusedlstm.layers' has no attribute {name!r}")
