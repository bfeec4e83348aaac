"""keras.layers.RNN(cell) on the fused kernels: one kernel call per sequence, no Python time loop.

`RNN(LSTMCell(8))` is an `RNN` whose class also derives from the fused layer of the
cell's kind (LSTM, GRU or SimpleRNN), so it runs exactly what LSTM(8) runs — masks,
dropout, go_backwards, stateful, initial_state, the Embedding fusion, Bidirectional —
while it reads and writes Keras's form: class name "RNN", config {"cell": ...,
return_sequences, ...}, and the cell's variables as its weights (Keras's
`layers/rnn/cell/vars/...`). Any other cell (a custom class, StackedRNNCells, a list of
cells) would need a Python loop over time steps, which fusedlstm does not run: it is
refused with NotImplementedError.
"""

from ..registry import register
from .base import Layer
from .gru import GRU
from .lstm import LSTM
from .recurrent import FusedRecurrent
from .rnn_cells import FusedCell, GRUCell, LSTMCell, SimpleRNNCell
from .serialization import deserialize
from .simple_rnn import SimpleRNN

__all__ = ["RNN"]


def _check_cell(cell):
    if isinstance(cell, (list, tuple)):
        raise NotImplementedError(
            "RNN: a list of cells (keras.layers.StackedRNNCells) is not supported by fusedlstm; stack RNN layers "
            "instead, each but the last with return_sequences=True (e.g. RNN(LSTMCell(a), return_sequences=True), "
            "RNN(LSTMCell(b))).")
    if isinstance(cell, FusedCell):
        return type(cell)
    if isinstance(cell, Layer) or (hasattr(cell, "call") and hasattr(cell, "state_size")):
        raise NotImplementedError(
            f"RNN: the cell {type(cell).__name__} is not supported; fusedlstm runs LSTMCell, GRUCell and "
            "SimpleRNNCell on its fused kernels and never steps a custom cell in a Python time loop.")
    raise ValueError(
        "Received an invalid value for argument `cell`, expected an LSTMCell, GRUCell or SimpleRNNCell "
        f"instance, got {cell!r}.")


@register("layers")
class RNN(FusedRecurrent):
    """Base class for recurrent layers (keras.layers.RNN, Keras 3 arguments and defaults).

    Args:
        cell: an LSTMCell, GRUCell or SimpleRNNCell (its arguments and weights are used).
        return_sequences, return_state, go_backwards, stateful, zero_output_for_mask: as Keras.
        unroll: accepted for compatibility (the kernel never unrolls; no effect).

    Call arguments: as LSTM/GRU/SimpleRNN (inputs, initial_state, mask, training).

    >>> layer = RNN(GRUCell(4), return_sequences=True)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    def __new__(cls, cell=None, *args, **kwargs):
        if cls is RNN:
            cls = _BY_CELL[_check_cell(cell)]
        elif cls not in _BY_CELL.values():
            raise NotImplementedError(
                f"{cls.__name__}: subclasses of RNN are not supported; fusedlstm's RNN runs its cell's fused kernel "
                "and never calls Python code per time step. Use RNN(LSTMCell/GRUCell/SimpleRNNCell(...)) or "
                "LSTM/GRU/SimpleRNN.")
        return super().__new__(cls)

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if _BY_CELL[_check_cell(cell)] is not type(self):
            raise ValueError(f"{type(self).__name__}: cell {type(cell).__name__} does not fit this layer.")
        self.cell = cell
        super().__init__(**cell._args, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, **kwargs)

    @property
    def state_size(self):
        return self.cell.state_size

    def _make_weights(self, input_dim):
        # The cell's variables are this layer's weights (built now unless the cell already was).
        self.cell.build((None, input_dim))
        engine = self.cell._engine
        self.kernel, self.recurrent_kernel, self.bias = engine.kernel, engine.recurrent_kernel, engine.bias
        self._variables = engine._variables
        for v in self._variables:
            v.path = f"{self.name}/{self.cell.name}/{v.name}"  # Keras's path: rnn/lstm_cell/kernel

    def get_config(self):
        cfg = Layer.get_config(self)
        for arg in self._option_args:  # the cell's regularizers/constraints are in the cell's config
            cfg.pop(arg, None)
        cfg.update({"cell": {"class_name": type(self.cell).__name__, "config": self.cell.get_config()},
                    "return_sequences": self.return_sequences, "return_state": self.return_state,
                    "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                    "zero_output_for_mask": self.zero_output_for_mask})
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        cell = config.pop("cell", None)
        if isinstance(cell, dict):
            cell = deserialize(cell)
        return cls(cell, **config)


def _kind(base, cell_cls):
    # Named "RNN" so summaries, default names ("rnn") and saved configs say RNN; the registry
    # resolves "RNN" to the base class, whose __new__ picks the kind again from the cell.
    return type("RNN", (RNN, base), {"__module__": __name__, "__qualname__": f"RNN[{cell_cls.__name__}]",
                                     "__doc__": RNN.__doc__})


_BY_CELL = {LSTMCell: _kind(LSTM, LSTMCell), GRUCell: _kind(GRU, GRUCell), SimpleRNNCell: _kind(SimpleRNN, SimpleRNNCell)}
