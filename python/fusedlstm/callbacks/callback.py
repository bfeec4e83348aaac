"""The callback protocol and History (the list that fans one event out: callback_list.py).

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

__all__ = ["Callback", "History"]


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
