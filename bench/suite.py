"""The per-configuration procedure: same weights everywhere, check, time, measure memory.

`run_all` drives a whole bench run; `worker_main` is the same procedure for one
isolated framework (Keras on a backend other than torch) in a child process,
whose results the parent merges and checks against its own reference.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict
from typing import Dict, List, Optional

import numpy as np

from bench import data, metrics, report, timing
from bench import env as benv
from bench import peak as bench_peak
from bench import frameworks as fwmod
from bench.configs import Config
from bench.metrics import OURS, rel_diff

# Agreement the correctness guard demands before timing.
FIRST_LOSS_RTOL = 1e-4
INFER_ATOL = 1e-4
# After one Adam step: Keras and fusedlstm share Keras's update formula, so they
# must still agree; torch's Adam adds eps outside the bias correction (a
# different effective eps), so its second loss is reported, not checked.
SECOND_LOSS_RTOL = 1e-4
# Under mixed_bfloat16 the frameworks round different operands to bfloat16 (Keras
# computes whole layers in bfloat16, torch.autocast rounds its matmul inputs, we
# round only the GEMM operands), so agreement is to bfloat16's 8 bits, not float32's.
MIXED_TOLERANCES = {"first_loss": 2e-2, "infer": 2e-2, "second_loss": None}
MEMORY_STEPS = 3  # training steps (after a build) the peak-memory measurement covers


def setup_frameworks(names: List[str], threads: int, precision: str = "float32"):
    """-> ({name: Framework ready to run in this process}, {name: status dict})."""
    ready, status = {}, {}
    for name in names:
        try:
            fw = fwmod.create(name)
            fw.precision = precision
            if fw.isolated:
                fw.check_installed()
                status[name] = {"status": "ok", "isolated": True}
                ready[name] = fw
                continue
            fw.setup(threads)
            status[name] = {"status": "ok", "version": fw.version()}
            ready[name] = fw
        except fwmod.Unavailable as exc:
            status[name] = {"status": str(exc)}
    return ready, status


def _first_steps(fw, cfg, weights, x, y, y_ids):
    m = fw.build(cfg, weights)
    b = m.prepare(x, y, y_ids)
    probs = np.asarray(m.to_numpy(m.infer(b)), np.float32)
    if fw.inference_only:
        return m, b, probs, None, None
    first = float(m.train(b))
    second = float(m.train(b))
    return m, b, probs, first, second


def _memory(fw, cfg, weights, x, y, y_ids) -> Optional[float]:
    def work():
        m = fw.build(cfg, weights)
        b = m.prepare(x, y, y_ids)
        if not fw.inference_only:
            for _ in range(MEMORY_STEPS):
                float(m.train(b))
        m.to_numpy(m.infer(b))

    return benv.peak_mib(work)


def run_config(cfg: Config, fws: Dict[str, object], args) -> dict:
    """Everything measured for one config, by the in-process frameworks in `fws`."""
    rng = np.random.default_rng(data.config_seed(cfg.name, args.seed))
    weights = data.model_weights(cfg, rng)
    x, y, y_ids = data.batch(cfg, rng)
    entry = {"name": cfg.name, "describe": cfg.describe(), "config": asdict(cfg), "errors": {}, "skipped": {},
             "check": {"first_loss": {}, "second_loss": {}, "infer_max_abs_diff": {}, "probs": {}},
             "results": {}}
    models, batches = {}, {}
    for name, fw in fws.items():
        try:
            m, b, probs, l1, l2 = _first_steps(fw, cfg, weights, x, y, y_ids)
        except fwmod.Unavailable as exc:  # cannot run this model at all (a layer it lacks): a row saying so
            entry["skipped"][name] = str(exc)
            continue
        except Exception as exc:  # a framework's failure is a result row, not the end of the run
            entry["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        models[name], batches[name] = m, b
        if l1 is not None:
            entry["check"]["first_loss"][name] = l1
            entry["check"]["second_loss"][name] = l2
        entry["check"]["probs"][name] = probs
    if models:
        trainable = {n: m for n, m in models.items() if not fws[n].inference_only}
        train = timing.interleaved({n: (lambda m=m, b=batches[n]: m.train(b)) for n, m in trainable.items()},
                                   block_s=args.block_s, rounds=args.rounds) if trainable else {}
        infer = timing.interleaved({n: (lambda m=m, b=batches[n]: m.infer(b)) for n, m in models.items()},
                                   block_s=args.block_s, rounds=args.rounds)
        for n in models:
            entry["results"][n] = {"train_ms": timing.summary_ms(train[n]) if n in train else None,
                                   "infer_ms": timing.summary_ms(infer[n])}
        del models, batches
        for n, fw in fws.items():
            if n in entry["results"]:
                entry["results"][n]["peak_mib"] = _memory(fw, cfg, weights, x, y, y_ids)
    return entry


def check_entry(entry: dict, precision: str = "float32") -> None:
    """Compare every framework's first outputs with the reference (fusedlstm if it ran)."""
    mixed = precision != "float32"
    first_rtol = MIXED_TOLERANCES["first_loss"] if mixed else FIRST_LOSS_RTOL
    infer_atol = MIXED_TOLERANCES["infer"] if mixed else INFER_ATOL
    chk = entry["check"]
    probs = chk.pop("probs")
    names = list(dict.fromkeys(list(chk["first_loss"]) + list(probs)))
    warnings: List[str] = []
    chk["reference"] = ref = OURS if OURS in names else (names[0] if names else None)
    if ref is not None:
        for n in names:
            if n in chk["first_loss"] and ref in chk["first_loss"]:
                d = rel_diff(chk["first_loss"][n], chk["first_loss"][ref])
                if d > first_rtol:
                    warnings.append(f"first-step loss {n} {chk['first_loss'][n]:.7g} vs {ref} "
                                    f"{chk['first_loss'][ref]:.7g}: rel diff {d:.2e} > {first_rtol:g}")
            if n in probs and ref in probs:
                if probs[n].shape != probs[ref].shape:
                    warnings.append(f"inference output shape {n} {probs[n].shape} vs {ref} {probs[ref].shape}")
                    continue
                a = float(np.max(np.abs(probs[n] - probs[ref])))
                chk["infer_max_abs_diff"][n] = a
                if not a <= infer_atol:
                    warnings.append(f"inference output {n} vs {ref}: max abs diff {a:.2e} > {infer_atol:g}")
        # Keras's bfloat16 layers and ours round different values: one step apart is not a check there.
        keras_like = [] if mixed else [n for n in chk["first_loss"] if n == OURS or n.startswith("keras")]
        for n in keras_like:
            if n != keras_like[0]:
                d = rel_diff(chk["second_loss"][n], chk["second_loss"][keras_like[0]])
                if d > SECOND_LOSS_RTOL:
                    warnings.append(f"loss after one Adam step {n} vs {keras_like[0]}: rel diff {d:.2e} > "
                                    f"{SECOND_LOSS_RTOL:g}")
    for n, err in entry["errors"].items():
        warnings.append(f"{n} failed: {err}")
    chk["warnings"] = warnings
    chk["ok"] = not warnings and ref is not None


