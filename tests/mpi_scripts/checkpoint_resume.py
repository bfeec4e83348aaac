"""Checkpoints written under MPI, resumed in one process.

--mode mpi: 3 epochs on every rank with a ModelCheckpoint each epoch (rank 0 writes),
then model.save on every rank (rank 0 writes). --mode single: restore the epoch-2
checkpoint and train the third epoch alone. Both record the history and the weights.
"""

import os

import numpy as np

from common import build, flat_weights, out_file, parser, strategy
from fusedlstm import callbacks


def main():
    args = parser().parse_args()
    dist = strategy(args)
    model, fit_kw, (x, y, _, _) = build(args.config, args.seed, dist)
    fit_kw["epochs"] = 3
    ckpt = os.path.join(args.out, "ckpt-{epoch}.fusedlstm")
    if dist is not None:
        cbs = [callbacks.ModelCheckpoint(ckpt, monitor="loss")]
        hist = model.fit(x, y, verbose=0, callbacks=cbs, **fit_kw)
        model.save(os.path.join(args.out, f"final-by-rank{dist.rank}.fusedlstm"))
    else:
        info = callbacks.restore_checkpoint(model, ckpt.format(epoch=2))
        hist = model.fit(x, y, verbose=0, initial_epoch=info["initial_epoch"], **fit_kw)
    np.savez(out_file(args, dist, "resume"), loss=np.array(hist.history["loss"]),
             weights=flat_weights(model))


if __name__ == "__main__":
    main()
