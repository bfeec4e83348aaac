"""Echo: show an LSTM a random sequence, ask for the value at one index.

Classic (the "echo sequence prediction" notebook): one-hot values 0-9, length
5, echo index 2; LSTM(25) -> Dense(softmax), Adam; calls of model.fit(X, y,
epochs=1) on one fresh example each. Target: 100% on 100 fresh sequences. The
notebook makes 10,000 fits, which misses the target on one seed in four; here
training goes on until 1,000 validation sequences are all right (checked every
1,000 fits), within 40,000 fits (`--check-every 0 --examples 10000`: the
notebook's run).

echo-long is the same problem at 100 values, length 50, index 2: the value
must survive 47 more steps. It has no target; it trains for a time budget on
fresh batches and reports the accuracy reached (see its notes for what makes
it learn).
"""

import time

import numpy as np

from .common import Context, TaskResult, TaskSpec, fit_loop, percent
from .encoders import one_hot_decode
from .generators import generate_batch, generate_example


def build_model(ctx, length, features, units, lr, go_backwards=False, clipnorm=0.0):
    K = ctx.engine
    model = K.models.Sequential(
        [
            K.layers.Input(shape=(length, features)),
            K.layers.LSTM(units, go_backwards=go_backwards),
            K.layers.Dense(features, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=ctx.adam(lr, clipnorm), metrics=["acc"])
    return model


def _accuracy(model, X, y, batch_size=256):
    yhat = model.predict(X, batch_size=batch_size, verbose=0)
    return float(np.mean(one_hot_decode(yhat) == one_hot_decode(y)))


def _show_one(ctx, model, cfg):
    X, y = generate_example(cfg.length, cfg.features, cfg.index, rng=ctx.rng)
    yhat = model.predict(X, verbose=0)
    ctx.print(f"Sequence:  {one_hot_decode(X[0]).tolist()}")
    ctx.print(f"Expected:  {one_hot_decode(y).tolist()}")
    ctx.print(f"Predicted: {one_hot_decode(yhat).tolist()}")


def run_echo(cfg, ctx: Context) -> TaskResult:
    model = build_model(ctx, cfg.length, cfg.features, cfg.units, cfg.lr)

    def make_data():
        return generate_batch(cfg.batch_size, cfg.length, cfg.features, cfg.index, rng=ctx.rng)

    def fit_one(X, y):
        return model.fit(X, y, epochs=1, batch_size=cfg.batch_size, verbose=0)

    check = None
    if cfg.check_every:
        # Drawn before training, apart from the final evaluation's fresh sequences.
        Xv, yv = generate_batch(cfg.val, cfg.length, cfg.features, cfg.index, rng=ctx.rng)

        perfect = [0]  # consecutive perfect checks

        def check():
            # Twice in a row, cfg.check_every fits apart: the first perfect check often comes
            # while a rare input is still wrong (1 of 100 fresh sequences on one seed in ~30).
            perfect[0] = perfect[0] + 1 if _accuracy(model, Xv, yv) == 1.0 else 0
            return perfect[0] >= cfg.val_passes

    stop_text = (f", stopping at 100% on {cfg.val} validation sequences {cfg.val_passes} checks in a row "
                 f"(checked every {cfg.check_every})"
                 if cfg.check_every else "")
    ctx.print(
        f"echo: value at index {cfg.index} of {cfg.length} one-hot values in [0, {cfg.features}); "
        f"LSTM({cfg.units}); up to {cfg.examples} fits of {cfg.batch_size} fresh example(s){stop_text}"
    )
    seconds, curve, fits = fit_loop(ctx, cfg.examples, make_data, fit_one, "fit", check=check,
                                    check_every=cfg.check_every)
    Xt, yt = generate_batch(cfg.eval, cfg.length, cfg.features, cfg.index, rng=ctx.rng)
    acc = _accuracy(model, Xt, yt)
    ctx.print(f"Accuracy: {percent(acc):f}")
    _show_one(ctx, model, cfg)
    notes = [f"{fits} fits"]
    if cfg.check_every and fits == cfg.examples:
        notes.append(f"validation below 100% after all {fits} fits")
    return TaskResult(
        task="echo",
        metric=f"on {cfg.eval} fresh sequences",
        value=percent(acc),
        target="= 100%",
        passed=acc == 1.0,
        seconds=seconds,
        steps=fits,
        curve=curve,
        curve_x=f"fits of {cfg.batch_size} example(s) (loss: mean of the last 100)",
        notes=notes,
        model=model,
    )


def run_echo_long(cfg, ctx: Context) -> TaskResult:
    """Train on fresh batches until `time_budget` seconds, `max_steps` steps (when > 0) or
    100% on a held-out set.

    Two ways to make the long dependency learnable (both off by default):
    reverse=1 reads the sequence backwards (go_backwards=True), so the value is
    3 steps from the end; curriculum=1 trains on short sequences first and
    doubles the length each time the current length is learnt (>= 95%).
    clipnorm > 0 limits each gradient's norm: without it, lr 0.01 sometimes diverges
    right after the length doubles and the curriculum does not recover.
    """
    if cfg.index >= cfg.length:
        raise ValueError(f"echo-long: --index must be < --length ({cfg.length}), got {cfg.index}.")
    model = build_model(ctx, None if cfg.curriculum else cfg.length, cfg.features, cfg.units, cfg.lr,
                        go_backwards=bool(cfg.reverse), clipnorm=cfg.clipnorm)
    Xv, yv = generate_batch(cfg.eval, cfg.length, cfg.features, cfg.index, rng=ctx.rng)
    tricks = [t for t, on in (("reversed input", cfg.reverse), ("length curriculum", cfg.curriculum)) if on]
    ctx.print(
        f"echo-long: value at index {cfg.index} of {cfg.length} one-hot values in [0, {cfg.features}); "
        f"LSTM({cfg.units}), batch {cfg.batch_size}, lr {cfg.lr}"
        f"{f', clipnorm {cfg.clipnorm:g}' if cfg.clipnorm else ''}{'; ' + ', '.join(tricks) if tricks else ''}; "
        f"up to {cfg.time_budget:g} s" + (f" or {cfg.max_steps} steps" if cfg.max_steps else "")
    )
    length = min(cfg.length, cfg.index + 3) if cfg.curriculum else cfg.length
    steps, seconds, best, acc = 0, 0.0, 0.0, 0.0
    curve, reached = [], None
    # A step budget (max_steps > 0) makes a run the same on any machine: tests use it.
    while seconds < cfg.time_budget and (not cfg.max_steps or steps < cfg.max_steps):
        X, y = generate_batch(cfg.chunk * cfg.batch_size, length, cfg.features, cfg.index, rng=ctx.rng)
        t0 = time.perf_counter()
        hist = model.fit(X, y, epochs=1, batch_size=cfg.batch_size, verbose=0)
        seconds += time.perf_counter() - t0
        steps += cfg.chunk
        acc = _accuracy(model, Xv, yv)
        best = max(best, acc)
        loss = float(hist.history["loss"][-1])
        curve.append((steps, loss))
        at_length = ""
        if length < cfg.length:
            Xs, ys = generate_batch(200, length, cfg.features, cfg.index, rng=ctx.rng)
            acc_here = _accuracy(model, Xs, ys)
            at_length = f" - acc at length {length}: {percent(acc_here):.1f}%"
            if acc_here >= 0.95:
                length = min(cfg.length, 2 * length)
        if ctx.verbose:
            ctx.print(
                f"{seconds:7.1f}s {steps:7d} steps ({steps * cfg.batch_size} examples)"
                f" - loss: {loss:.4f}{at_length} - held-out acc: {percent(acc):.1f}%"
            )
        if acc == 1.0:
            reached = seconds
            break
    ctx.print(f"Accuracy: {percent(acc):f} (best {percent(best):.1f}%) after {steps} steps, {seconds:.0f} s")
    _show_one(ctx, model, cfg)
    notes = [f"{steps} steps x {cfg.batch_size}, lr {cfg.lr}" + (", " + ", ".join(tricks) if tricks else "")]
    if reached is not None:
        notes.append(f"100% after {reached:.1f} s")
    return TaskResult(
        task="echo-long",
        metric=f"on {cfg.eval} held-out sequences",
        value=percent(acc),
        target=f"report ({cfg.time_budget:g} s budget)",
        passed=None,
        seconds=seconds,
        steps=steps,
        curve=curve,
        notes=notes,
        model=model,
    )


ECHO = TaskSpec(
    name="echo",
    summary="echo the value at index 2 of 5 one-hot values (10); single-sample fits until 100% on validation",
    target="= 100% on 100 fresh",
    # The notebook's model, data and lr; its fixed 10,000 fits reached 100% on 7 seeds of 10
    # (38 of 50): training until the validation sequences are all right at two checks in a
    # row, within a budget, reaches it on every seed measured (docs/results.md; one check of
    # 1,000 left 1 of 100 fresh wrong on 1 seed in 20). check_every=0 with examples=10000 is
    # the notebook's run exactly.
    classic=dict(length=5, features=10, index=2, units=25, lr=0.001, batch_size=1, examples=40000,
                 check_every=1000, val=5000, val_passes=2, eval=100),
    quick=dict(length=5, features=10, index=2, units=25, lr=0.003, batch_size=1, examples=40000,
               check_every=1000, val=1000, val_passes=2, eval=100),
    run=run_echo,
)

ECHO_LONG = TaskSpec(
    name="echo-long",
    summary="echo index 2 of 50 one-hot values (100) within a time budget",
    target="report",
    classic=dict(length=50, features=100, index=2, units=25, lr=0.01, batch_size=64, chunk=50,
                 time_budget=300.0, max_steps=0, eval=1000, reverse=0, curriculum=0, clipnorm=0.0),
    quick=dict(length=50, features=100, index=2, units=25, lr=0.01, batch_size=64, chunk=50,
               time_budget=30.0, max_steps=0, eval=500, reverse=0, curriculum=1, clipnorm=1.0),
    run=run_echo_long,
)
