"""keras.Sequential: a stack of single-input, single-output layers.

As in Keras 3, a Sequential model is a functional model built over its layer
list once the input shape is known: from an Input/InputLayer, from the first
layer's `input_shape=` / `batch_input_shape=` (Keras 2), from build(), or from the
first data it sees (fit/predict/__call__). compile() before that is allowed and
completes when the graph exists.

Its description (get_config) is the layer list with the input's batch shape and
dtype; from_config rebuilds it.
"""

import numpy as np

from ..layers.base import KerasTensor, Layer, unique_name
from ..layers.core import Input, InputLayer
from ..layers.serialization import deserialize_named, serialize
from ..registry import register
from .functional import Functional
from .training import Trainer


@register("models")
class Sequential(Functional):
    """Linear stack of layers.

    >>> from fusedlstm.layers import LSTM, Dense
    >>> m = Sequential([LSTM(4, input_shape=(5, 3)), Dense(2)])
    >>> m.output_shape
    (None, 2)
    """

    _is_stack = True

    def __init__(self, layers=None, trainable=True, name=None, **kwargs):
        Layer.__init__(self, name=name or unique_name("sequential"), trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self._seq = []
        self._input_layer = None
        self.built = False
        self._plan = None
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"Sequential expects a list of layers, got {type(layers).__name__}.")
            for layer in layers:
                self.add(layer, rebuild=False)
        self._maybe_rebuild()

    # --- layer list -------------------------------------------------------------------------

    def add(self, layer, rebuild=True):
        """Append a layer (or an Input tensor / InputLayer as the first entry)."""
        if isinstance(layer, KerasTensor):
            src = layer._keras_history[0] if layer._keras_history else None
            if not isinstance(src, InputLayer):
                raise ValueError("Only Input() tensors can be added to a Sequential model; got a layer output.")
            layer = src
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._seq:
                raise ValueError(
                    f"Sequential model '{self.name}' has already been configured to use input shape "
                    f"{self._input_shape_known()}. You cannot add a different Input layer to it.")
            self._input_layer = layer
        elif isinstance(layer, Layer):
            if any(layer is l for l in self._seq):
                raise ValueError(f"Layer '{layer.name}' was already added to this Sequential model.")
            names = {l.name for l in self._seq}
            if layer.name in names:
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in this model.")
            self._seq.append(layer)
        else:
            raise TypeError(
                "Only instances of `keras.Layer` can be added to a Sequential model. Received: "
                f"{layer!r} (of type {type(layer)})")
        if rebuild:
            self._maybe_rebuild()

    def pop(self):
        if not self._seq:
            raise TypeError("There are no layers in the model.")
        layer = self._seq.pop()
        self.built = False
        self._plan = None
        self._maybe_rebuild()
        return layer

    def _input_shape_known(self):
        if self._input_layer is not None:
            return self._input_layer.batch_shape
        if self._seq and self._seq[0]._batch_input_shape is not None:
            return self._seq[0]._batch_input_shape
        return None

    def _maybe_rebuild(self):
        shape = self._input_shape_known()
        if shape is not None and self._seq:
            self._build_graph(shape)

    def _build_graph(self, batch_shape):
        if self._input_layer is not None:
            inp = self._input_layer.output
        else:
            first = self._seq[0]
            dtype = "int32" if getattr(first, "_takes_ids", False) else first.dtype
            inp = Input(batch_shape=batch_shape, dtype=dtype)
            self._input_layer = inp._keras_history[0]
        x = inp
        for layer in self._seq:
            x = layer(x)
            if isinstance(x, list):
                raise ValueError(
                    "All layers in a Sequential model should have a single output tensor. For "
                    f"multi-output layers (such as '{layer.name}' with return_state=True), use the "
                    "functional API.")
        self._init_graph(inp, x)
        if self.compiled and self._compile_args is not None:
            self._finish_compile()

    def build(self, input_shape=None):
        if input_shape is None:
            if self.built:
                return
            raise ValueError("You must provide an `input_shape` argument.")
        if not self._seq:
            raise ValueError(f"Sequential model '{self.name}' cannot be built because it has no layers.")
        self._build_graph(tuple(input_shape))

    def _graph_ready(self):
        return self.built

    def _maybe_build_from_data(self, x):
        if self.built:
            return
        if not self._seq:
            raise ValueError(f"Sequential model '{self.name}' has no layers.")
        a = x[0] if isinstance(x, (list, tuple)) and len(x) and isinstance(x[0], np.ndarray) else x
        if not hasattr(a, "shape"):
            a = np.asarray(a) if isinstance(a, (list, tuple)) else None
        if a is None or not hasattr(a, "shape"):
            raise ValueError(
                f"Sequential model '{self.name}' is not built and its input shape cannot be inferred "
                "from a generator; add an Input layer or pass input_shape= to the first layer.")
        self._build_graph((None,) + tuple(a.shape[1:]))

    @property
    def layers(self):
        return list(self._seq)

    @property
    def weights(self):
        if not self.built:
            return []
        return super().weights

    @property
    def trainable_weights(self):
        if not self.built:
            return []
        return super().trainable_weights

    def _sublayers(self):
        return list(self._seq)

    def count_params(self):
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on model '{self.name}', but the model isn't built. "
                "You can build it manually via: `model.build(input_shape)`.")
        return super().count_params()

    def summary(self, *args, **kwargs):
        if not self.built:
            raise ValueError(
                "This model has not yet been built. Build the model first by calling `build()` or "
                "by calling the model on a batch of data.")
        return super().summary(*args, **kwargs)

    def get_config(self):
        """The layers' configs, the input's batch shape and dtype (None before the model is built)."""
        return {
            "name": self.name,
            "layers": [serialize(layer) for layer in self.layers],
            "batch_input_shape": list(self._input_layer.batch_shape) if self.built else None,
            "input_dtype": self._input_layer.input_dtype if self.built else None,
        }

    @classmethod
    def from_config(cls, config):
        """A new model from get_config()'s form (`input_name`, optional, names the Input layer:
        Keras configs carry it)."""
        model = cls(name=config.get("name"))
        for layer in [deserialize_named(c) for c in config["layers"]]:
            model.add(layer, rebuild=False)
        if config.get("batch_input_shape") is not None:
            inp = Input(batch_shape=config["batch_input_shape"], dtype=config.get("input_dtype"),
                        name=config.get("input_name"))
            model._input_layer = inp._keras_history[0]
            model._build_graph(tuple(config["batch_input_shape"]))
        return model

    def _ensure_store(self):
        if not self.built:
            return None
        return super()._ensure_store()
