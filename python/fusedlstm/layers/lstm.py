"""keras.layers.LSTM on the fused C++ kernel: the whole sequence is one lstm_forward call.

Keras splits the work between LSTMCell (weights, one step) and RNN (the time loop);
here the kernel owns the time loop, so the layer holds the weights and turns Keras's
arguments into one `_core.lstm_forward` / `_core.lstm_backward` pair:

* dropout (Keras 3, fused path): one (B, I) mask per call, reused at every step,
  multiplied onto the inputs before the kernel; recurrent_dropout: one (B, H) mask
  multiplied onto h_{t-1} before ·U, inside the kernel (`rec_mask`).
* masks: a masked step keeps h and c; its output repeats the previous output, or is
  zero when `zero_output_for_mask` (False for a plain LSTM, as in Keras 3;
  Bidirectional sets it to `return_sequences`).
* stateful: the final (h, c) of a call become the next call's initial state until
  reset_states(); the batch size is fixed at build.

`_run` is the shared core: it takes either dense inputs with the (I, 4H) kernel or
integer ids with a (V, 4H) lookup table, which is how Embedding -> LSTM and
RepeatVector -> LSTM are fused (see models/fusion.py).
"""

import numbers

import numpy as np

from .. import _core
from .. import activations as _acts
from .. import initializers as _inits
from .. import utils
from ..registry import register
from .base import Layer


def _kernel_activation(fn, arg):
    name = fn.__name__
    if name not in _acts.LSTM_KERNEL_NAMES:
        raise NotImplementedError(
            f"LSTM: `{arg}`={name!r} is not supported by the fused kernel; supported: "
            f"{list(_acts.LSTM_KERNEL_NAMES)}.")
    return name


def _rate(value, arg):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    # Keras clamps silently; a rate outside [0, 1] is a bug in the caller's script.
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    return float(value)


def dropout_mask(rng, shape, rate, dtype):
    """Inverted-dropout mask: 0 with probability `rate`, else 1/(1-rate) (keras.random.dropout)."""
    keep = rng.random(shape) >= rate
    return (keep / (1.0 - rate)).astype(dtype)


