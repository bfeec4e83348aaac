"""Measure the Keras parity differences over several seeds: the tables in docs/keras-parity.md.

    KERAS_BACKEND=torch PYTHONPATH=python python tests/keras_parity_report.py --seeds 5
    ... --cases test_gru_simple_rnn_keras   (the GRU / SimpleRNN table)
    KERAS_BACKEND=torch PYTHONPATH=python python tests/keras_parity_report.py --suite layers --seeds 5

Runs every case of test_keras_parity.py (or of --cases; or, with --suite layers, of
test_keras_parity_layers.py: 10 Adam steps) with the same checks (which still assert the
tolerances) and prints, per case, the largest difference seen over the seeds.
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_BACKEND", "torch")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--cases", default="test_keras_parity", help="the test module whose CASES to run")
    parser.add_argument("--suite", choices=("lstm", "layers"), default="lstm")
    args = parser.parse_args(argv)
    if args.suite == "layers":
        return layers_report(args)
    warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
    import keras

    import keras_parity_support as ps
    import importlib

    CASES = importlib.import_module(args.cases).CASES

    rows = []
    for param in CASES:
        case = param.values[0]
        worst = {"pred": 0.0, "loss": 0.0, "grad": 0.0}
        train = {opt: [0.0, 0.0] for opt in ("adam", "sgd", "rmsprop")}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed)
            x, y = case["make_xy"](rng)
            sw = case["weights"](rng) if case["weights"] else None
            pair = ps.Pair(keras, case["build"], rng).compile(case["loss"])
            worst["pred"] = max(worst["pred"], ps.check_predictions(pair, x, f"{param.id} seed={seed}"))
            if not case["train"]:
                continue
            loss_err, grad_err = ps.check_loss_and_gradients(pair, x, y, f"{param.id} seed={seed}", sw)
            worst["loss"] = max(worst["loss"], loss_err)
            worst["grad"] = max(worst["grad"], grad_err)
            for opt in train:
                pair = ps.Pair(keras, case["build"], rng).compile(case["loss"], optimizer=opt)
                _, _, l_err, w_err = ps.train_steps(pair, x, y, 20, sw)
                train[opt] = [max(train[opt][0], l_err), max(train[opt][1], w_err)]
        rows.append((param.id, worst, train, case["train"]))
        print(f"done {param.id}", file=sys.stderr)
    print(f"| case | predictions | loss (rel) | gradients (rel) | 20 steps Adam: loss / weights | SGD | RMSprop |")
    print("|---|---|---|---|---|---|---|")
    for name, w, t, trained in rows:
        if not trained:
            print(f"| {name} | {w['pred']:.1e} | - | - | - | - | - |")
            continue
        steps = " | ".join(f"{t[o][0]:.1e} / {t[o][1]:.1e}" for o in ("adam", "sgd", "rmsprop"))
        print(f"| {name} | {w['pred']:.1e} | {w['loss']:.1e} | {w['grad']:.1e} | {steps} |")


def layers_report(args):
    """Per case of test_keras_parity_layers: predictions (max abs diff), loss and gradients of one
    batch (relative), and after 10 Adam steps the loss curve and final weights (relative)."""
    warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
    warnings.filterwarnings("ignore", message=".*was passed an input with a mask attached")
    warnings.filterwarnings("ignore", message="You passed `rms_scaling=True`")
    import keras

    import keras_parity_support as ps
    from test_keras_parity_layers import ADAM_STEPS, CASES, Pair

    print(f"| case | predictions (max abs) | loss (rel) | gradients (rel) | {ADAM_STEPS} Adam steps: loss / weights (rel) |")
    print("|---|---|---|---|---|")
    for param in CASES:
        case = param.values[0]
        w = {"pred": 0.0, "loss": 0.0, "grad": 0.0, "steps_loss": 0.0, "steps_w": 0.0}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed)
            x, y = case["make_x"](rng), case["make_y"](rng)
            pair = Pair(keras, case["build"], rng).compile(case["loss"])
            w["pred"] = max(w["pred"], ps.check_predictions(pair, x, f"{param.id} seed={seed}"))
            if not case["train"]:
                continue
            le, ge = ps.check_loss_and_gradients(pair, x, y, f"{param.id} seed={seed}")
            w["loss"], w["grad"] = max(w["loss"], le), max(w["grad"], ge)
            pair = Pair(keras, case["build"], rng).compile(case["loss"], optimizer="adam")
            _, _, sl, sw = ps.train_steps(pair, x, y, ADAM_STEPS)
            w["steps_loss"], w["steps_w"] = max(w["steps_loss"], sl), max(w["steps_w"], sw)
        print(f"done {param.id}", file=sys.stderr)
        if not case["train"]:
            print(f"| {param.id} | {w['pred']:.1e} | - | - | - (inference only) |")
        else:
            print(f"| {param.id} | {w['pred']:.1e} | {w['loss']:.1e} | {w['grad']:.1e} | "
                  f"{w['steps_loss']:.1e} / {w['steps_w']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
