"""PyTorch interchange: torch.nn.LSTM, nn.GRU and nn.RNN weights to and from our LSTM, GRU and SimpleRNN.

Each torch module computes the cell of one Keras layer; only the storage differs.
For layer k of the module (`_reverse` for the backward direction), with G gate
blocks of H units, stacked along torch's first axis and along Keras's last:

    Keras                              torch.nn.LSTM / GRU / RNN
    kernel            (I, GH)          weight_ih_l{k}  (GH, I)  = kernel.T, gate blocks in torch's order
    recurrent_kernel  (H, GH)          weight_hh_l{k}  (GH, H)  = recurrent_kernel.T, likewise
    bias                               bias_ih_l{k}, bias_hh_l{k}  (GH,) each

    LSTM       G=4  Keras i, f, c, o; torch i, f, g, o     bias (4H,)   = bias_ih + bias_hh
    GRU        G=3  Keras z, r, h; torch r, z, n           bias (2, 3H) = [bias_ih; bias_hh]
    SimpleRNN  G=1  activation = nonlinearity (tanh/relu)  bias (H,)    = bias_ih + bias_hh

torch.nn.GRU applies the reset gate after the recurrent product,
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): Keras's GRU(reset_after=True), whose
two bias rows are torch's two biases, so that conversion is exact both ways. A
GRU(reset_after=False) applies r to h before the product; no nn.GRU computes that,
and it is refused. Exporting an LSTM or SimpleRNN puts the whole bias in bias_ih and
zeros in bias_hh (exact: b + 0 = b).

A torch module with num_layers=L is L stacked Keras layers (all but the last
returning sequences); bidirectional=True is Keras's Bidirectional(merge_mode=
'concat'), whose backward outputs Keras also flips back to input order.

A file written by `torch.save(module.state_dict(), path)` loads without building
the torch module (`load_torch_state_dict`; the target layers say which cell the
file holds). Such a file is a pickle: it is read with `torch.load(weights_only=True)`,
whose unpickler builds tensors and plain containers only and refuses any other
class or function a file names, after the zip container's sizes are checked
(fusedlstm.untrusted). Files of torch's pre-1.6 format (not a zip) and pickled
modules (`torch.save(lstm)`) are refused.

torch is imported only by the functions that need it; the weight conversions
take and return NumPy arrays.
"""

from typing import List, Sequence

import numpy as np

from .torch_layers import layers_from_module, load_module, module_from_layers
from .torch_layout import GRU_CELL, LSTM_CELL, RNN_CELL, module_weights, set_module_weights
from .torch_state_dict import load_torch_state_dict, read_torch_state_dict

__all__ = ["torch_lstm_weights", "set_torch_lstm_weights", "lstm_layers_from_torch", "load_torch_lstm",
           "torch_lstm_from_layers",
           "torch_gru_weights", "set_torch_gru_weights", "gru_layers_from_torch", "load_torch_gru",
           "torch_gru_from_layers",
           "torch_rnn_weights", "set_torch_rnn_weights", "simple_rnn_layers_from_torch", "load_torch_rnn",
           "torch_rnn_from_layers",
           "read_torch_state_dict", "load_torch_state_dict"]


def torch_lstm_weights(lstm) -> List[List[np.ndarray]]:
    """Keras-layout weights of a torch.nn.LSTM, one list per layer.

    Each list is [kernel, recurrent_kernel, bias] (no bias when bias=False) as float32;
    for a bidirectional LSTM the backward direction's arrays follow the forward's,
    which is the order of Keras Bidirectional.get_weights().
    """
    return module_weights(LSTM_CELL, lstm)


