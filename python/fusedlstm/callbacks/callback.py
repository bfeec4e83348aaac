"""The callback protocol, the list that fans one event out to many, and History.

Same names, hooks and call order as `keras.callbacks` (Keras 3), so a callback
written for Keras runs here unchanged. A training loop drives a `CallbackList`:

    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                       model=model, verbose=verbose, epochs=epochs, steps=steps)
    cbs.on_train_begin()
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            ...                                  # logs = running epoch means
            cbs.on_train_batch_end(step, logs)
        cbs.on_epoch_end(epoch, epoch_logs)
        if model.stop_training: break
    cbs.on_train_end(epoch_logs)

Keras 3 dispatches batch-end hooks on a thread pool when no callback overrides
them; we call every hook synchronously: training here is one C++ call per batch
already, so there is nothing to overlap, and callbacks see a consistent model.
"""

import numbers

import numpy as np

__all__ = ["Callback", "CallbackList", "History"]


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


class Callback:
    """Base class: override the hooks you need; every hook does nothing here.

    Attributes:
        params: dict of training parameters (verbose, epochs, steps) or None.
        model: the model being trained (set by `set_model`).

    `on_train_batch_begin/end` also call `on_batch_begin/end`, as in Keras, so
    old-style callbacks that override `on_batch_end` keep working.
    """

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None):
        """A backwards-compatible alias for `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """A backwards-compatible alias for `on_train_batch_end`."""

    def on_epoch_begin(self, epoch, logs=None):
        """At the start of an epoch (training only)."""

    def on_epoch_end(self, epoch, logs=None):
        """At the end of an epoch; logs hold the epoch's metrics and val_ metrics."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Before a batch of `evaluate` (and of fit's validation)."""

    def on_test_batch_end(self, batch, logs=None):
        """After a batch of `evaluate` (and of fit's validation)."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Before a batch of `predict`."""

    def on_predict_batch_end(self, batch, logs=None):
        """After a batch of `predict`."""

    def on_train_begin(self, logs=None):
        """At the start of `fit`."""

    def on_train_end(self, logs=None):
        """At the end of `fit`; logs are the last epoch's."""

    def on_test_begin(self, logs=None):
        """At the start of `evaluate` (and of fit's validation)."""

    def on_test_end(self, logs=None):
        """At the end of `evaluate` (and of fit's validation)."""

    def on_predict_begin(self, logs=None):
        """At the start of `predict`."""

    def on_predict_end(self, logs=None):
        """At the end of `predict`."""


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
        self.callbacks = _flatten(callbacks)
        self._depth = 0
        self._add_default_callbacks(add_history, add_progbar)
        self.set_model(model)
        self.set_params(params)

    def _add_default_callbacks(self, add_history, add_progbar):
        # Imported here: progbar imports this module for Callback.
        from .progbar import ProgbarLogger

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


def _flatten(callbacks):
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
            out.extend(_flatten(item))
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


class History(Callback):
    """Records each epoch's logs: `.history` maps a metric name to a list (one
    value per epoch), `.epoch` lists the epoch indices. `fit` returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        # As in Keras: a History reused across fit calls keeps appending to
        # .history, while .epoch restarts.
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self
