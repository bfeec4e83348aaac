"""Loop over many fit calls until Ctrl-C (tests/test_interrupt.py sends SIGINT).

    python interrupt_loop.py SLEEP    # SLEEP: seconds a callback pauses per batch

Prints "ready" after the first batch, then on KeyboardInterrupt one JSON line:
whether the weights equal those recorded after the last completed step, the optimizer's
step count against the batches completed, the exception message, and whether the
default SIGINT handler is back.
"""

import json
import signal
import sys
import time

import numpy as np

from fusedlstm.callbacks import Callback
from fusedlstm.layers import LSTM, Dense, Input
from fusedlstm.models import Sequential


class Record(Callback):
    def __init__(self, sleep):
        super().__init__()
        self.sleep, self.weights, self.batches = sleep, None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.weights = self.model.get_weights()
        self.batches += 1
        if self.batches == 1:
            print("ready", flush=True)
        time.sleep(self.sleep)


def main(sleep):
    r = np.random.default_rng(0)
    x, y = r.standard_normal((256, 20, 8)).astype("float32"), r.integers(0, 5, 256)
    model = Sequential([Input((20, 8)), LSTM(32), Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    rec = Record(sleep)
    fits = 0
    try:
        while True:
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[rec])
            fits += 1
    except KeyboardInterrupt as exc:
        same = all(np.array_equal(a, b) for a, b in zip(rec.weights, model.get_weights()))
        print(json.dumps({"fits": fits, "same_weights": same, "iterations": model.optimizer.iterations,
                          "batches": rec.batches, "message": str(exc), "t": time.monotonic(),
                          "default_handler": signal.getsignal(signal.SIGINT) is signal.default_int_handler}),
              flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]))