@register("layers")
class LSTM(Layer):
    """Long Short-Term Memory layer (keras.layers.LSTM, Keras 3 arguments and defaults).

    Args:
        units: positive int, size of h and c.
        activation, recurrent_activation: 'tanh', 'sigmoid', 'hard_sigmoid', 'relu',
            'linear' (None = linear).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        unit_forget_bias: as Keras (unit_forget_bias puts ones on the forget block).
        dropout, recurrent_dropout: fractions in [0, 1] (see module docstring).
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

    supports_masking = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto",
                 implementation=2, time_major=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError(
                "Received an invalid value for argument `units`, expected a positive integer, "
                f"got {units!r}.")
        self._weight_options(kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                             bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                             recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint)
        if time_major:
            raise NotImplementedError("LSTM: `time_major=True` is not supported; pass (batch, time, features).")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"Invalid value received for argument `use_cudnn`. Expected one of {{'auto', True, False}}. Received: use_cudnn={use_cudnn}")
        if implementation not in (1, 2):
            raise ValueError(f"Received an invalid value for argument `implementation`, expected 1 or 2, got {implementation!r}.")
        self.units = int(units)
        self.activation = _acts.get(activation)
        self.recurrent_activation = _acts.get(recurrent_activation, "recurrent_activation")
        self._act = _kernel_activation(self.activation, "activation")
        self._ract = _kernel_activation(self.recurrent_activation, "recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _inits.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _inits.get(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _inits.get(bias_initializer, "bias_initializer")
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self._rng = utils.seeded_generator(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.use_cudnn = use_cudnn
        self.implementation = implementation
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None
        self.kernel = self.recurrent_kernel = self.bias = None

    def _is_rnn(self):
        return True

    # --- build -------------------------------------------------------------------------

    def _check_input_shapes(self, shapes):
        s = shapes[0]
        if len(s) != 3:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected ndim=3 "
                f"(batch, timesteps, features), found ndim={len(s)}. Full shape received: {tuple(s)}")
        if self.built and s[2] is not None and s[2] != self.kernel.shape[0]:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"axis -1 of input shape to have value {self.kernel.shape[0]}, but received input "
                f"with shape {tuple(s)}")
        for k, st in enumerate(shapes[1:]):
            if len(st) != 2 or (st[1] is not None and st[1] != self.units):
                raise ValueError(
                    f"Layer '{self.name}': initial_state[{k}] must have shape (batch, {self.units}), "
                    f"got {tuple(st)}.")

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Layer '{self.name}': the last dimension of the inputs must be defined, got {tuple(input_shape)}.")
        H = self.units
        self.kernel = self.add_weight("kernel", (input_dim, 4 * H), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (H, 4 * H), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            if self.unit_forget_bias:
                bi = self.bias_initializer

                def init(shape, dtype):
                    return np.concatenate([bi((H,), dtype), np.ones((H,), dtype), bi((2 * H,), dtype)])
            else:
                init = self.bias_initializer
            self.bias = self.add_weight("bias", (4 * H,), init, regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        if self.stateful:
            batch = input_shape[0]
            if batch is None:
                raise ValueError(
                    "When using `stateful=True` in a RNN, the batch size must be static. Found "
                    f"dynamic batch size: sequence.shape={tuple(input_shape)}. Pass "
                    "`batch_input_shape=` / `batch_size=` to the first layer or `Input`.")
            self._state_batch = int(batch)
            self.reset_states()
        self.built = True

    def _call_eager(self, flat, training, mask):
        # A stateful layer called on arrays builds with the batch it sees.
        if self.stateful and not self.built:
            a = np.asarray(flat[0])
            self._check_input_shapes([a.shape])
            self._build_from_shapes([a.shape])
        return super()._call_eager(flat, training, mask)

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        return (B, T, self.units) if self.return_sequences else (B, self.units)

    def _output_shapes(self, shapes):
        out = [self.compute_output_shape(shapes[0])]
        if self.return_state:
            out += [(shapes[0][0], self.units)] * 2
        return out

    def _n_outputs(self):
        return 3 if self.return_state else 1

    def _flatten_call(self, inputs, initial_state):
        if isinstance(inputs, (list, tuple)):
            raise NotImplementedError(
                "LSTM: pass the initial state as `initial_state=[h, c]`, not inside the inputs list.")
        if initial_state is None:
            return [inputs], 0
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
            raise ValueError(
                f"Layer '{self.name}' expects initial_state=[h, c] (2 tensors), got "
                f"{len(initial_state) if isinstance(initial_state, (list, tuple)) else initial_state!r}.")
        return [inputs, initial_state[0], initial_state[1]], 2

    # --- states --------------------------------------------------------------------------

    def reset_states(self, states=None):
        """Zero the carried state of a stateful layer (or set it to `states` = [h, c])."""
        if not self.stateful:
            if states is not None:
                raise AttributeError(f"Layer '{self.name}' must be stateful to set its states.")
            return
        if getattr(self, "_state_batch", None) is None:
            return
        B, H = self._state_batch, self.units
        if states is None:
            self.states = [np.zeros((B, H), self.dtype), np.zeros((B, H), self.dtype)]
            return
        if len(states) != 2:
            raise ValueError(f"Layer '{self.name}' expects 2 states [h, c], got {len(states)}.")
        new = []
        for k, s in enumerate(states):
            a = np.asarray(s, dtype=self.dtype)
            if a.shape != (B, H):
                raise ValueError(f"Layer '{self.name}' state {k}: expected shape {(B, H)}, got {a.shape}.")
            new.append(a.copy())
        self.states = new

    reset_state = reset_states

    # --- engine ----------------------------------------------------------------------------

    def _initial_state(self, inputs, B):
        if len(inputs) == 3:
            h0 = np.ascontiguousarray(inputs[1], dtype=self.dtype)
            c0 = np.ascontiguousarray(inputs[2], dtype=self.dtype)
            if h0.shape != (B, self.units) or c0.shape != (B, self.units):
                raise ValueError(
                    f"Layer '{self.name}': initial_state must be two ({B}, {self.units}) arrays, "
                    f"got {h0.shape} and {c0.shape}.")
            return h0, c0
        if self.stateful:
            if B != self._state_batch:
                raise ValueError(
                    f"Layer '{self.name}' is stateful with batch size {self._state_batch} (fixed at "
                    f"build), but it received a batch of {B} samples. Feed batches of exactly "
                    f"{self._state_batch} (fit/predict batch_size={self._state_batch}, and a sample "
                    "count divisible by it).")
            return self.states
        z = np.zeros((B, self.units), self.dtype)
        return z, z

    def _run(self, x, W, inputs, mask, training, ctx, zero_output=None):
        """One kernel call: x dense (B,T,I) with W the kernel, or ids (B,T) with W a table."""
        B = x.shape[0]
        h0, c0 = self._initial_state(inputs, B)
        dp = None
        if training and 0.0 < self.dropout < 1.0 and x.ndim == 3:
            dp = dropout_mask(ctx.generator(self._rng), (B, x.shape[2]), self.dropout, self.dtype)
            x = x * dp[:, None, :]
        rm = None
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rm = dropout_mask(ctx.generator(self._rng), (B, self.units), self.recurrent_dropout, self.dtype)
        b = self.bias.value if self.use_bias else None
        zo = self.zero_output_for_mask if zero_output is None else zero_output
        y, hT, cT, kc = _core.lstm_forward(
            x, W, self.recurrent_kernel.value, b, h0, c0, mask=mask, rec_mask=rm,
            go_backwards=self.go_backwards, zero_output_for_mask=zo,
            activation=self._act, recurrent_activation=self._ract,
            return_sequences=self.return_sequences, training=ctx.want_grads)
        if self.stateful:
            self.states = [hT, cT]
        outs = [y, hT, cT] if self.return_state else [y]
        out_mask = mask if self.return_sequences else None
        masks = [out_mask, None, None] if self.return_state else [out_mask]
        return outs, masks, (kc, dp, len(inputs) == 3)

    def _run_backward(self, cache, douts, need_dx, ctx, kernel_grad=False):
        """Backward of _run: returns (dx, dh0, dc0, dW) and records dU, db; with
        kernel_grad, dW is this layer's kernel gradient and is recorded too (None
        is returned for it). The kernel writes the gradients straight into the
        optimizer's flat buffer."""
        kc, dp, has_state = cache
        dy = douts[0]
        dh = douts[1] if self.return_state else None
        dc = douts[2] if self.return_state else None
        weights = (self.kernel if kernel_grad else None, self.recurrent_kernel, self.bias)
        outs = [ctx.grad_out(v) if v is not None else (None, False) for v in weights]
        # One accumulate flag serves the three: when some buffers already hold a sum
        # from this step, the others are zeroed and everything is added.
        acc = any(a for o, a in outs if o is not None)
        if acc:
            for o, a in outs:
                if o is not None and not a:
                    o.fill(0)
        dx, dh0, dc0, dW, dU, db = _core.lstm_backward(
            kc, dy, dh, dc, need_dx=need_dx, dW_out=outs[0][0], dU_out=outs[1][0], db_out=outs[2][0],
            accumulate=acc)
        if dx is not None and dp is not None:
            dx *= dp[:, None, :]
        return dx, dh0, dc0, (None if kernel_grad else dW)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        if x.ndim != 3:
            raise ValueError(f"Layer '{self.name}' expects 3-D input (batch, timesteps, features), got shape {x.shape}.")
        return self._run(x, self.kernel.value, inputs, masks[0], training, ctx)

    def _bwd(self, cache, douts, need, ctx):
        dx, dh0, dc0, _ = self._run_backward(cache, douts, bool(need[0]), ctx, kernel_grad=True)
        if cache[2]:
            return [dx, dh0, dc0]
        return [dx]

    # --- config ----------------------------------------------------------------------------

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": _acts.serialize(self.activation),
            "recurrent_activation": _acts.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _inits.serialize(self.kernel_initializer),
            "recurrent_initializer": _inits.serialize(self.recurrent_initializer),
            "bias_initializer": _inits.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        })
        return cfg
