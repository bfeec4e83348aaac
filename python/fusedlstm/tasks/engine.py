"""Which library the task scripts train with.

The scripts are ordinary Keras 3 code written against a namespace with the
`models`, `layers`, `optimizers`, `callbacks` and `utils` modules. "fusedlstm"
(the default) is this library; "keras" runs the very same code on Keras itself
(with the torch backend unless KERAS_BACKEND says otherwise), which is how the
scripts were checked and how the two can be compared.
"""

import importlib
import os
from types import SimpleNamespace

ENGINES = ("fusedlstm", "keras")


class EngineUnavailable(RuntimeError):
    """The requested engine cannot be imported (a one-line reason)."""


def load_engine(name="fusedlstm"):
    """A namespace with models, layers, optimizers, callbacks, utils and set_seed."""
    if name == "fusedlstm":
        try:
            mods = {m: importlib.import_module(f"fusedlstm.{m}") for m in ("models", "layers", "optimizers", "callbacks", "utils", "mixed_precision")}
        except ImportError as exc:
            raise EngineUnavailable(f"the fusedlstm engine cannot be imported: {exc}") from exc
        set_seed = mods["utils"].set_random_seed
    elif name == "keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
        try:
            keras = importlib.import_module("keras")
        except ImportError as exc:
            raise EngineUnavailable(
                f"--engine keras needs keras and torch (pip install 'fusedlstm[compare]'): {exc}"
            ) from exc
        mods = {m: getattr(keras, m) for m in ("models", "layers", "optimizers", "callbacks", "utils", "mixed_precision")}
        set_seed = keras.utils.set_random_seed
    else:
        raise ValueError(f"Received an invalid value for argument `engine`, expected one of {ENGINES}, got {name!r}.")
    return SimpleNamespace(name=name, set_seed=set_seed, **mods)


def reset_states(model):
    """Reset every stateful layer (Keras 3 has no Model.reset_states)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()


def last(history, *names):
    """The last value logged under the first of `names` present in a History
    (Keras names a metric as given: metrics=['acc'] logs 'acc')."""
    for name in names:
        if name in history.history:
            return float(history.history[name][-1])
    raise KeyError(f"none of {names} in the history (it has {sorted(history.history)})")
