"""keras.layers.GRU on the fused C++ kernel: the whole sequence is one gru_forward call.

Keras 3 GRU: gate order z, r, h along 3H in kernel (I, 3H), recurrent_kernel (H, 3H)
and bias; reset_after=True (the default) applies the reset gate after ·U and keeps
two biases, shape (2, 3H) (row 0 the input bias, row 1 the recurrent bias);
reset_after=False has one (3H,) bias. What the recurrent layers share is in
layers/recurrent.py.
"""

from .. import _core
from .. import activations as _acts
from ..registry import register
from .recurrent import FusedRecurrent


@register("layers")
class GRU(FusedRecurrent):
    """Gated Recurrent Unit (keras.layers.GRU, Keras 3 arguments and defaults).

    Args:
        units: positive int, size of h.
        activation, recurrent_activation: 'tanh', 'sigmoid', 'hard_sigmoid', 'relu',
            'linear' (None = linear).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer: as Keras
            (glorot_uniform, orthogonal, zeros).
        reset_after: True (Keras 3 and cuDNN's form, bias (2, 3*units)) or False (bias
            (3*units,)).
        dropout, recurrent_dropout: fractions in [0, 1] (see layers/recurrent.py).
        return_sequences, return_state, go_backwards, stateful: as Keras.
        unroll, use_cudnn, implementation: accepted for compatibility (no effect).
        seed: seeds this layer's dropout stream (else the library stream).
        kernel_/recurrent_/bias_/activity_regularizer, kernel_/recurrent_/bias_constraint:
            as Keras (fusedlstm.regularizers, fusedlstm.constraints).

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: [h0] (or h0), (batch, units).
        training: enables dropout.

    >>> layer = GRU(4)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    _gates = 3
    _cell_kind = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", reset_after=True, use_cudnn="auto", implementation=2, time_major=False, **kwargs):
        if time_major:
            raise NotImplementedError("GRU: `time_major=True` is not supported; pass (batch, time, features).")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"Invalid value received for argument `use_cudnn`. Expected one of {{'auto', True, False}}. Received: use_cudnn={use_cudnn}")
        if implementation not in (1, 2):
            raise ValueError(f"Received an invalid value for argument `implementation`, expected 1 or 2, got {implementation!r}.")
        if not isinstance(reset_after, bool):
            raise TypeError(f"Received an invalid value for argument `reset_after`, expected True or False, got {reset_after!r}.")
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self.recurrent_activation = _acts.get(recurrent_activation, "recurrent_activation")
        self._ract = self._kernel_activation(self.recurrent_activation, "recurrent_activation")
        self.reset_after = reset_after
        self.use_cudnn = use_cudnn
        self.implementation = implementation

    def _bias_shape_and_init(self):
        G = 3 * self.units
        return ((2, G) if self.reset_after else (G,)), self.bias_initializer

    def _kernel_forward(self, x, W, states, mask, rec_mask, zero_output, want_grads):
        b = self.bias.value if self.use_bias else None
        y, hT, kc = _core.gru_forward(
            x, W, self.recurrent_kernel.value, b, states[0], mask=mask, rec_mask=rec_mask,
            go_backwards=self.go_backwards, zero_output_for_mask=zero_output,
            activation=self._act, recurrent_activation=self._ract, reset_after=self.reset_after,
            return_sequences=self.return_sequences, training=want_grads,
            precision=self._precision, packed_U=self._packed_recurrent(want_grads, x.shape[0]))
        return y, [hT], kc

    def _kernel_backward(self, kc, dy, dstates, need_dx, outs, accumulate):
        dx, dh0, dW, dU, db = _core.gru_backward(
            kc, dy, dstates[0], need_dx=need_dx, dW_out=outs[0], dU_out=outs[1], db_out=outs[2],
            accumulate=accumulate)
        return dx, [dh0], dW

    def get_config(self):
        cfg = super().get_config()
        cfg.update(recurrent_activation=_acts.serialize(self.recurrent_activation), reset_after=self.reset_after)
        return cfg
