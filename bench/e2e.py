"""End-to-end runs: what a user waits for, not one step.

(a) Echo task to 100%: sequences of 5 values in [0, 10), one-hot; the target is
    the value at index 2. LSTM(25) -> Dense(10, softmax), categorical
    cross-entropy, Adam, batch-1 `train_on_batch` fits; every 250 fits the model
    predicts 100 fresh sequences, and the run ends at the first evaluation with
    100% accuracy (or at the cap, reported as a cap hit). Per seed, the weights
    (Keras's initialisers, drawn in NumPy) and the whole sample stream are the
    same for every framework, so the luck of the draw cannot pose as speed.
    Reported: wall time to 100% (fits plus evaluations), fits needed, ms per
    fit, each the median over the seeds.
(b) One epoch of the chars model (Embedding(27, 64) -> LSTM(64) -> Dense(27,
    softmax)) on all 40-character windows of Shakespeare's sonnets (95,610 of
    them), batch 128, shuffled: wall time and the epoch's mean loss.

The sonnets text is looked for at --sonnets, $FUSEDLSTM_SONNETS, the copy
fusedlstm ships (fusedlstm/data/sonnets.txt), then <repo>/../shared/data/.
The 27 symbols are fusedlstm.tasks' encoding: a-z (either case) -> 1..26,
anything else -> 0.
"""

import importlib.util
import os
import statistics
import time
import traceback
from typing import Dict, Optional

import numpy as np

from bench import data
from bench.configs import Config
from bench.metrics import OURS

ECHO = Config("echo_task", 1, 5, "onehot", 10, 25, 10, "last")
ECHO_INDEX = 2
EVAL_EVERY = 250
EVAL_SIZE = 100
CHARS = Config("chars_epoch", 128, 40, "ids", 27, 64, 27, "last", embed_dim=64)


# --- (a) echo task -----------------------------------------------------------

