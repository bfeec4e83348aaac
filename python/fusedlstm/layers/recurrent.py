"""What LSTM, GRU and SimpleRNN share: one fused C++ kernel call per sequence.

Keras splits the work between a cell (weights, one step) and RNN (the time loop);
here the kernel owns the time loop, so the layer holds the weights and turns Keras's
arguments into one `_core.<cell>_forward` / `_core.<cell>_backward` pair. A subclass
says which kernel pair, how many states it carries (LSTM: h and c; GRU, SimpleRNN:
h), its gate count and its bias; everything else is here:

* dropout (Keras 3, fused path): one (B, I) mask per call, reused at every step,
  multiplied onto the inputs before the kernel; recurrent_dropout: one (B, H) mask
  multiplied onto h_{t-1} before ·U, inside the kernel (`rec_mask`). With
  recurrent_dropout Keras 3 draws one mask per gate instead (its implementation 1):
  the same expected value, not the same distribution.
* masks: a masked step keeps the states; its output repeats the previous output, or
  is zero when `zero_output_for_mask` (False for a plain layer, as in Keras 3;
  Bidirectional sets it to `return_sequences`).
* stateful: the final states of a call become the next call's initial states until
  reset_states(); the batch size is fixed at build.

* inference: the recurrent kernel U is packed for the kernels' products once and kept
  (`_packed_recurrent`) until any weight is written (variables.write_version), so a
  predict or streaming call does not repack it; training calls pack per call (U
  changes every step).

`_run` is the shared core: it takes either dense inputs with the (I, gH) kernel or
integer ids with a (V, gH) lookup table, which is how Embedding -> RNN and
RepeatVector -> RNN are fused (see models/fusion.py).
"""

import numbers

import numpy as np

from .. import activations as _acts
from .. import initializers as _inits
from .. import _core
from .. import utils
from ..variables import write_version
from .base import Layer


def dropout_mask(rng, shape, rate, dtype):
    """Inverted-dropout mask: 0 with probability `rate`, else 1/(1-rate) (keras.random.dropout)."""
    keep = rng.random(shape) >= rate
    return (keep / (1.0 - rate)).astype(dtype)


def _rate(value, arg):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    # Keras clamps silently; a rate outside [0, 1] is a bug in the caller's script.
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Received an invalid value for argument `{arg}`, expected a float in [0, 1], got {value!r}.")
    return float(value)


