"""How a compiled model runs its steps: the strategy passed to compile(distribute=...).

A strategy wraps the trainer's step, as tf.distribute strategies wrap Keras's
train_step: the trainer prepares a batch and hands it to `strategy.train_step`,
which uses the trainer's step interface (training.py) — compute the loss sums and
the gradient buffer, (reduce them across replicas,) apply the gradients, record
the batch in the metrics. The base class is the single-process strategy that every
model uses when no other is given; fusedlstm.distributed.MPIStrategy subclasses it.
The trainer knows a strategy only through this interface: it never imports MPI.

Hooks, each with its single-process behaviour here:

    begin_fit(model, train, val, callbacks, verbose, epochs, initial_epoch) -> (verbose, callbacks)
    begin_evaluate(model, data, callbacks, verbose) -> (verbose, callbacks)
    begin_predict(model, data, callbacks, verbose) -> (verbose, callbacks)
    train_step(model, xs, ys, sws) -> the batch's total loss (weights updated)
    test_step(model, xs, ys, sws) -> the batch's total loss (metrics updated)
    allows_save() -> whether model.save/save_weights write on this process
"""

__all__ = ["Strategy", "set_default_strategy", "get_default_strategy", "resolve"]


class Strategy:
    """One process, one replica: the step as the model computes it."""

    def begin_fit(self, model, train, val, callbacks, verbose, epochs, initial_epoch):
        return verbose, callbacks

    def begin_evaluate(self, model, data, callbacks, verbose):
        return verbose, callbacks

    def begin_predict(self, model, data, callbacks, verbose):
        return verbose, callbacks

    def train_step(self, model, xs, ys, sws):
        result = model.compute_step(xs, ys, sws)
        model.apply_gradients(result.grads, result.loss)
        model.record_step(xs[0].shape[0], result, ys, sws)
        return result.loss

    def test_step(self, model, xs, ys, sws):
        result = model.compute_step(xs, ys, sws, training=False, gradients=False)
        model.record_step(xs[0].shape[0], result, ys, sws)
        return result.loss

    def allows_save(self):
        return True


LOCAL = Strategy()
_DEFAULT = [None]


def set_default_strategy(strategy):
    """The strategy compile() uses when its `distribute` argument is not given (None: none)."""
    if strategy is not None and not isinstance(strategy, Strategy):
        raise TypeError(
            "Received an invalid value for argument `strategy`, expected a fusedlstm strategy (e.g. "
            f"fusedlstm.distributed.MPIStrategy) or None, got {type(strategy).__name__}.")
    _DEFAULT[0] = strategy


def get_default_strategy():
    return _DEFAULT[0]


def resolve(distribute):
    """compile()'s `distribute` argument as a strategy or None (the single-process one).

    None: the default strategy (usually none); False: no strategy even if a default is
    set; a Strategy (fusedlstm.distributed.MPIStrategy): that one.
    """
    if distribute is None:
        return _DEFAULT[0]
    if distribute is False:
        return None
    if isinstance(distribute, Strategy):
        return distribute
    raise TypeError(
        "Received an invalid value for argument `distribute`, expected None, False or a "
        f"fusedlstm.distributed.MPIStrategy, got {distribute!r}.")
