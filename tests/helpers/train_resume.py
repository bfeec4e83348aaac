"""A training run that tests kill with SIGKILL and resume (tests/test_checkpoint_resume.py).

    python train_resume.py CONFIG ref    OUT         # uninterrupted run; final weights -> OUT
    python train_resume.py CONFIG run    CKPT        # checkpointed run; prints "batch E B" per batch
    python train_resume.py CONFIG resume CKPT OUT    # restore CKPT, finish, final weights -> OUT

CONFIG is a JSON object: seed, variant ("lstm" or "embed"), ckpt kind, optimizer, shuffle,
epochs, batch_size, save_freq, and optionally metrics ("many": metrics with vector states). Every run builds the model from the same seed, so only the
checkpoint carries the interrupted run's progress into the resumed one.
"""

import json
import sys
import time

import numpy as np

from fusedlstm import metrics as keras_metrics
from fusedlstm import optimizers
from fusedlstm.callbacks import Callback, ModelCheckpoint, restore_checkpoint
from fusedlstm.layers import LSTM, Dense, Dropout, Embedding, Input
from fusedlstm.models import Sequential
from fusedlstm.utils import set_random_seed


class PrintBatches(Callback):
    """One line per batch; the pause gives the killing test time to land mid-training."""

    def __init__(self, sleep):
        super().__init__()
        self.epoch = 0
        self.sleep = sleep

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        print(f"batch {self.epoch} {batch}", flush=True)
        time.sleep(self.sleep)


def build(cfg):
    set_random_seed(cfg["seed"])
    if cfg["variant"] == "embed":
        layers = [Input((9,), dtype="int32"), Embedding(12, 6), LSTM(10, return_sequences=True, dropout=0.1, seed=3),
                  Dropout(0.2, seed=4), LSTM(7, recurrent_dropout=0.2), Dense(5, activation="softmax")]
    else:
        layers = [Input((9, 4)), LSTM(10, dropout=0.2, recurrent_dropout=0.1, seed=11), Dropout(0.3),
                  Dense(5, activation="softmax")]
    model = Sequential(layers)
    opt = {"adam": lambda: optimizers.Adam(0.01), "sgd": lambda: optimizers.SGD(0.05, momentum=0.9),
           "rmsprop": lambda: optimizers.RMSprop(0.005)}[cfg["optimizer"]]()
    metrics = ["acc"]
    if cfg.get("metrics") == "many":
        # Metrics whose state is more than a (total, count) pair: a confusion matrix, top-k sums.
        metrics += [keras_metrics.SparseTopKCategoricalAccuracy(k=2), keras_metrics.MeanIoU(5, sparse_y_pred=False)]
    model.compile(opt, "sparse_categorical_crossentropy", metrics=metrics)
    return model


def data(cfg):
    r = np.random.default_rng(cfg["seed"] + 1)
    n = 150
    x = r.integers(0, 12, (n, 9)) if cfg["variant"] == "embed" else r.standard_normal((n, 9, 4)).astype("float32")
    return x, r.integers(0, 5, n)


def main(argv):
    cfg, mode = json.loads(argv[1]), argv[2]
    model = build(cfg)
    x, y = data(cfg)
    fit = dict(batch_size=cfg["batch_size"], epochs=cfg["epochs"], shuffle=cfg["shuffle"], verbose=0)
    weights_only = cfg["ckpt"] == "weights"
    if mode == "ref":
        hist = model.fit(x, y, **fit)
        out = argv[3]
    else:
        ckpt = argv[3]
        cbs = [ModelCheckpoint(ckpt, save_freq=cfg["save_freq"], save_weights_only=weights_only), PrintBatches(cfg.get("sleep", 0.0))]
        initial = 0
        if mode == "resume":
            initial = restore_checkpoint(model, ckpt)["initial_epoch"]
        hist = model.fit(x, y, initial_epoch=initial, callbacks=cbs, **fit)
        out = argv[4] if mode == "resume" else None
        if cfg.get("sleep"):
            # Being killed is the point of this run: a late kill must still find the process.
            time.sleep(60)
    if out:
        np.savez(out, *model.get_weights(), iterations=model.optimizer.iterations,
                 history=json.dumps({"epoch": hist.epoch, **hist.history}))


if __name__ == "__main__":
    main(sys.argv)