def set_torch_lstm_weights(lstm, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout weights (as torch_lstm_weights returns them) into a torch.nn.LSTM.

    Raises ValueError naming the layer and the expected and given shapes on any mismatch;
    nothing is copied unless every array fits.
    """
    set_module_weights(LSTM_CELL, lstm, weights)


def load_torch_lstm(target, lstm) -> None:
    """Set our LSTM (or Bidirectional) layers' weights from a torch.nn.LSTM.

    target: one layer, a list of layers, or a model whose weighted layers are all
        LSTM/Bidirectional — one per torch layer, built, with matching sizes.
    """
    load_module(LSTM_CELL, target, lstm)


def lstm_layers_from_torch(lstm, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.LSTM computes (batch-first).

    Returns one LSTM (or Bidirectional(merge_mode='concat')) per torch layer, every one
    but the last with return_sequences=True; their weights are set when they are built
    (e.g. `Sequential([Input((None, lstm.input_size)), *layers])`).
    """
    return layers_from_module(LSTM_CELL, lstm, return_sequences, return_state)


def torch_lstm_from_layers(source, batch_first: bool = True):
    """A new torch.nn.LSTM with the weights of our stacked LSTM (or Bidirectional) layers.

    source: a layer, a list of layers or a model (its LSTM layers, in order). They must
    stack as torch stacks them: the same units, tanh/sigmoid activations, every layer
    but the last returning sequences, no go_backwards outside Bidirectional.
    """
    return module_from_layers(LSTM_CELL, source, batch_first)


def torch_gru_weights(gru) -> List[List[np.ndarray]]:
    """Keras-layout weights of a torch.nn.GRU, one list per layer, for GRU(reset_after=True).

    Each list is [kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)] (no bias when
    bias=False) as float32, gates in Keras's order z, r, h (torch's r, z, n reordered);
    the bias rows are torch's bias_ih and bias_hh. For a bidirectional GRU the backward
    direction's arrays follow the forward's (Keras Bidirectional.get_weights() order).
    """
    return module_weights(GRU_CELL, gru)


def set_torch_gru_weights(gru, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout GRU(reset_after=True) weights (as torch_gru_weights returns them) into a torch.nn.GRU.

    Raises ValueError naming the layer and the expected and given shapes on any mismatch
    (a (3H,) bias is reset_after=False's, which torch cannot compute); nothing is copied
    unless every array fits.
    """
    set_module_weights(GRU_CELL, gru, weights)


def load_torch_gru(target, gru) -> None:
    """Set our GRU (or Bidirectional(GRU)) layers' weights from a torch.nn.GRU.

    target: one layer, a list of layers, or a model whose weighted layers are all
        GRU/Bidirectional(GRU) with reset_after=True and tanh/sigmoid activations — one
        per torch layer, built, with matching sizes.
    """
    load_module(GRU_CELL, target, gru)


def gru_layers_from_torch(gru, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.GRU computes (batch-first).

    Returns one GRU(reset_after=True) (or Bidirectional(merge_mode='concat')) per torch
    layer, every one but the last with return_sequences=True; their weights are set when
    they are built (e.g. `Sequential([Input((None, gru.input_size)), *layers])`).
    """
    return layers_from_module(GRU_CELL, gru, return_sequences, return_state)


def torch_gru_from_layers(source, batch_first: bool = True):
    """A new torch.nn.GRU with the weights of our stacked GRU (or Bidirectional(GRU)) layers.

    source: a layer, a list of layers or a model (its GRU layers, in order). They must
    stack as torch stacks them: reset_after=True, the same units, tanh/sigmoid
    activations, every layer but the last returning sequences, no go_backwards outside
    Bidirectional. A reset_after=False GRU is refused: torch.nn.GRU cannot compute it.
    """
    return module_from_layers(GRU_CELL, source, batch_first)


def torch_rnn_weights(rnn) -> List[List[np.ndarray]]:
    """Keras-layout SimpleRNN weights of a torch.nn.RNN, one list per layer.

    Each list is [kernel (I, H), recurrent_kernel (H, H), bias (H,) = bias_ih + bias_hh]
    (no bias when bias=False) as float32; for a bidirectional RNN the backward
    direction's arrays follow the forward's. The nonlinearity is rnn.nonlinearity.
    """
    return module_weights(RNN_CELL, rnn)


def set_torch_rnn_weights(rnn, weights: Sequence[Sequence[np.ndarray]]) -> None:
    """Copy Keras-layout SimpleRNN weights (as torch_rnn_weights returns them) into a torch.nn.RNN.

    The bias goes to bias_ih, zeros to bias_hh. Raises ValueError naming the layer and
    the expected and given shapes on any mismatch; nothing is copied unless every array fits.
    """
    set_module_weights(RNN_CELL, rnn, weights)


def load_torch_rnn(target, rnn) -> None:
    """Set our SimpleRNN (or Bidirectional(SimpleRNN)) layers' weights from a torch.nn.RNN.

    target: one layer, a list of layers, or a model whose weighted layers are all
        SimpleRNN/Bidirectional(SimpleRNN) whose activation is the RNN's nonlinearity —
        one per torch layer, built, with matching sizes.
    """
    load_module(RNN_CELL, target, rnn)


def simple_rnn_layers_from_torch(rnn, return_sequences: bool = False, return_state: bool = False) -> list:
    """New fusedlstm layers computing what a torch.nn.RNN computes (batch-first).

    Returns one SimpleRNN(activation=rnn.nonlinearity) (or Bidirectional(merge_mode=
    'concat')) per torch layer, every one but the last with return_sequences=True; their
    weights are set when they are built.
    """
    return layers_from_module(RNN_CELL, rnn, return_sequences, return_state)


def torch_rnn_from_layers(source, batch_first: bool = True):
    """A new torch.nn.RNN with the weights of our stacked SimpleRNN (or Bidirectional) layers.

    source: a layer, a list of layers or a model (its SimpleRNN layers, in order). They
    must stack as torch stacks them: the same units, one activation for all, 'tanh' or
    'relu' (torch's nonlinearity), every layer but the last returning sequences, no
    go_backwards outside Bidirectional.
    """
    return module_from_layers(RNN_CELL, source, batch_first)
