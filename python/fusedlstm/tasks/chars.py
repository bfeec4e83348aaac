"""Character language models on Shakespeare's sonnets (or any UTF-8 text).

chars (many-to-one): 40-char windows -> the next char. Embedding(27, 64) ->
LSTM(64) -> Dense(27, softmax), sparse categorical cross-entropy, Adam, batch
128, 10 epochs; 100 chars sampled after each epoch. Targets on the sonnets:
loss <= 2.45 after epoch 1 and <= 1.85 after epoch 5.

chars-seq (many-to-many): the window -> the window shifted by one char.
Embedding(27, 64) -> LSTM(256, return_sequences) -> TimeDistributed(Dense(27,
softmax)), Adam 3e-3 (chars uses Keras's default 1e-3); text is sampled by a stateful twin (batch 1, one char per call, the
trained weights) that carries its state from char to char. Target: loss <= 2.10
after epoch 1.

`--cell gru` builds the same models with GRU(units) in place of LSTM(units) (same
sizes, data and training).
"""

import time

import numpy as np

from .common import CELLS, Context, TaskResult, TaskSpec, cell_label, recurrent_layer, task_label
from .encoders import N_CHARS, decode_text, encode_text
from .engine import reset_states
from .generators import char_windows, load_sonnets, load_text


