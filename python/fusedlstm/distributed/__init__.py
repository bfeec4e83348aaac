"""Data-parallel training across processes and machines on MPI.

    from fusedlstm.distributed import MPIStrategy
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", distribute=MPIStrategy())
    model.fit(x, y, batch_size=256, epochs=10)

    $ mpirun -n 4 python train.py              # or: srun -n 4 python train.py

Needs the `mpi` extra (mpi4py and an MPI library); importing this package does
not import mpi4py, creating an MPIStrategy does. See docs/distributed.md.

* strategy.py: MPIStrategy, a fusedlstm.models.Strategy: the sharded step.
* step.py: shards, the Keras loss normalisers, the buffer packed behind the gradients.
* sync.py: the start-of-fit agreement, rank 0's state for every rank, the weight check.
* rank_callbacks.py: which callbacks run on which rank.
* comm.py: collectives with deadlines, launcher detection, abort-on-failure guards.
* cli.py: `fusedlstm run` under mpirun.
"""

from ..models import strategy as _models_strategy
from .comm import launcher_world_size
from .strategy import MPIStrategy

__all__ = ["MPIStrategy", "get_default_strategy", "set_default_strategy", "resolve",
           "launcher_world_size", "strategy_from_flag"]


def set_default_strategy(strategy):
    """Make compile() use `strategy` when its `distribute` argument is not given (None to clear).

    The CLI sets it when launched under MPI, so the task scripts need no change.
    """
    if strategy is not None and not isinstance(strategy, MPIStrategy):
        raise TypeError(
            "Received an invalid value for argument `strategy`, expected an MPIStrategy or None, "
            f"got {type(strategy).__name__}.")
    _models_strategy.set_default_strategy(strategy)


def get_default_strategy():
    return _models_strategy.get_default_strategy()


# compile()'s `distribute` argument as a strategy or None (fusedlstm.models.strategy.resolve).
resolve = _models_strategy.resolve


def strategy_from_flag(choice):
    """The strategy for the CLI's `--distribute` flag ('auto', 'mpi' or 'none'), set as default.

    'auto' trains data-parallel only when an MPI launcher started more than one rank
    (read from its environment: no MPI import in a plain run).
    """
    if choice not in ("auto", "mpi", "none"):
        raise ValueError(
            f"Received an invalid value for argument `choice`, expected 'auto', 'mpi' or 'none', got {choice!r}.")
    if choice == "none" or (choice == "auto" and launcher_world_size() < 2):
        return None
    strategy = MPIStrategy()
    set_default_strategy(strategy)
    return strategy
