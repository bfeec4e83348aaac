"""`fusedlstm run` under mpirun/srun: the part of the CLI that knows about MPI.

`setup_run(args, out)` is called once the run's flags are parsed. When the
launcher started more than one rank (or `--distribute mpi`), it creates the
MPIStrategy and makes it the default (the task scripts compile their models
without knowing), agrees on one seed (rank 0's), and leaves printing and the
--plot/--save files to rank 0.
"""

import secrets

from . import strategy_from_flag

__all__ = ["setup_run", "DISTRIBUTE_CHOICES", "DISTRIBUTE_HELP"]

DISTRIBUTE_CHOICES = ("auto", "mpi", "none")
DISTRIBUTE_HELP = ("train data-parallel over MPI ranks (needs the mpi extra): 'auto' (default) when "
                   "mpirun/srun started more than one rank, 'mpi' always, 'none' never")


def _silent(text=""):
    return None


def setup_run(args, out):
    """The `out` function for this rank; may set args.seed, args.plot and args.save.

    Raises ImportError (mpi4py or MPI missing) or ValueError (a flag that does not combine).
    """
    choice = getattr(args, "distribute", "auto")
    if args.engine != "fusedlstm":
        if choice == "mpi":
            raise ValueError(f"--distribute mpi trains with fusedlstm; it does not apply to --engine {args.engine}")
        return out
    strategy = strategy_from_flag(choice)
    if strategy is None:
        return out
    # Every rank must generate the same data and draw the same samples: rank 0's seed.
    drawn = secrets.randbits(31) if args.seed is None else args.seed
    args.seed = strategy.broadcast_int(drawn, "the broadcast of the run's seed")
    if not strategy.is_root:
        args.plot = args.save = None
        return _silent
    out(f"data-parallel: {strategy.size} MPI ranks, each trains on 1/{strategy.size} of every batch")
    return out