class FusedRecurrent(Layer):
    """Base of the recurrent layers on the fused kernels (not registered, not for direct use).

    Subclasses set `_state_names`, `_gates`, and implement `_kernel_forward`,
    `_kernel_backward` and `_bias_shape_and_init`.
    """

    supports_masking = True
    _state_names = ("h",)
    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError(
                "Received an invalid value for argument `units`, expected a positive integer, "
                f"got {units!r}.")
        self._weight_options(kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                             bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                             recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint)
        self.units = int(units)
        self.activation = _acts.get(activation)
        self._act = self._kernel_activation(self.activation, "activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _inits.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _inits.get(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _inits.get(bias_initializer, "bias_initializer")
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self._rng = utils.seeded_generator(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None
        self.kernel = self.recurrent_kernel = self.bias = None
        self._packed = None  # (write_version, U array, PackedRecurrentKernel) of the last inference call

    def _kernel_activation(self, fn, arg):
        name = fn.__name__
        if name not in _acts.LSTM_KERNEL_NAMES:
            raise NotImplementedError(
                f"{type(self).__name__}: `{arg}`={name!r} is not supported by the fused kernel; supported: "
                f"{list(_acts.LSTM_KERNEL_NAMES)}.")
        return name

    def _is_rnn(self):
        return True

    @property
    def _n_states(self):
        return len(self._state_names)

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

    def _bias_shape_and_init(self):
        """(shape, initializer) of the bias weight."""
        raise NotImplementedError

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Layer '{self.name}': the last dimension of the inputs must be defined, got {tuple(input_shape)}.")
        self._make_weights(input_dim)
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

    def _make_weights(self, input_dim):
        """kernel (I, gH), recurrent_kernel (H, gH) and bias (RNN(cell) takes its cell's instead)."""
        G = self._gates * self.units
        self.kernel = self.add_weight("kernel", (input_dim, G), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, G), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            shape, init = self._bias_shape_and_init()
            self.bias = self.add_weight("bias", shape, init, regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

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
            out += [(shapes[0][0], self.units)] * self._n_states
        return out

    def _n_outputs(self):
        return 1 + self._n_states if self.return_state else 1

    def _state_list_name(self):
        return "[" + ", ".join(self._state_names) + "]"

    def _flatten_call(self, inputs, initial_state):
        cls, n = type(self).__name__, self._n_states
        if isinstance(inputs, (list, tuple)):
            raise NotImplementedError(
                f"{cls}: pass the initial state as `initial_state={self._state_list_name()}`, not inside the "
                "inputs list.")
        if initial_state is None:
            return [inputs], 0
        if n == 1 and not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]  # Keras takes a single tensor for a one-state layer
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n:
            raise ValueError(
                f"Layer '{self.name}' expects initial_state={self._state_list_name()} ({n} tensor"
                f"{'s' if n > 1 else ''}), got "
                f"{len(initial_state) if isinstance(initial_state, (list, tuple)) else initial_state!r}.")
        return [inputs] + list(initial_state), n

    # --- states --------------------------------------------------------------------------

    def reset_states(self, states=None):
        """Zero the carried states of a stateful layer (or set them to `states`)."""
        if not self.stateful:
            if states is not None:
                raise AttributeError(f"Layer '{self.name}' must be stateful to set its states.")
            return
        if getattr(self, "_state_batch", None) is None:
            return
        B, H, n = self._state_batch, self.units, self._n_states
        if states is None:
            self.states = [np.zeros((B, H), self.dtype) for _ in range(n)]
            return
        if n == 1 and not isinstance(states, (list, tuple)):
            states = [states]
        if len(states) != n:
            raise ValueError(f"Layer '{self.name}' expects {n} state{'s' if n > 1 else ''} "
                             f"{self._state_list_name()}, got {len(states)}.")
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
        n = self._n_states
        if len(inputs) == 1 + n:
            states = [np.ascontiguousarray(s, dtype=self.dtype) for s in inputs[1:]]
            if any(s.shape != (B, self.units) for s in states):
                raise ValueError(
                    f"Layer '{self.name}': initial_state must be {n} ({B}, {self.units}) array"
                    f"{'s' if n > 1 else ''}, got {' and '.join(str(s.shape) for s in states)}.")
            return states
        if self.stateful:
            if B != self._state_batch:
                raise ValueError(
                    f"Layer '{self.name}' is stateful with batch size {self._state_batch} (fixed at "
                    f"build), but it received a batch of {B} samples. Feed batches of exactly "
                    f"{self._state_batch} (fit/predict batch_size={self._state_batch}, and a sample "
                    "count divisible by it).")
            return self.states
        z = np.zeros((B, self.units), self.dtype)
        return [z] * n

    # The kernel's name for the cell (pack_recurrent_kernel's `cell`), and whether its
    # products use U whole (GRU reset_after=False splits it).
    _cell_kind = None

    def _packed_recurrent(self, want_grads, batch):
        """U packed for the forward kernel, or None (training: U changes every step).

        Kept until any weight is written (every write path bumps write_version and
        `.value` itself is read-only), `recurrent_kernel.value` is another array or the
        compute precision changes. Packed for the first call's batch: a call whose batch
        makes the kernel choose another bfloat16 level packs its own (float32: never)."""
        if want_grads or self._cell_kind is None:
            return None
        U = self.recurrent_kernel.value
        c = self._packed
        if c is not None and c[0] == write_version() and c[1] is U and c[2] == self._precision:
            return c[3]
        packed = _core.pack_recurrent_kernel(U, self._cell_kind, reset_after=getattr(self, "reset_after", True),
                                             precision=self._precision, batch=batch)
        self._packed = (write_version(), U, self._precision, packed)
        return packed

    def _kernel_forward(self, x, W, states, mask, rec_mask, zero_output, want_grads):
        """One kernel call: (y, [final states], cache or None)."""
        raise NotImplementedError

    def _kernel_backward(self, kc, dy, dstates, need_dx, outs, accumulate):
        """Backward of _kernel_forward: (dx, [d initial states], dW); outs = (dW, dU, db) out= buffers."""
        raise NotImplementedError

    def _run(self, x, W, inputs, mask, training, ctx, zero_output=None):
        """One kernel call: x dense (B,T,I) with W the kernel, or ids (B,T) with W a table."""
        B = x.shape[0]
        states = self._initial_state(inputs, B)
        dp = None
        if training and 0.0 < self.dropout < 1.0 and x.ndim == 3:
            dp = dropout_mask(ctx.generator(self._rng), (B, x.shape[2]), self.dropout, self.dtype)
            x = x * dp[:, None, :]
        rm = None
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rm = dropout_mask(ctx.generator(self._rng), (B, self.units), self.recurrent_dropout, self.dtype)
        zo = self.zero_output_for_mask if zero_output is None else zero_output
        y, final, kc = self._kernel_forward(x, W, states, mask, rm, zo, ctx.want_grads)
        if self.stateful:
            self.states = list(final)
        outs = [y] + list(final) if self.return_state else [y]
        out_mask = mask if self.return_sequences else None
        masks = [out_mask] + [None] * (len(outs) - 1)
        return outs, masks, (kc, dp, len(inputs) > 1)

    def _run_backward(self, cache, douts, need_dx, ctx, kernel_grad=False):
        """Backward of _run: returns (dx, [d initial states], dW) and records dU, db; with
        kernel_grad, dW is this layer's kernel gradient and is recorded too (None is
        returned for it). The kernel writes the gradients straight into the optimizer's
        flat buffer."""
        kc, dp, _ = cache
        dy = douts[0]
        n = self._n_states
        dstates = list(douts[1:1 + n]) if self.return_state else [None] * n
        weights = (self.kernel if kernel_grad else None, self.recurrent_kernel, self.bias)
        outs = [ctx.grad_out(v) if v is not None else (None, False) for v in weights]
        # One accumulate flag serves the three: when some buffers already hold a sum
        # from this step, the others are zeroed and everything is added.
        acc = any(a for o, a in outs if o is not None)
        if acc:
            for o, a in outs:
                if o is not None and not a:
                    o.fill(0)
        dx, dinit, dW = self._kernel_backward(kc, dy, dstates, need_dx, [o for o, _ in outs], acc)
        if dx is not None and dp is not None:
            dx *= dp[:, None, :]
        return dx, dinit, (None if kernel_grad else dW)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        if x.ndim != 3:
            raise ValueError(f"Layer '{self.name}' expects 3-D input (batch, timesteps, features), got shape {x.shape}.")
        return self._run(x, self.kernel.value, inputs, masks[0], training, ctx)

    def _bwd(self, cache, douts, need, ctx):
        dx, dinit, _ = self._run_backward(cache, douts, bool(need[0]), ctx, kernel_grad=True)
        if cache[2]:
            return [dx] + list(dinit)
        return [dx]

    # --- config ----------------------------------------------------------------------------

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": _acts.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _inits.serialize(self.kernel_initializer),
            "recurrent_initializer": _inits.serialize(self.recurrent_initializer),
            "bias_initializer": _inits.serialize(self.bias_initializer),
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
