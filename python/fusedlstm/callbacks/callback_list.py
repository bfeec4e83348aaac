"""CallbackList: one event fanned out to many callbacks, in order.

A training loop drives a `CallbackList` (see callback.py for the hooks and their
order); it adds the History and the progress bar fit and evaluate show by default.
"""

import numbers

import numpy as np

from .callback import Callback, History
from .progbar import ProgbarLogger

__all__ = ["CallbackList", "flatten_callbacks"]


def _pythonify_logs(logs):
    """A fresh dict, keys sorted, nested dicts flattened, numbers as Python floats.

    Keras does exactly this before every hook, which is why progress bars list
    metrics alphabetically ("acc: ... - loss: ...").
    """
    out = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            out.update(_pythonify_logs(value))
            continue
        if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(value, np.ndarray) and value.size == 1:
            value = float(value.reshape(()))
        out[key] = value
    return out


class CallbackList(Callback):
    """Calls every hook on each of a list of callbacks, in order.

    Args:
        callbacks: a Callback or a (possibly nested) list of them, or None.
        add_history: append a History unless the list already has one.
        add_progbar: append a ProgbarLogger unless the list already has one.
        model: the model, passed to every callback's `set_model` (its `.history`
            is set to the History).
        **params: passed to every callback's `set_params` (verbose, epochs, steps).

    Each hook builds one logs dict (see `_pythonify_logs`) and hands that same
    dict to every callback, so a value one callback adds (ReduceLROnPlateau's
    `learning_rate`) reaches the History appended after it, as in Keras.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = flatten_callbacks(callbacks)
        self._depth = 0
        self._add_default_callbacks(add_history, add_progbar)
        self.set_model(model)
        self.set_params(params)

    def _add_default_callbacks(self, add_history, add_progbar):
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook, *args, logs=None):
        logs = _pythonify_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def _begin(self):
        self._depth += 1

    def _end(self):
        self._depth -= 1
        if self._depth < 0:
            self._depth = 0
            raise RuntimeError("CallbackList: an on_*_end hook was called without its on_*_begin.")

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs=None):
        self._begin()
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)
        self._end()

    def on_test_begin(self, logs=None):
        self._begin()
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)
        self._end()

    def on_predict_begin(self, logs=None):
        self._begin()
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)
        self._end()


def flatten_callbacks(callbacks):
    """A list of callbacks from None, one callback or a (possibly nested) list of them;
    TypeError for anything else."""
    if callbacks is None:
        return []
    if _is_callback(callbacks):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            "Received an invalid value for argument `callbacks`, expected a Callback or "
            f"a list of Callback instances, got {type(callbacks).__name__}."
        )
    out = []
    for item in callbacks:
        if isinstance(item, (list, tuple)):
            out.extend(flatten_callbacks(item))
        elif _is_callback(item):
            out.append(item)
        else:
            raise TypeError(
                "Received an invalid value for argument `callbacks`, expected Callback "
                f"instances, got an item of type {type(item).__name__}."
            )
    return out


def _is_callback(obj):
    # Duck-typed so that callbacks written against keras.callbacks.Callback (not
    # our class) still work: they only need the hooks and set_model/set_params.
    return isinstance(obj, Callback) or all(
        callable(getattr(obj, name, None)) for name in ("set_model", "set_params", "on_epoch_end")
    )