def sample_index(probs, temperature, rng):
    """Draw an id from `probs` sharpened (t < 1) or flattened (t > 1) by temperature."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if temperature <= 0:
        return int(np.argmax(probs))
    logits = np.log(np.maximum(probs, 1e-12)) / temperature
    p = np.exp(logits - logits.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _text(cfg):
    return load_sonnets() if cfg.text is None else load_text(cfg.text)


def _subset(X, y, n):
    """n windows spread evenly over the text (all when n is 0 or too large)."""
    if not n or n >= len(X):
        return X, y
    keep = np.linspace(0, len(X) - 1, n).astype(np.int64)
    return X[keep], y[keep]


def _seed_window(ctx, ids, window):
    start = int(ctx.rng.integers(0, len(ids) - window))
    return ids[start: start + window]


def _epoch_checks(cfg, losses, bars):
    """[(epoch, loss, bar, ok)] for the bars the run reached."""
    return [(e, losses[e - 1], bar, losses[e - 1] <= bar) for e, bar in bars if e <= len(losses)]


def _bars(cfg):
    """The epoch bars of the run's cell: its own where measured to differ, else LSTM's."""
    return getattr(cfg, f"_bars_{cfg.cell}", cfg._bars)


def _result(name, cfg, losses, seconds, steps, curve, model):
    bars = _bars(cfg)
    checks = _epoch_checks(cfg, losses, bars)
    custom = cfg.text is not None
    target = ", ".join(f"loss <= {bar:.2f} @{e}" for e, bar in bars)
    return TaskResult(
        task=task_label(name, cfg.cell),
        metric=f"loss after epoch {len(losses)}",
        value=losses[-1],
        unit="loss",
        target=target if not custom else "report (custom text)",
        passed=None if custom or not checks else all(ok for *_, ok in checks),
        seconds=seconds,
        steps=steps,
        curve=curve,
        notes=[f"@{e}: {loss:.3f}{'' if ok or custom else ' MISSED'}" for e, loss, bar, ok in checks],
        model=model,
    )


class _Timer:
    """Wall time of fit minus the time spent sampling inside its callbacks."""

    def __init__(self):
        self.excluded = 0.0

    def exclude(self, fn):
        def wrapped(*args):
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.excluded += time.perf_counter() - t0

        return wrapped


def _fit(ctx, model, X, y, cfg, sampler):
    K = ctx.engine
    timer = _Timer()
    losses_curve = []
    steps_per_epoch = -(-len(X) // cfg.batch_size)

    def on_epoch_end(epoch, logs):
        losses_curve.append(((epoch + 1) * steps_per_epoch, float(logs["loss"])))

    # Sample once the progress bar has finished its line: the bar is drawn by
    # the ProgbarLogger that fit appends after our callbacks, so epoch e's
    # sample is printed when epoch e+1 begins (or training ends).
    def on_epoch_begin(epoch, logs):
        if epoch > 0:
            sampler(epoch - 1)

    def on_train_end(logs):
        if losses_curve:
            sampler(len(losses_curve) - 1)

    cb = K.callbacks.LambdaCallback(
        on_epoch_end=on_epoch_end,
        on_epoch_begin=timer.exclude(on_epoch_begin),
        on_train_end=timer.exclude(on_train_end),
    )
    t0 = time.perf_counter()
    hist = model.fit(X, y, batch_size=cfg.batch_size, epochs=cfg.epochs, callbacks=[cb], verbose=1 if ctx.verbose else 0)
    seconds = time.perf_counter() - t0 - timer.excluded
    return [float(v) for v in hist.history["loss"]], seconds, steps_per_epoch * len(hist.history["loss"]), losses_curve


def run_chars(cfg, ctx: Context) -> TaskResult:
    K = ctx.engine
    ids = encode_text(_text(cfg))
    X, y = _subset(*char_windows(ids, cfg.window), cfg.windows)
    model = K.models.Sequential(
        [
            K.layers.Input(shape=(cfg.window,), dtype="int32"),
            K.layers.Embedding(N_CHARS, cfg.embed),
            recurrent_layer(K, cfg.cell)(cfg.units),
            K.layers.Dense(N_CHARS, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=ctx.adam(cfg.lr), metrics=["acc"])
    ctx.print(f"chars: {len(X)} windows of {cfg.window} chars; {cell_label(cfg.cell, cfg.units)}, batch {cfg.batch_size}, {cfg.epochs} epochs")

    def sampler(epoch):
        seed = _seed_window(ctx, ids, cfg.window)
        window = list(seed)
        out = []
        for _ in range(cfg.sample):
            probs = model.predict(np.array([window[-cfg.window:]], dtype=np.int32), verbose=0)[0]
            nxt = sample_index(probs, cfg.temperature, ctx.rng)
            out.append(nxt)
            window.append(nxt)
        ctx.print(f'----- epoch {epoch + 1}, temperature {cfg.temperature}, seed: "{decode_text(seed)}"')
        ctx.print(decode_text(out))

    losses, seconds, steps, curve = _fit(ctx, model, X, y, cfg, sampler)
    return _result("chars", cfg, losses, seconds, steps, curve, model)


def build_seq_model(K, cfg, stateful=False):
    shape = dict(batch_shape=(1, 1)) if stateful else dict(shape=(cfg.window,))
    return K.models.Sequential(
        [
            K.layers.Input(dtype="int32", **shape),
            K.layers.Embedding(N_CHARS, cfg.embed),
            recurrent_layer(K, cfg.cell)(cfg.units, return_sequences=True, stateful=stateful),
            K.layers.TimeDistributed(K.layers.Dense(N_CHARS, activation="softmax")),
        ]
    )


def run_chars_seq(cfg, ctx: Context) -> TaskResult:
    K = ctx.engine
    ids = encode_text(_text(cfg))
    X, y = _subset(*char_windows(ids, cfg.window, many_to_many=True), cfg.windows)
    model = build_seq_model(K, cfg)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=ctx.adam(cfg.lr), metrics=["acc"])
    twin = build_seq_model(K, cfg, stateful=True)
    ctx.print(
        f"chars-seq: {len(X)} windows of {cfg.window} chars -> shifted by one; {CELLS[cfg.cell]}({cfg.units}, "
        f"return_sequences), batch {cfg.batch_size}, {cfg.epochs} epochs"
    )

    def sampler(epoch):
        # The twin reads the seed one char per call, then feeds back its own
        # samples: its carried state replaces the 40-char window.
        twin.set_weights(model.get_weights())
        reset_states(twin)
        seed = _seed_window(ctx, ids, cfg.window)
        for c in seed[:-1]:
            twin.predict(np.array([[c]], dtype=np.int32), verbose=0)
        current, out = int(seed[-1]), []
        for _ in range(cfg.sample):
            probs = twin.predict(np.array([[current]], dtype=np.int32), verbose=0)[0, -1]
            current = sample_index(probs, cfg.temperature, ctx.rng)
            out.append(current)
        ctx.print(f'----- epoch {epoch + 1}, temperature {cfg.temperature}, seed: "{decode_text(seed)}"')
        ctx.print(decode_text(out))

    losses, seconds, steps, curve = _fit(ctx, model, X, y, cfg, sampler)
    return _result("chars-seq", cfg, losses, seconds, steps, curve, model)


_COMMON = dict(cell="lstm", text=None, window=40, embed=64, lr=0.001, batch_size=128, temperature=0.5, sample=100, windows=0)

CHARS = TaskSpec(
    name="chars",
    summary="next char after 40 chars of the sonnets: Embedding(27,64) -> LSTM(64) -> Dense(27)",
    target="loss <= 2.45 @1, <= 1.85 @5",
    classic=dict(_COMMON, units=64, epochs=10, _bars=((1, 2.45), (5, 1.85))),
    quick=dict(_COMMON, units=64, epochs=2, lr=0.01, windows=30000, _bars=((1, 2.45),)),
    run=run_chars,
)

CHARS_SEQ = TaskSpec(
    name="chars-seq",
    summary="many-to-many chars: LSTM(256, return_sequences), sampled by a stateful twin",
    target="loss <= 2.10 @1",
    # Adam 3e-3: at Keras's default 1e-3 the epoch-1 loss (2.03-2.14 over seeds) missed the bar on
    # about one seed in six; 3e-3 gave 1.75 on the worst of them (docs/results.md).
    classic=dict(_COMMON, units=256, epochs=3, lr=0.003, _bars=((1, 2.10),)),
    quick=dict(_COMMON, units=256, epochs=1, lr=0.01, windows=24000, _bars=((1, 2.10),)),
    run=run_chars_seq,
)
