"""Partial echo with an encoder-decoder: read a window, write its first values.

Classic: a random sequence of 25 values in [0, 100), its 21 windows of 5; the
target of each window is its first 2 values. Stateful LSTM(150) ->
RepeatVector(2) -> LSTM(150, return_sequences) -> TimeDistributed(Dense
softmax), one batch of all 21 windows per sequence, 5000 sequences, the state
reset after each. Target: >= 95% of windows with both values right.
seq2seq-4 echoes the first 4 values with 300 units (reported, no target).
`--cell gru` builds both with GRU(units) in place of each LSTM(units).
"""

import numpy as np

from .common import Context, TaskResult, TaskSpec, cell_label, fit_loop, percent, recurrent_layer, task_label
from .encoders import one_hot_decode
from .engine import reset_states
from .generators import echo_windows


def build_model(ctx, cfg):
    K = ctx.engine
    rnn = recurrent_layer(K, cfg.cell)
    windows = cfg.length - cfg.window + 1
    model = K.models.Sequential(
        [
            K.layers.Input(batch_shape=(windows, cfg.window, cfg.features)),
            rnn(cfg.units, stateful=True),
            K.layers.RepeatVector(cfg.n_out),
            rnn(cfg.units, return_sequences=True, stateful=True),
            K.layers.TimeDistributed(K.layers.Dense(cfg.features, activation="softmax")),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=ctx.adam(cfg.lr), metrics=["acc"])
    return model


def run(cfg, ctx: Context, name="seq2seq") -> TaskResult:
    if not 1 <= cfg.n_out <= cfg.window:
        raise ValueError(f"{name}: --n-out must be in [1, window={cfg.window}], got {cfg.n_out}.")
    windows = cfg.length - cfg.window + 1
    model = build_model(ctx, cfg)

    def make_data():
        return echo_windows(cfg.length, cfg.features, cfg.window, cfg.n_out, rng=ctx.rng)

    def fit_one(X, y):
        return model.fit(X, y, epochs=1, batch_size=windows, verbose=0, shuffle=False)

    ctx.print(
        f"{name}: first {cfg.n_out} of each of the {windows} windows of {cfg.window} "
        f"({cfg.features} values); stateful {cell_label(cfg.cell, cfg.units)} x2, {cfg.sequences} sequences"
    )
    seconds, curve, _ = fit_loop(ctx, cfg.sequences, make_data, fit_one, "seq", after_each=lambda: reset_states(model))
    whole = steps_ok = count = 0
    for i in range(cfg.eval):
        X, y = make_data()
        yhat = model.predict(X, batch_size=windows, verbose=0)
        reset_states(model)
        hit = one_hot_decode(yhat) == one_hot_decode(y)
        whole += int(np.sum(hit.all(axis=1)))
        steps_ok += int(hit.sum())
        count += len(y)
        if i == 0:
            for w in range(3):
                ctx.print(f"Expected: {one_hot_decode(y[w]).tolist()} Predicted: {one_hot_decode(yhat[w]).tolist()}")
    acc = whole / count
    ctx.print(
        f"Whole-output accuracy on {cfg.eval} fresh sequences: {percent(acc):.2f}% "
        f"(per value {percent(steps_ok / (count * cfg.n_out)):.2f}%)"
    )
    return TaskResult(
        task=task_label(name, cfg.cell),
        metric=f"whole {'pairs' if cfg.n_out == 2 else 'outputs'}, {cfg.eval} fresh sequences",
        value=percent(acc),
        target=">= 95%" if name == "seq2seq" else "report",
        passed=(acc >= 0.95) if name == "seq2seq" else None,
        seconds=seconds,
        steps=cfg.sequences,
        curve=curve,
        curve_x="sequences (loss: mean of the last 100)",
        notes=[f"per value {percent(steps_ok / (count * cfg.n_out)):.1f}%"],
        model=model,
    )


def run_long(cfg, ctx):
    return run(cfg, ctx, name="seq2seq-4")


SEQ2SEQ = TaskSpec(
    name="seq2seq",
    summary="encoder-decoder echoes the first 2 of each window of 5 (100 values), LSTM(150)",
    target=">= 95% whole pair",
    classic=dict(cell="lstm", length=25, features=100, window=5, n_out=2, units=150, lr=0.001, sequences=5000, eval=10),
    quick=dict(cell="lstm", length=25, features=100, window=5, n_out=2, units=150, lr=0.01, sequences=1500, eval=10),
    run=run,
)

SEQ2SEQ_4 = TaskSpec(
    name="seq2seq-4",
    summary="the same with the first 4 of each window, LSTM(300)",
    target="report",
    classic=dict(cell="lstm", length=25, features=100, window=5, n_out=4, units=300, lr=0.001, sequences=5000, eval=10),
    quick=dict(cell="lstm", length=25, features=100, window=5, n_out=4, units=300, lr=0.01, sequences=2000, eval=10),
    run=run_long,
)
