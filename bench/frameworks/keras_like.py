"""The benchmark models written once against the Keras API.

Keras and fusedlstm both build their models with `build()` below, handed their
own namespace (`keras`, or `fusedlstm`): that fusedlstm accepts the very same
code is the port-by-changing-imports promise, and it guarantees both run the
same layers, loss and optimizer.
"""

import time

import numpy as np


def _input(lib, shape, dtype):
    make = getattr(lib, "Input", None) or lib.layers.Input
    return make(shape=shape, dtype=dtype)


def build(lib, cfg, weights, precision="float32"):
    """A compiled Sequential model for `cfg` holding `weights` (Keras order).

    precision "mixed_bfloat16" gives every layer Keras's mixed_bfloat16 policy
    (per layer, not the global policy, so models built later in the same process
    are not affected); the loss is computed in float32 either way."""
    L = lib.layers
    dt = {"dtype": precision} if precision != "float32" else {}
    if cfg.inputs == "ids":
        stack = [_input(lib, (cfg.steps,), "int32"), L.Embedding(cfg.features, cfg.embed_dim, **dt)]
    else:
        stack = [_input(lib, (cfg.steps, cfg.features), "float32")]
    if cfg.conv:
        filters, kernel_size, pool = cfg.conv
        stack += [L.Conv1D(filters, kernel_size, activation="relu", **dt), L.MaxPooling1D(pool, **dt)]
    softmax = L.Dense(cfg.classes, activation="softmax", **dt)
    rnn = L.GRU if cfg.cell == "gru" else L.LSTM  # GRU: Keras 3's default reset_after=True
    if cfg.head == "last":
        stack += [rnn(cfg.units, **dt), softmax]
    elif cfg.head == "sequence":
        stack += [rnn(cfg.units, return_sequences=True, **dt), L.TimeDistributed(softmax, **dt)]
    else:
        stack += [rnn(cfg.units, **dt), L.RepeatVector(cfg.out_steps, **dt),
                  rnn(cfg.units, return_sequences=True, **dt), L.TimeDistributed(softmax, **dt)]
    model = lib.models.Sequential(stack)
    loss = {"categorical": "categorical_crossentropy", "sparse": "sparse_categorical_crossentropy"}[cfg.loss]
    # Keras's Adam defaults, spelled out so both libraries get exactly these.
    opt = lib.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    model.compile(optimizer=opt, loss=loss)
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    return model


class Model:
    """Adapter from the Keras-like model to the benchmark's interface."""

    def __init__(self, model):
        self.model = model

    def prepare(self, x, y, y_ids):
        return x, y

    def train(self, batch):
        return self.model.train_on_batch(batch[0], batch[1])

    def infer(self, batch):
        return self.model.predict_on_batch(batch[0])

    def to_numpy(self, out):
        # Keras's mixed_bfloat16 outputs are bfloat16 (ml_dtypes); ours are float32.
        return np.asarray(out).astype(np.float32, copy=False)


def fit_epoch(lib, cfg, weights, x, y, batch_size, seed, precision="float32"):
    """One epoch of `model.fit(shuffle=True)`; returns (seconds, epoch loss)."""
    model = build(lib, cfg, weights, precision)
    seeder = getattr(getattr(lib, "utils", None), "set_random_seed", None)
    if seeder is not None:
        seeder(seed)  # fit's shuffle order
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    return time.perf_counter() - t0, float(hist.history["loss"][-1])
