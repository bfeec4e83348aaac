"""Addition as sequence-to-sequence: read '3+10', write '13'.

Classic: two ints in [1, 10] as a right-aligned 5-char string over
'0123456789+ ', the sum as 2 chars. LSTM(100) -> RepeatVector(2) -> LSTM(50,
return_sequences) -> TimeDistributed(Dense(12, softmax)), categorical
cross-entropy, Adam; epochs of 1000 fresh problems, batch 10. Target: >= 99%
of characters right on 1000 fresh problems (whole answers reported). The
notebook's 30 epochs missed it on 3 seeds of 20; here training goes on until
1000 validation problems are all right (checked after each epoch), within 60
epochs (`--check-every 0 --epochs 30`: the notebook's run).
"""

from .common import Context, TaskResult, TaskSpec, fit_loop, percent
from .encoders import ADDITION_ALPHABET, decode_addition, one_hot_decode
from .generators import addition_dataset, addition_widths

VAL_BAR = 1.0  # per-char accuracy on the validation problems that ends training


def run(cfg, ctx: Context) -> TaskResult:
    K = ctx.engine
    in_width, out_width = addition_widths(cfg.terms, cfg.largest)
    n_symbols = len(ADDITION_ALPHABET)
    model = K.models.Sequential(
        [
            K.layers.Input(shape=(in_width, n_symbols)),
            K.layers.LSTM(cfg.units),
            K.layers.RepeatVector(out_width),
            K.layers.LSTM(cfg.units2, return_sequences=True),
            K.layers.TimeDistributed(K.layers.Dense(n_symbols, activation="softmax")),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=ctx.adam(cfg.lr), metrics=["acc"])

    def make_data():
        X, y, _, _ = addition_dataset(cfg.examples, cfg.terms, cfg.largest, rng=ctx.rng)
        return X, y

    def fit_one(X, y):
        return model.fit(X, y, epochs=1, batch_size=cfg.batch_size, verbose=0)

    check = None
    if cfg.check_every:
        # Drawn before training, apart from the final evaluation's fresh problems. Stopping at
        # 99.5% left 99.1% on fresh problems on one seed of 20: all right leaves a margin.
        Xv, yv, _, _ = addition_dataset(cfg.val, cfg.terms, cfg.largest, rng=ctx.rng)

        def check():
            hit = one_hot_decode(model.predict(Xv, batch_size=256, verbose=0)) == one_hot_decode(yv)
            return float(hit.mean()) >= VAL_BAR

    stop_text = (f", stopping at {percent(VAL_BAR):g}% per char on {cfg.val} validation problems"
                 if cfg.check_every else "")
    ctx.print(
        f"addition: {cfg.terms} terms in [1, {cfg.largest}]; LSTM({cfg.units}) -> LSTM({cfg.units2}); "
        f"up to {cfg.epochs} epochs of {cfg.examples} fresh problems, batch {cfg.batch_size}{stop_text}"
    )
    seconds, curve, epochs = fit_loop(ctx, cfg.epochs, make_data, fit_one, "epoch", window=1, check=check,
                                      check_every=cfg.check_every)
    X, y, questions, answers = addition_dataset(cfg.eval, cfg.terms, cfg.largest, rng=ctx.rng)
    yhat = model.predict(X, batch_size=256, verbose=0)
    hit = one_hot_decode(yhat) == one_hot_decode(y)
    per_char, whole = float(hit.mean()), float(hit.all(axis=1).mean())
    predicted = decode_addition(yhat)
    for i in range(10):
        ctx.print(f"{questions[i]} = Expected:{answers[i]!r} Predicted:{predicted[i]!r}"
                  + ("" if predicted[i] == answers[i] else "  (wrong)"))
    ctx.print(f"Per-char accuracy on {cfg.eval} fresh problems: {percent(per_char):.2f}%; whole answers: {percent(whole):.2f}%")
    return TaskResult(
        task="addition",
        metric=f"per char, {cfg.eval} fresh problems",
        value=percent(per_char),
        target=">= 99% per char",
        passed=per_char >= 0.99,
        seconds=seconds,
        steps=epochs * -(-cfg.examples // cfg.batch_size),
        curve=curve,
        curve_x=f"epochs of {cfg.examples} fresh problems",
        notes=[f"whole answers {percent(whole):.1f}%", f"{epochs} epochs"],
        model=model,
    )


ADDITION = TaskSpec(
    name="addition",
    summary="'3+10' -> '13' with an encoder-decoder: LSTM(100) -> RepeatVector(2) -> LSTM(50)",
    target=">= 99% per char",
    # The notebook's 30 epochs of 1,000 missed 99% on 3 seeds of 20: up to 60 epochs, stopping
    # once the validation problems are right (docs/results.md). check_every=0 runs every epoch.
    classic=dict(terms=2, largest=10, units=100, units2=50, lr=0.001, batch_size=10, epochs=60, examples=1000,
                 check_every=1, val=1000, eval=1000),
    quick=dict(terms=2, largest=10, units=100, units2=50, lr=0.003, batch_size=10, epochs=60, examples=1000,
               check_every=1, val=1000, eval=1000),
    run=run,
)