# --- isolated frameworks (a worker process each) -----------------------------

def _worker_cmd(args, name: str, out: str) -> List[str]:
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"),
           "--worker", name, "--worker-out", out, "--threads", str(args.threads),
           "--configs", ",".join(c.name for c in args.config_list), "--seed", str(args.seed),
           "--block-ms", str(args.block_s * 1e3), "--rounds", str(args.rounds), "--precision", args.precision]
    return cmd + (["--quick"] if args.quick else [])


def run_isolated(args, name: str) -> dict:
    """Run one framework's configs in a worker; -> {"status", "version", "configs": {cfg: entry}}."""
    with tempfile.TemporaryDirectory(prefix="fusedlstm-bench-") as tmp:
        proc = subprocess.run(_worker_cmd(args, name, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        path = os.path.join(tmp, "result.json")
        if proc.returncode != 0 or not os.path.exists(path):
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            return {"status": f"worker failed (exit {proc.returncode}): {tail}", "configs": {}}
        with open(path) as f:
            out = json.load(f)
        for cname, entry in out["configs"].items():
            p = os.path.join(tmp, f"probs-{cname}.npy")
            if os.path.exists(p):
                entry["check"]["probs"] = {name: np.load(p)}
        return out


def worker_main(args) -> int:
    name = args.worker
    fw = fwmod.create(name)
    fw.precision = args.precision
    try:
        fw.setup(args.threads)
    except fwmod.Unavailable as exc:
        _dump(args.worker_out, {"status": str(exc), "configs": {}})
        return 0
    out = {"status": "ok", "version": fw.version(), "isolated": True, "configs": {}}
    for cfg in args.config_list:
        entry = run_config(cfg, {name: fw}, args)
        probs = entry["check"].pop("probs")
        if name in probs:
            np.save(os.path.join(args.worker_out, f"probs-{cfg.name}.npy"), probs[name])
        out["configs"][cfg.name] = entry
    _dump(args.worker_out, out)
    return 0


def _dump(directory: str, obj: dict) -> None:
    with open(os.path.join(directory, "result.json"), "w") as f:
        json.dump(obj, f)


def _merge(entry: dict, name: str, sub: Optional[dict]) -> None:
    if sub is None:
        return
    for key in ("first_loss", "second_loss", "probs"):
        entry["check"][key].update(sub["check"].get(key, {}))
    entry["results"].update(sub["results"])
    entry["errors"].update(sub["errors"])
    entry["skipped"].update(sub.get("skipped", {}))
    if name in sub["results"]:
        entry["results"][name]["note"] = "timed in its own process (Keras's backend is per process), not interleaved"


# --- the whole run -----------------------------------------------------------

def system_info(args, reexec: dict, status: dict, fws: dict) -> dict:
    cpu = benv.cpu_model()
    info = {"cpu_model": cpu, "cpu_slug": benv.slug(cpu), "threads": args.threads,
            "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "reexec": {"happened": bool(reexec), "changes": reexec, "note": benv.describe_reexec(reexec)},
            "blas_env": {k: os.environ.get(k) for k in benv.BLAS_OVERRIDES + benv.THREAD_VARS}}
    ours = fws.get(OURS)
    if ours is not None and status.get(OURS, {}).get("status") == "ok":
        info["fusedlstm_build_info"] = ours.build_info()
    return info


def _load() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_all(args, reexec: dict, argv: List[str]) -> int:
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    if load_before is not None and load_before > 1.0:
        # Spinning OpenMP barriers (torch) degrade by orders of magnitude when
        # other processes hold the cores: such timings say little.
        print(f"bench: WARNING: load average {load_before:.1f} before the run: other processes are busy; "
              "timings will be noisy")
    fws, status = setup_frameworks(args.framework_names, args.threads, args.precision)
    for n, s in status.items():
        print(f"bench: {n}: {s.get('version') or s['status']}")
    local = {n: fw for n, fw in fws.items() if not fw.isolated}
    sgemm = metrics.sgemm_gflops(repeats=3 if args.quick else 7)
    print(f"bench: numpy sgemm 2048² float32: {sgemm['gflops']:.1f} GFLOP/s")
    peak = bench_peak.measure(args.threads, repeats=1 if args.quick else 3)
    peak_at = peak and peak.get("bfloat16" if args.precision == "mixed_bfloat16" else "float32")
    if peak:
        print(f"bench: CPU peak ({args.threads} threads): float32 {peak['float32']:.1f} GFLOP/s, "
              f"bfloat16 {peak['bfloat16'] or '–'} GFLOP/s")
    entries = []
    configs = [] if args.e2e_only else args.config_list
    isolated = {}
    for n, fw in fws.items():
        if fw.isolated and configs:
            print(f"bench: {n}: running in a worker process")
            isolated[n] = run_isolated(args, n)
            status[n].update({k: v for k, v in isolated[n].items() if k in ("status", "version")})
    for cfg in configs:
        print(f"bench: {cfg.name} ({cfg.describe()})", flush=True)
        entry = run_config(cfg, local, args)
        for n, sub in isolated.items():
            _merge(entry, n, sub["configs"].get(cfg.name))
        check_entry(entry, args.precision)
        metrics.derive(cfg, entry, sgemm["gflops"], peak_at)
        entries.append(entry)
        for w in entry["check"]["warnings"]:
            print(f"bench: WARNING {cfg.name}: {w}")
    stream_result = None
    if configs and OURS in local and args.streaming:
        from bench import streaming

        stream_result = streaming.run(args)
    e2e_result = None
    if args.e2e:
        from bench import e2e

        e2e_result = e2e.run(local, args)
    result = {
        "schema": 1, "created": started.isoformat(timespec="seconds"),
        "seconds": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
        "argv": argv, "quick": args.quick, "seed": args.seed, "precision": args.precision,
        "timing": {"block_ms": args.block_s * 1e3, "rounds": args.rounds},
        "system": {**system_info(args, reexec, status, fws), "load_average": {"before": load_before, "after": _load()}},
        "frameworks": status, "sgemm": sgemm, "peak": peak,
        "configs": entries, "streaming": stream_result, "e2e": e2e_result,
        "targets": metrics.targets(configs, entries, e2e_result, stream_result, args.precision,
                                   amx="amx_bf16" in benv.cpu_flags()),
    }
    out_dir = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    stem = result["system"]["cpu_slug"] + ("" if args.precision == "float32" else f"-{args.precision}") + \
        ("-quick" if args.quick else "")
    files, md = report.write(result, out_dir, stem)
    print(md)
    for f in files:
        print(f"bench: wrote {f}")
    failed = (any(e["errors"] or not e["check"]["ok"] for e in entries) or bool((e2e_result or {}).get("errors"))
              or any(s["errors"] for s in stream_result or []))
    return 1 if failed else 0
