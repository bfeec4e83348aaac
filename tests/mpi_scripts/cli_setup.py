"""distributed.cli.setup_run under mpirun: one seed for all ranks, rank 0 alone prints and writes.

Every rank prints one line to stderr (what setup_run left it) whatever `out` does.
"""

import argparse
import sys

from fusedlstm.distributed.cli import setup_run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="mpi")
    p.add_argument("--distribute", default="auto")
    args = argparse.Namespace(engine="fusedlstm", seed=None, plot="curve.png", save="w.weights.npz",
                              distribute=p.parse_args().distribute)
    out = setup_run(args, lambda text="": print(text, flush=True))
    out("printed by rank 0 only")
    from fusedlstm.distributed import get_default_strategy

    s = get_default_strategy()
    rank = "none" if s is None else s.rank
    print(f"rank={rank} seed={args.seed} plot={args.plot} save={args.save}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
