"""keras.layers.SimpleRNN on the fused C++ kernel: the whole sequence is one
simple_rnn_forward call, h_t = activation(x_t·W + b + h_{t-1}·U) (Keras 3 SimpleRNNCell).
What the recurrent layers share is in layers/recurrent.py.
"""

from .. import _core
from ..registry import register
from .recurrent import FusedRecurrent


@register("layers")
class SimpleRNN(FusedRecurrent):
    """Fully-connected RNN whose output is fed back (keras.layers.SimpleRNN, Keras 3 defaults).

    Args:
        units: positive int, size of h.
        activation: 'tanh' (default), 'sigmoid', 'hard_sigmoid', 'relu', 'linear' (None = linear).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer: as Keras
            (glorot_uniform, orthogonal, zeros); bias shape (units,).
        dropout, recurrent_dropout: fractions in [0, 1] (see layers/recurrent.py).
        return_sequences, return_state, go_backwards, stateful: as Keras.
        unroll: accepted for compatibility (no effect).
        seed: seeds this layer's dropout stream (else the library stream).
        kernel_/recurrent_/bias_/activity_regularizer, kernel_/recurrent_/bias_constraint:
            as Keras (fusedlstm.regularizers, fusedlstm.constraints).

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: [h0] (or h0), (batch, units).
        training: enables dropout.

    >>> layer = SimpleRNN(4)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    _gates = 1
    _cell_kind = "simple_rnn"

    def _bias_shape_and_init(self):
        return (self.units,), self.bias_initializer

    def _kernel_forward(self, x, W, states, mask, rec_mask, zero_output, want_grads):
        b = self.bias.value if self.use_bias else None
        y, hT, kc = _core.simple_rnn_forward(
            x, W, self.recurrent_kernel.value, b, states[0], mask=mask, rec_mask=rec_mask,
            go_backwards=self.go_backwards, zero_output_for_mask=zero_output, activation=self._act,
            return_sequences=self.return_sequences, training=want_grads,
            precision=self._precision, packed_U=self._packed_recurrent(want_grads, x.shape[0]))
        return y, [hT], kc

    def _kernel_backward(self, kc, dy, dstates, need_dx, outs, accumulate):
        dx, dh0, dW, dU, db = _core.simple_rnn_backward(
            kc, dy, dstates[0], need_dx=need_dx, dW_out=outs[0], dU_out=outs[1], db_out=outs[2],
            accumulate=accumulate)
        return dx, [dh0], dW
