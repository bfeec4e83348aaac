"""keras.layers.LSTM on the fused C++ kernel: the whole sequence is one lstm_forward call.

What the recurrent layers share (dropout, masks, stateful, the Embedding/RepeatVector
fusions) is in layers/recurrent.py; this file holds the LSTM's arguments, its (4H)
bias with unit_forget_bias, and its kernel pair (two states, h and c).
"""

import numpy as np

from .. import _core
from .. import activations as _acts
from ..registry import register
from .recurrent import FusedRecurrent, dropout_mask  # noqa: F401  (dropout_mask: re-exported for old imports)


@register("layers")
class LSTM(FusedRecurrent):
    """Long Short-Term Memory layer (keras.layers.LSTM, Keras 3 arguments and defaults).

    Args:
        units: positive int, size of h and c.
        activation, recurrent_activation: 'tanh', 'sigmoid', 'hard_sigmoid', 'relu',
            'linear' (None = linear).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        unit_forget_bias: as Keras (unit_forget_bias puts ones on the forget block).
        dropout, recurrent_dropout: fractions in [0, 1] (see layers/recurrent.py).
        return_sequences, return_state, go_backwards, stateful: as Keras.
        unroll: accepted for compatibility; the kernel never unrolls (no effect).
        seed: seeds this layer's dropout stream (else the library stream).
        kernel_/recurrent_/bias_/activity_regularizer, kernel_/recurrent_/bias_constraint:
            as Keras (fusedlstm.regularizers, fusedlstm.constraints).

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: [h0, c0], each (batch, units).
        training: enables dropout.

    >>> layer = LSTM(4)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    _state_names = ("h", "c")
    _gates = 4
    _cell_kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0, recurrent_dropout=0.0,
                 use_cudnn="auto", implementation=2, time_major=False, **kwargs):
        if time_major:
            raise NotImplementedError("LSTM: `time_major=True` is not supported; pass (batch, time, features).")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"Invalid value received for argument `use_cudnn`. Expected one of {{'auto', True, False}}. Received: use_cudnn={use_cudnn}")
        if implementation not in (1, 2):
            raise ValueError(f"Received an invalid value for argument `implementation`, expected 1 or 2, got {implementation!r}.")
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, **kwargs)
        self.recurrent_activation = _acts.get(recurrent_activation, "recurrent_activation")
        self._ract = self._kernel_activation(self.recurrent_activation, "recurrent_activation")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.use_cudnn = use_cudnn
        self.implementation = implementation

    def _bias_shape_and_init(self):
        H = self.units
        if not self.unit_forget_bias:
            return (4 * H,), self.bias_initializer
        bi = self.bias_initializer

        def init(shape, dtype):
            return np.concatenate([bi((H,), dtype), np.ones((H,), dtype), bi((2 * H,), dtype)])
        return (4 * H,), init

    def _kernel_forward(self, x, W, states, mask, rec_mask, zero_output, want_grads):
        b = self.bias.value if self.use_bias else None
        y, hT, cT, kc = _core.lstm_forward(
            x, W, self.recurrent_kernel.value, b, states[0], states[1], mask=mask, rec_mask=rec_mask,
            go_backwards=self.go_backwards, zero_output_for_mask=zero_output,
            activation=self._act, recurrent_activation=self._ract,
            return_sequences=self.return_sequences, training=want_grads,
            precision=self._precision, packed_U=self._packed_recurrent(want_grads, x.shape[0]))
        return y, [hT, cT], kc

    def _kernel_backward(self, kc, dy, dstates, need_dx, outs, accumulate):
        dx, dh0, dc0, dW, dU, db = _core.lstm_backward(
            kc, dy, dstates[0], dstates[1], need_dx=need_dx, dW_out=outs[0], dU_out=outs[1], db_out=outs[2],
            accumulate=accumulate)
        return dx, [dh0, dc0], dW

    def get_config(self):
        cfg = super().get_config()
        cfg.update(recurrent_activation=_acts.serialize(self.recurrent_activation),
                   unit_forget_bias=self.unit_forget_bias)
        return cfg
