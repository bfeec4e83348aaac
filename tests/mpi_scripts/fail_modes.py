"""One rank misbehaves; the job must end quickly with a clear message (run under mpirun -n 2).

--config picks the failure: 'kill' (rank 1 SIGKILLs itself at step 3), 'hang' (rank 1
sleeps at step 3), 'mismatch' (rank 1 builds a bigger LSTM), 'data' (rank 1 gets
different data), 'stateful' (a stateful LSTM), 'batchnorm' (a BatchNormalization, whose batch
statistics cannot be split), 'exception' (rank 1 raises in a callback).
"""

import os
import signal
import time

import numpy as np

from common import parser, strategy
from fusedlstm import callbacks, layers, models, utils


class Misbehave(callbacks.Callback):
    def __init__(self, what, rank):
        super().__init__()
        self.what, self.rank = what, rank

    def on_train_batch_end(self, batch, logs=None):
        if self.rank != 1 or batch != 3:
            return
        if self.what == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.what == "hang":
            time.sleep(600)
        elif self.what == "exception":
            raise RuntimeError("rank 1 fails on purpose at batch 3")


def main():
    args = parser().parse_args()
    dist = strategy(args)
    utils.set_random_seed(args.seed)
    units = 7 if args.config == "mismatch" and dist.rank == 1 else 6
    stateful = args.config == "stateful"
    model = models.Sequential([
        layers.Input(batch_shape=(8, 5, 3)) if stateful else layers.Input(shape=(5, 3)),
        layers.LSTM(units, stateful=stateful),
    ] + ([layers.BatchNormalization()] if args.config == "batchnorm" else []) + [
        layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse", distribute=dist)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(64, 5, 3)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    if args.config == "data" and dist.rank == 1:
        x = x + 1.0
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[Misbehave(args.config, dist.rank)])
    print(f"rank {dist.rank}: fit returned", flush=True)


if __name__ == "__main__":
    main()
