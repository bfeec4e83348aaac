"""Keras-compatible layers (`from fusedlstm.layers import LSTM, Dense, ...`).

Importing a Keras layer this library does not implement (Conv2D, Attention...)
raises NotImplementedError naming it, rather than a bare ImportError, so a ported
notebook says exactly what is missing.
"""

from .. import registry as _registry
from .advanced_activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import KerasTensor, Layer, Variable
from .conv import Conv1D
from .core import (Activation, Dropout, Flatten, Input, InputLayer, Masking, RepeatVector,
                   Reshape, SpatialDropout1D)
from .dense import Dense
from .embedding import Embedding
from .gru import GRU
from .lstm import LSTM
from .merge import Add, Average, Concatenate, Multiply, Subtract
from .rnn import RNN
from .rnn_cells import GRUCell, LSTMCell, SimpleRNNCell
from .simple_rnn import SimpleRNN
from .text_vectorization import TextVectorization
from .noise import AlphaDropout, GaussianDropout, GaussianNoise
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .reshaping import Cropping1D, Permute, UpSampling1D, ZeroPadding1D
from .serialization import deserialize, get_layer_class, serialize
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "LSTM", "GRU", "SimpleRNN", "RNN", "LSTMCell",
           "GRUCell", "SimpleRNNCell", "Dense", "Embedding",
           "TimeDistributed", "Bidirectional", "RepeatVector", "Dropout", "SpatialDropout1D",
           "Activation", "Masking", "Flatten", "Reshape", "Concatenate", "Add", "Subtract",
           "Multiply", "Average", "Conv1D", "Convolution1D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
           "GlobalMaxPooling1D", "GlobalMaxPool1D", "GlobalAveragePooling1D", "GlobalAvgPool1D",
           "UpSampling1D", "ZeroPadding1D", "Cropping1D", "Permute", "LayerNormalization",
           "BatchNormalization", "LeakyReLU", "PReLU", "ReLU", "ELU", "Softmax", "GaussianNoise",
           "GaussianDropout", "AlphaDropout", "TextVectorization", "deserialize", "serialize", "get_layer_class"]

# Keras's other names for the same classes.
Convolution1D = Conv1D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D

# Keras layers a notebook may import that fusedlstm does not provide.
_KERAS_ONLY = {
    "StackedRNNCells",
    "ConvLSTM1D", "ConvLSTM2D", "CuDNNLSTM", "CuDNNGRU", "Conv2D",
    "Conv1DTranspose", "SeparableConv1D", "DepthwiseConv1D", "MaxPooling2D", "AveragePooling2D",
    "GlobalMaxPooling2D", "GlobalAveragePooling2D", "UpSampling2D", "ZeroPadding2D", "Cropping2D",
    "GroupNormalization", "UnitNormalization", "RMSNormalization", "SpectralNormalization",
    "Attention", "AdditiveAttention", "MultiHeadAttention", "Lambda", "Dot", "Maximum", "Minimum",
    "Normalization", "StringLookup", "IntegerLookup", "CategoryEncoding",
    "Hashing", "Discretization", "Wrapper", "ActivityRegularization", "SpatialDropout2D", "Layer_",
    "TimeDistributedDense", "Merge",
}


def __getattr__(name):
    if name in _KERAS_ONLY:
        raise NotImplementedError(
            f"keras.layers.{name} is not implemented by fusedlstm; supported layers: "
            f"{_registry.names('layers')}.")
    raise AttributeError(f"module 'fusedlstm.layers' has no attribute {name!r}")
