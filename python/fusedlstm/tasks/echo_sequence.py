"""Echo a whole sequence, window by window, with a stateful LSTM.

Classic: a random sequence of 25 values in [0, 100) is cut into its 20 windows
of 6; a stateful LSTM(16) with return_sequences and TimeDistributed(Dense
softmax) must output each window's values step by step. Batches of 5 windows,
no shuffling, 500 sequences, the state reset after each. Target: >= 95%
per-step accuracy on fresh sequences.
"""

import numpy as np

from .common import Context, TaskResult, TaskSpec, fit_loop, percent
from .encoders import one_hot_decode
from .engine import reset_states
from .generators import echo_windows


def build_model(ctx, cfg):
    K = ctx.engine
    model = K.models.Sequential(
        [
            # Keras 3 spells the old batch_input_shape as Input(batch_shape=...).
            K.layers.Input(batch_shape=(cfg.batch_size, cfg.window, cfg.features)),
            K.layers.LSTM(cfg.units, return_sequences=True, stateful=True),
            K.layers.TimeDistributed(K.layers.Dense(cfg.features, activation="softmax")),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=ctx.adam(cfg.lr), metrics=["acc"])
    return model


def _check(cfg):
    windows = cfg.length - cfg.window + 1
    if windows < 1 or windows % cfg.batch_size:
        raise ValueError(
            f"echo-sequence: the {windows} windows of {cfg.window} in a sequence of {cfg.length} "
            f"must split into whole batches of {cfg.batch_size} (a stateful model has a fixed batch size)."
        )


def run(cfg, ctx: Context) -> TaskResult:
    _check(cfg)
    model = build_model(ctx, cfg)
    windows = cfg.length - cfg.window + 1

    def make_data():
        return echo_windows(cfg.length, cfg.features, cfg.window, cfg.window, rng=ctx.rng)

    def fit_one(X, y):
        return model.fit(X, y, epochs=1, batch_size=cfg.batch_size, verbose=0, shuffle=False)

    ctx.print(
        f"echo-sequence: {windows} windows of {cfg.window} from {cfg.length} values in [0, {cfg.features}); "
        f"stateful LSTM({cfg.units}), batch {cfg.batch_size}, {cfg.sequences} sequences"
    )
    seconds, curve, _ = fit_loop(ctx, cfg.sequences, make_data, fit_one, "seq", after_each=lambda: reset_states(model))
    correct = total = 0
    for i in range(cfg.eval):
        X, y = make_data()
        yhat = model.predict(X, batch_size=cfg.batch_size, verbose=0)
        reset_states(model)
        correct += int(np.sum(one_hot_decode(yhat) == one_hot_decode(y)))
        total += y.shape[0] * y.shape[1]
        if i == 0:
            for w in range(min(3, windows)):
                ctx.print(f"X={one_hot_decode(X[w]).tolist()} y={one_hot_decode(y[w]).tolist()}, "
                          f"yhat={one_hot_decode(yhat[w]).tolist()}")
    acc = correct / total
    ctx.print(f"Per-step accuracy on {cfg.eval} fresh sequences: {percent(acc):.2f}%")
    return TaskResult(
        task="echo-sequence",
        metric=f"per step, {cfg.eval} fresh sequences",
        value=percent(acc),
        target=">= 95%",
        passed=acc >= 0.95,
        seconds=seconds,
        steps=cfg.sequences * windows // cfg.batch_size,
        curve=curve,
        curve_x="sequences (loss: mean of the last 100)",
        model=model,
    )


ECHO_SEQUENCE = TaskSpec(
    name="echo-sequence",
    summary="stateful LSTM(16) echoes the 20 windows of 6 of a 25-value sequence (100 values)",
    target=">= 95% per step",
    classic=dict(length=25, features=100, window=6, units=16, lr=0.001, batch_size=5, sequences=500, eval=100),
    quick=dict(length=25, features=100, window=6, units=16, lr=0.001, batch_size=5, sequences=500, eval=100),
    run=run,
)
