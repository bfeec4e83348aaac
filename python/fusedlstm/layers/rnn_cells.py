"""keras.layers.LSTMCell, GRUCell and SimpleRNNCell: Keras's cell objects on the fused kernels.

In Keras a cell owns the weights and computes one step, and `keras.layers.RNN` runs
it over time. Here the time loop lives in the C++ kernel, so a cell is a thin holder
of its arguments around a private fused layer of its kind (`_engine`, an LSTM, GRU or
SimpleRNN with return_state=True) that owns the variables:

* `cell(x_t, states)` runs that kernel on a one-step sequence from the given states
  (the same arithmetic as Keras's cell step);
* `RNN(cell)` (layers/rnn.py) becomes a fused layer of the cell's kind whose weights
  are these very variables, so one kernel call covers the whole sequence.
"""

import numpy as np

from ..registry import register
from .base import KerasTensor, Layer
from .gru import GRU
from .lstm import LSTM
from .simple_rnn import SimpleRNN

__all__ = ["FusedCell", "LSTMCell", "GRUCell", "SimpleRNNCell"]

# Keys of a fused layer's config that belong to RNN, not to its cell.
_RNN_KEYS = ("name", "trainable", "dtype", "batch_input_shape", "activity_regularizer", "return_sequences",
             "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")


class FusedCell(Layer):
    """Base of the three cells (not registered, not for direct use).

    Subclasses set `_layer_cls` (the fused layer of their kind) and pass their Keras
    arguments, as given, to `_init_cell`.
    """

    _layer_cls = None

    def _init_cell(self, args, kwargs):
        super().__init__(**kwargs)
        self._args = dict(args)  # constructor arguments as given: RNN(cell) builds its layer from them
        # The engine validates every argument (units, activations, rates) with the fused layers' messages.
        self._engine = self._layer_cls(**self._args, return_state=True, name=self.name, dtype=self.dtype_policy)
        self._variables = self._engine._variables  # one list: the cell's weights are the engine's

    def __getattr__(self, name):
        # Keras's cell attributes (units, activation, dropout, reset_after, ...) are the engine's.
        if name.startswith("_") or name == "cell":
            raise AttributeError(name)
        engine = self.__dict__.get("_engine")
        if engine is None or name not in self.__dict__.get("_args", {}):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")
        return getattr(engine, name)

    @property
    def kernel(self):
        return self._engine.kernel

    @property
    def recurrent_kernel(self):
        return self._engine.recurrent_kernel

    @property
    def bias(self):
        return self._engine.bias

    @property
    def state_size(self):
        units = self._engine.units
        return [units] * self._engine._n_states if self._engine._n_states > 1 else units

    @property
    def output_size(self):
        return self._engine.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if self._engine.built:
            if input_dim is not None and input_dim != self.kernel.shape[0]:
                raise ValueError(f"Cell '{self.name}' was built for {self.kernel.shape[0]} input features, got "
                                 f"input shape {tuple(input_shape)}.")
        else:
            self._engine.build((None, None, input_dim))
        self.built = True

    def reset_dropout_mask(self):
        """Keras's DropoutRNNCell method; a no-op here (masks are drawn per call, see __call__)."""

    reset_recurrent_dropout_mask = reset_dropout_mask

    def get_initial_state(self, batch_size=None):
        """Zero states, one (batch_size, units) array per state (Keras's cell.get_initial_state)."""
        units = self._engine.units
        return [np.zeros((batch_size, units), self.dtype) for _ in range(self._engine._n_states)]

    def __call__(self, inputs, states=None, training=False):
        """One step: (output, new_states) as Keras's cell returns them.

        inputs: (batch, features); states: a list of (batch, units) arrays ([h, c] for an
        LSTMCell; [h] or h for the others; None = zeros). With training=True, dropout
        draws fresh masks on every call (Keras keeps one per cell until reset).
        """
        if isinstance(inputs, KerasTensor) or any(isinstance(s, KerasTensor) for s in
                                                  (states if isinstance(states, (list, tuple)) else [states])):
            raise NotImplementedError(
                f"{type(self).__name__}: calling a cell on symbolic tensors is not supported; wrap it in "
                f"keras.layers.RNN({type(self).__name__}(...)) to run it over a sequence.")
        x = np.asarray(inputs)
        if x.ndim != 2:
            raise ValueError(f"Cell '{self.name}' expects inputs of shape (batch, features), got shape {x.shape}.")
        single = states is not None and not isinstance(states, (list, tuple))
        if states is None:
            states = self.get_initial_state(x.shape[0])
        elif single:
            states = [states]
        n = self._engine._n_states
        if len(states) != n:
            raise ValueError(f"Cell '{self.name}' expects {n} state{'s' if n > 1 else ''} "
                             f"{self._engine._state_list_name()}, got {len(states)}.")
        if not self.built:
            self.build(x.shape)
        outs = self._engine(x[:, None, :], initial_state=list(states), training=bool(training))
        h, new_states = outs[0], list(outs[1:])
        return h, (new_states[0] if single and n == 1 else new_states)

    def get_config(self):
        cfg = super().get_config()
        inner = self._engine.get_config()
        cfg.update({k: v for k, v in inner.items() if k not in _RNN_KEYS})
        return cfg


def _args(local):
    return {k: v for k, v in local.items() if k not in ("self", "kwargs", "__class__")}


@register("layers")
class LSTMCell(FusedCell):
    """One LSTM step (keras.layers.LSTMCell, Keras 3 arguments and defaults); see layers/lstm.py.

    >>> cell = LSTMCell(4)
    >>> h, (h2, c) = cell(np.zeros((2, 5), "float32"), [np.zeros((2, 4), "float32")] * 2)
    """

    _layer_cls = LSTM

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        self._init_cell(_args(locals()), kwargs)


@register("layers")
class GRUCell(FusedCell):
    """One GRU step (keras.layers.GRUCell, Keras 3 arguments and defaults); see layers/gru.py."""

    _layer_cls = GRU

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 reset_after=True, seed=None, **kwargs):
        self._init_cell(_args(locals()), kwargs)


@register("layers")
class SimpleRNNCell(FusedCell):
    """One SimpleRNN step (keras.layers.SimpleRNNCell, Keras 3 arguments and defaults)."""

    _layer_cls = SimpleRNN

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        self._init_cell(_args(locals()), kwargs)
