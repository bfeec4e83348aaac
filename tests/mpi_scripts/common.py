"""Models and data shared by the scripts that tests/test_distributed.py runs under mpirun.

Every rank (and the single-process reference run) builds the same model and data
from the same seed, so the only difference between the runs is the strategy.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fusedlstm import constraints, layers, metrics, models, optimizers, regularizers, utils  # noqa: E402

VOCAB = 11


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("mpi", "single"), required=True)
    p.add_argument("--out", required=True, help="directory for the result files")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--config", default="masked")
    p.add_argument("--timeout", type=float, default=None)
    return p


def strategy(args):
    if args.mode != "mpi":
        return None
    from fusedlstm.distributed import MPIStrategy

    return MPIStrategy(timeout=args.timeout)


def masked_data(seed, n, T=9):
    """Integer sequences right-padded with 0 (masked by Embedding(mask_zero)), shifted targets."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=n)
    x = rng.integers(1, VOCAB, size=(n, T)).astype(np.int32)
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, VOCAB, size=(n, T)).astype(np.int32)
    sw = rng.uniform(0.2, 2.0, size=n).astype(np.float32)
    return x, y, sw


def build(config, seed, dist):
    """(model, fit kwargs, data) for a named configuration."""
    utils.set_random_seed(seed)
    if config == "masked":
        # Many-to-many over masked sequences with sample weights; batch 7 over 22 samples gives
        # shards 3/4 and a last global batch of 1 (one rank's shard is empty).
        x, y, sw = masked_data(seed, 22)
        model = models.Sequential([
            layers.Input(shape=(x.shape[1],), dtype="int32"),
            layers.Embedding(VOCAB, 5, mask_zero=True),
            layers.LSTM(6, return_sequences=True),
            layers.TimeDistributed(layers.Dense(VOCAB, activation="softmax")),
        ])
        model.compile(optimizer=optimizers.SGD(0.5, momentum=0.9), loss="sparse_categorical_crossentropy",
                      metrics=["acc"], distribute=dist)
        xv, yv, _ = masked_data(seed + 1, 10)
        return model, dict(batch_size=7, epochs=2, shuffle=True, sample_weight=sw,
                           validation_data=(xv, yv)), (x, y, xv, yv)
    if config == "adam":
        # Many-to-one, fused softmax + cross-entropy, Adam; batch 16 over 53 samples.
        rng = np.random.default_rng(seed)
        x = rng.integers(0, VOCAB, size=(53, 12)).astype(np.int32)
        y = (x[:, 3] + x[:, 7]) % VOCAB
        model = models.Sequential([
            layers.Input(shape=(12,), dtype="int32"),
            layers.Embedding(VOCAB, 8),
            layers.LSTM(16),
            layers.Dense(VOCAB, activation="softmax"),
        ])
        model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["acc"], distribute=dist)
        return model, dict(batch_size=16, epochs=2, shuffle=True), (x, y, x[:20], y[:20])
    if config == "two_outputs":
        # A functional model with two unmasked losses (mse + binary cross-entropy), loss weights.
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(30, 6, 3)).astype(np.float32)
        y1 = rng.normal(size=(30, 2)).astype(np.float32)
        y2 = (rng.random((30, 6, 1)) > 0.5).astype(np.float32)
        inp = layers.Input(shape=(6, 3))
        seq = layers.LSTM(5, return_sequences=True)(inp)
        last = layers.LSTM(4)(seq)
        o1 = layers.Dense(2, name="reg")(last)
        o2 = layers.TimeDistributed(layers.Dense(1, activation="sigmoid"), name="tag")(seq)
        model = models.Model(inp, [o1, o2])
        model.compile(optimizer=optimizers.SGD(0.1), loss=["mse", "binary_crossentropy"],
                      loss_weights=[1.0, 0.5], distribute=dist)
        return model, dict(batch_size=9, epochs=2, shuffle=True), (x, [y1, y2], x[:7], [y1[:7], y2[:7]])
    if config == "penalized":
        # Weight regularizers (added once, after the reduction), a constraint after each update,
        # and metrics whose states are vectors of sums (AUC's counts, F1's per-class sums), weighted
        # by sample weights; batch 7 over 25 samples.
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(25, 8, 3)).astype(np.float32)
        y = (rng.random((25, 3)) < 0.4).astype(np.float32)
        sw = rng.uniform(0.2, 2.0, size=25).astype(np.float32)
        model = models.Sequential([
            layers.Input(shape=(8, 3)),
            layers.LSTM(6, kernel_regularizer=regularizers.L2(0.01),
                        recurrent_regularizer=regularizers.OrthogonalRegularizer(0.05),
                        recurrent_constraint=constraints.MaxNorm(0.9, axis=1)),
            layers.Dense(3, activation="sigmoid", kernel_regularizer=regularizers.L1(0.01),
                         bias_constraint="non_neg"),
        ])
        model.compile(optimizer=optimizers.Adam(0.02), loss="binary_focal_crossentropy",
                      metrics=[metrics.AUC(), metrics.Precision(thresholds=[0.3, 0.6]),
                               metrics.F1Score(average="macro", threshold=0.5)],
                      weighted_metrics=[metrics.AUC(curve="PR", name="pr_auc")], distribute=dist)
        return model, dict(batch_size=7, epochs=2, shuffle=True, sample_weight=sw,
                           validation_data=(x[:9], y[:9])), (x, y, x[:11], y[:11])
    raise SystemExit(f"unknown config {config!r}")


def flat_weights(model):
    return np.concatenate([w.reshape(-1) for w in model.get_weights()]).astype(np.float32)


def rank_of(dist):
    return 0 if dist is None else dist.rank


def out_file(args, dist, name):
    tag = "single" if dist is None else f"rank{dist.rank}"
    return os.path.join(args.out, f"{name}-{tag}.npz")