def echo_stream(seed: int, cap: int):
    """(weights, train (x, y, y_ids), eval sets [(x, y, y_ids)]) for one seed."""
    rng = np.random.default_rng(seed)
    weights = data.model_weights(ECHO, rng)

    def encode(seqs):
        ids = seqs[..., ECHO_INDEX]
        return data.onehot(seqs, ECHO.features), data.onehot(ids, ECHO.classes), ids.astype(np.int64)

    train = encode(rng.integers(0, ECHO.features, (cap, ECHO.steps)))
    evals = [encode(rng.integers(0, ECHO.features, (EVAL_SIZE, ECHO.steps))) for _ in range(cap // EVAL_EVERY)]
    return weights, train, evals


def echo_run(fw, weights, train, evals, cap: int) -> dict:
    m = fw.build(ECHO, weights)
    xs, ys = m.prepare(*train)
    prepared = [m.prepare(*e) for e in evals]
    fit_s = 0.0
    t0 = time.perf_counter()
    perf = time.perf_counter
    for i in range(cap):
        f0 = perf()
        m.train((xs[i:i + 1], ys[i:i + 1]))
        fit_s += perf() - f0
        if (i + 1) % EVAL_EVERY == 0:
            ev = prepared[(i + 1) // EVAL_EVERY - 1]
            probs = m.to_numpy(m.infer(ev))
            if np.mean(np.argmax(probs, axis=-1) == evals[(i + 1) // EVAL_EVERY - 1][2]) == 1.0:
                return {"fits": i + 1, "seconds": perf() - t0, "ms_per_fit": fit_s / (i + 1) * 1e3,
                        "capped": False}
    return {"fits": cap, "seconds": perf() - t0, "ms_per_fit": fit_s / cap * 1e3, "capped": True}


def echo_task(fws: Dict[str, object], seeds: int, cap: int, base_seed: int, errors: dict) -> dict:
    per = {n: {"runs": []} for n in fws}
    for k in range(seeds):
        seed = base_seed * 1000 + k
        weights, train, evals = echo_stream(seed, cap)
        for n, fw in fws.items():
            if n in errors:
                continue
            try:
                run = echo_run(fw, weights, train, evals, cap)
            except Exception as exc:
                errors[n] = f"echo task: {type(exc).__name__}: {exc}"
                traceback.print_exc()
                continue
            run["seed"] = seed
            per[n]["runs"].append(run)
            print(f"bench: e2e echo seed {seed} {n}: {run['fits']} fits, {run['seconds']:.2f} s"
                  f"{' (cap hit)' if run['capped'] else ''}", flush=True)
    for n, p in per.items():
        runs = p["runs"]
        if runs:
            # A capped run's time is a lower bound; it stays in the median and is counted.
            p["median_seconds"] = statistics.median(r["seconds"] for r in runs)
            p["median_fits"] = statistics.median(r["fits"] for r in runs)
            p["median_ms_per_fit"] = statistics.median(r["ms_per_fit"] for r in runs)
            p["cap_hits"] = sum(r["capped"] for r in runs)
    return {"task": f"echo: 10 values, length 5, index 2; batch-1 fits, {EVAL_SIZE} fresh sequences "
                    f"evaluated every {EVAL_EVERY} fits", "seeds": seeds, "cap": cap, "per_framework": per}


# --- (b) one chars epoch -----------------------------------------------------

def find_sonnets(explicit: Optional[str]) -> Optional[str]:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.find_spec("fusedlstm")  # locates the package without importing it
    shipped = [os.path.join(d, "data", "sonnets.txt") for d in (spec.submodule_search_locations or [])] if spec else []
    for p in [explicit, os.environ.get("FUSEDLSTM_SONNETS"), *shipped,
              os.path.join(os.path.dirname(repo), "shared", "data", "sonnets.txt")]:
        if p and os.path.isfile(p):
            return p
    return None


def char_windows(text: str, steps: int):
    """Window i is ids[i:i+steps]; its target the character after it."""
    codes = np.frombuffer(text.lower().encode("ascii", "replace"), np.uint8).astype(np.int32) - (ord("a") - 1)
    ids = np.where((codes >= 1) & (codes <= 26), codes, 0).astype(np.int32)
    n = len(ids) - steps
    if n < 1:
        raise ValueError(f"text: need more than {steps} characters, got {len(ids)}")
    x = np.lib.stride_tricks.sliding_window_view(ids, steps)[:n].copy()
    return x, ids[steps:].copy()


def chars_epoch(fws, path: Optional[str], limit: Optional[int], seed: int, errors: dict) -> dict:
    if path is None:
        return {"skipped": "sonnets text not found (give --sonnets PATH)"}
    with open(path, encoding="utf-8") as f:
        x, y = char_windows(f.read(), CHARS.steps)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    weights = data.model_weights(CHARS, np.random.default_rng(seed))
    per = {}
    for n, fw in fws.items():
        if n in errors:
            continue
        try:
            secs, loss = fw.fit_epoch(CHARS, weights, x, y, y.astype(np.int64), CHARS.batch, seed)
        except Exception as exc:
            errors[n] = f"chars epoch: {type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        per[n] = {"seconds": secs, "loss": loss}
        print(f"bench: e2e chars epoch {n}: {secs:.2f} s, loss {loss:.4f}", flush=True)
    return {"source": os.path.basename(path), "windows": int(len(x)), "batch": CHARS.batch, "per_framework": per}


def _ratios(per: dict, key: str) -> dict:
    ours = per.get(OURS, {}).get(key)
    return {n: p[key] / ours for n, p in per.items() if n != OURS and ours and p.get(key) is not None}


def run(fws: Dict[str, object], args) -> dict:
    fws = {n: fw for n, fw in fws.items() if not fw.inference_only}  # e2e runs train
    errors: Dict[str, str] = {}
    echo = echo_task(fws, args.e2e_seeds, args.e2e_cap, args.seed, errors)
    chars = chars_epoch(fws, find_sonnets(args.sonnets), args.chars_windows, args.seed, errors)
    return {"echo": echo, "chars": chars, "errors": errors,
            "ratios": {"echo time to 100%": _ratios(echo["per_framework"], "median_seconds"),
                       "chars one epoch": _ratios(chars.get("per_framework", {}), "seconds")},
            "note": "frameworks that need a process of their own (keras_tf) are not run end-to-end"}
