"""Writes a bench result as JSON, a markdown report, and a PNG chart of the ratios.

matplotlib is optional: without it the PNG is skipped and the markdown says so.
"""

import json
import math
import os
from typing import List, Optional, Tuple

OURS = "fusedlstm"


def _f(v: Optional[float], fmt: str = "{:.3g}") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _ms(t: Optional[dict]) -> str:
    if not t:
        return "–"
    return f"{t['median']:.3g} [{t['min']:.3g}–{t['max']:.3g}]"


def _ratio(v: Optional[float]) -> str:
    return _f(v, "{:.2f}x")


def header(result: dict) -> List[str]:
    s = result["system"]
    fw_lines = [f"{n}: {st.get('version', 'separate process') if st['status'] == 'ok' else st['status']}"
                for n, st in result["frameworks"].items()]
    bi = s.get("fusedlstm_build_info", {})
    busy = (s["load_average"]["before"] or 0.0) > 1.0
    reexec = "re-executed with " + s["reexec"]["note"] if s["reexec"]["happened"] else "as given (no re-exec needed)"
    lines = [
        f"# fusedlstm benchmark — {s['cpu_model']}{' (quick run: tiny sizes)' if result['quick'] else ''}",
        "",
        f"- precision: {result.get('precision', 'float32')}"
        + (" (fusedlstm and Keras: every layer under Keras's mixed_bfloat16 policy; torch: "
           "torch.autocast('cpu', dtype=torch.bfloat16); numpy's sgemm stays the float32 yardstick)"
           if result.get("precision", "float32") != "float32" else ""),
        f"- date: {result['created']}, run time {result['seconds']:.0f} s, "
        f"threads: {s['threads']} (every framework and numpy)",
        f"- fusedlstm ISA path: {bi.get('isa', '–')} (available: {', '.join(bi.get('isa_available', [])) or '–'})",
        f"- frameworks: {'; '.join(fw_lines)}",
        f"- python {s['python']}, numpy {s['numpy']}; numpy sgemm 2048² float32: "
        f"{result['sgemm']['gflops']:.1f} GFLOP/s (median of {result['sgemm']['repeats']})",
        _peak_line(result),
        f"- load average (1 min) before / after: {_f(s['load_average']['before'], '{:.2f}')} / "
        f"{_f(s['load_average']['after'], '{:.2f}')}{' — busy machine: timings are noisy' if busy else ''}",
        f"- environment: {reexec}",
        f"- timing: interleaved blocks of ≥ {result['timing']['block_ms']:.0f} ms, "
        f"{result['timing']['rounds']} rounds; "
        "ms per step as median [min–max]; ratio = peer time / fusedlstm time (> 1: fusedlstm faster)",
    ]
    return lines


def _peak_line(result: dict) -> str:
    peak = result.get("peak")
    if not peak:
        return "- CPU arithmetic peak: not measured (bench/peak.py needs an x86-64 CPU and a C++ compiler)"
    bf16 = f"{peak['bfloat16']:.1f}" if peak.get("bfloat16") else "– (no AVX512-BF16)"
    return (f"- CPU arithmetic peak ({peak['source']}, register-only multiply-adds, {peak['threads']} threads): "
            f"float32 {peak['float32']:.1f} GFLOP/s, bfloat16 {bf16} GFLOP/s")


def step_table(result: dict) -> List[str]:
    lines = ["", "## Per step", "",
             "| config | shape | framework | train ms | infer ms | train ratio | infer ratio | "
             "GFLOP/s nominal (train) | peak MiB | first loss |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in result["configs"]:
        skipped = e.get("skipped", {})
        names = list(dict.fromkeys(list(e["results"]) + list(e["errors"]) + list(skipped)))
        for n in names:
            r = e["results"].get(n, {})
            ratio = e["ratios"].get(n, {})
            if n in e["errors"]:
                cells = [f"failed: {e['errors'][n]}"[:80], "", "", "", "", "", ""]
            elif n in skipped:
                cells = [f"n/a: {skipped[n]}"[:100], "", "", "", "", "", ""]
            else:
                cells = [_ms(r.get("train_ms")), _ms(r.get("infer_ms")),
                         "(ours)" if n == OURS else _ratio(ratio.get("train")),
                         "(ours)" if n == OURS else _ratio(ratio.get("infer")),
                         _f(r.get("gflops", {}).get("nominal_train"), "{:.1f}"), _f(r.get("peak_mib"), "{:.1f}"),
                         _f(e["check"]["first_loss"].get(n), "{:.6f}")]
            lines.append(f"| {e['name']} | {e['describe']} | {n} | " + " | ".join(cells) + " |")
        for w in e["check"]["warnings"]:
            lines.append(f"| {e['name']} | **WARNING** | {w} | | | | | | | |")
    return lines


def throughput_table(result: dict) -> List[str]:
    lines = ["", "## fusedlstm gate-GEMM throughput", "",
             "Nominal: the FLOPs a dense implementation performs (forward 2·B·T·(I+H)·gH per recurrent "
             "layer, g = 4 for an LSTM, 3 for a GRU; "
             "training 3x). Executed: what fusedlstm computes (one-hot/id inputs are row lookups, "
             "plus the E·W table for an Embedding; no dX for the first layer).", "",
             "| config | nominal GFLOP train / infer | executed GFLOP train / infer | "
             "nominal GFLOP/s train | executed GFLOP/s train / infer | executed / sgemm | "
             "infer % of CPU peak: ours / fastest peer | infer ratio ceiling |",
             "|---|---|---|---|---|---|---|---|"]
    for e in result["configs"]:
        g = e["results"].get(OURS, {}).get("gflops", {})
        nom, exe = e["flops"]["nominal"], e["flops"]["executed"]
        lines.append(f"| {e['name']} | {nom['train'] / 1e9:.3g} / {nom['infer'] / 1e9:.3g} | "
                     f"{exe['train'] / 1e9:.3g} / {exe['infer'] / 1e9:.3g} | {_f(g.get('nominal_train'), '{:.1f}')} | "
                     f"{_f(g.get('executed_train'), '{:.1f}')} / {_f(g.get('executed_infer'), '{:.1f}')} | "
                     f"{_f(e.get('sgemm_fraction'), '{:.0%}')} | {_peak_cells(e)} |")
    lines += ["", "Infer % of CPU peak: each framework's inference at the executed FLOPs over the measured peak "
              "(header). Ceiling: the inference ratio against the fastest peer that a kernel running at 100% of "
              "the peak would reach; a target above it cannot be met on this CPU."]
    return lines


def _peak_cells(e: dict) -> str:
    p = e.get("peak")
    if not p:
        return "– | –"
    frac = p["infer_fraction"]
    peers = [v for k, v in frac.items() if k != OURS]
    return (f"{_f(frac.get(OURS), '{:.0%}')} / {_f(max(peers) if peers else None, '{:.0%}')} | "
            f"{_f(p['infer_ratio_ceiling'], '{:.2f}x')}")


def streaming_table(result: dict) -> List[str]:
    stream = result.get("streaming")
    if not stream:
        return []
    lines = ["", "## Streaming (stateful char model, B=1, T=1, one step per call)", "",
             "Embedding(27, 64) -> LSTM(H, stateful) -> TimeDistributed(Dense(27, softmax)). µs per step as "
             "median [min–max]; ratio = peer time / ours. Kernels only: the LSTM and GEMM calls one "
             "predict_on_batch makes, replayed; Python overhead = call - kernels (negative for the C++ step, "
             "which makes those calls without their two pybind11 argument parsings). Stream.step: one C++ call "
             "(softmax by the kernels); exact: NumPy's softmax on its logits (bitwise predict_on_batch).", "",
             "| H | entry | µs per step | vs torch eager | vs onnxruntime | Python overhead µs |",
             "|---|---|---|---|---|---|"]
    for s in stream:
        for n, r in s["results"].items():
            t = r["step_us"]
            ratio = s["ratios"].get(n, {})
            lines.append(f"| {s['units']} | {n} | {t['median']:.1f} [{t['min']:.1f}–{t['max']:.1f}] | "
                         f"{_ratio(ratio.get('torch eager'))} | {_ratio(ratio.get('onnxruntime session.run'))} | "
                         f"{_f(s['python_overhead_us'].get(n), '{:.1f}')} |")
        for n, err in s["errors"].items():
            lines.append(f"| {s['units']} | **{n} failed** | {err} | | | |")
    return lines


def targets_table(result: dict) -> List[str]:
    lines = ["", "## Targets", "", "| target | value | needed | stretch | met |", "|---|---|---|---|---|"]
    for t in result["targets"]:
        fmt = "{:.0%}" if t["unit"] == "%" else "{:.2f}x"
        met = "–" if t["met"] is None else ("stretch met" if t["stretch_met"] else ("met" if t["met"] else "NOT met"))
        lines.append(f"| {t['name']} | {_f(t['value'], fmt)} | ≥ {fmt.format(t['target'])} | "
                     f"{'–' if t['stretch'] is None else '≥ ' + fmt.format(t['stretch'])} | {met} |")
    return lines


def e2e_tables(result: dict) -> List[str]:
    e2e = result.get("e2e")
    if not e2e:
        return ["", "## End-to-end", "", "not run (--quick or --no-e2e)"]
    echo = e2e["echo"]
    lines = ["", "## End-to-end", "", f"Echo task ({echo['task']}); median over {echo['seeds']} seeds, "
             f"cap {echo['cap']} fits (a capped run's time is a lower bound); same weights and samples "
             "in every framework.", "",
             "| framework | time to 100% s | ratio | fits | ms per fit | cap hits |", "|---|---|---|---|---|---|"]
    ratios = e2e["ratios"]
    for n, p in echo["per_framework"].items():
        if "median_seconds" not in p:
            lines.append(f"| {n} | failed: {e2e['errors'].get(n, '?')} | | | | |")
            continue
        r = "(ours)" if n == OURS else _ratio(ratios["echo time to 100%"].get(n))
        lines.append(f"| {n} | {p['median_seconds']:.2f} | {r} | {p['median_fits']:.0f} | "
                     f"{p['median_ms_per_fit']:.3f} | {p['cap_hits']}/{len(p['runs'])} |")
    chars = e2e["chars"]
    lines += ["", "One epoch of the chars model (`fit`, batch 128, shuffle):", ""]
    if "skipped" in chars:
        lines.append(f"skipped: {chars['skipped']}")
    else:
        lines += [f"{chars['windows']} windows of {chars['source']}.", "",
                  "| framework | seconds | ratio | epoch loss |", "|---|---|---|---|"]
        for n, p in chars["per_framework"].items():
            r = "(ours)" if n == OURS else _ratio(ratios["chars one epoch"].get(n))
            lines.append(f"| {n} | {p['seconds']:.2f} | {r} | {p['loss']:.4f} |")
    for n, err in e2e["errors"].items():
        lines.append(f"\n**{n} failed**: {err}")
    return lines


def markdown(result: dict, png_note: str) -> str:
    parts = header(result)
    if result["configs"]:
        parts += step_table(result) + throughput_table(result) + streaming_table(result)
    else:
        parts += ["", "## Per step", "", "not run (--e2e-only)"]
    parts += targets_table(result)
    parts += e2e_tables(result) + ["", png_note, ""]
    return "\n".join(parts)


def chart(result: dict, path: str) -> Optional[str]:
    """Bar chart of train/infer ratios vs each peer; returns None if it was written,
    else the reason it was not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'fusedlstm[plot]'): no PNG chart"
    entries = result["configs"]
    peers = [p for p in result["frameworks"] if any(p in e["ratios"] for e in entries)]
    series = [(p, k) for p in peers for k in ("train", "infer")]
    if not any(e["ratios"].get(p, {}).get(k) for e in entries for p, k in series):
        return "no ratios to plot (fusedlstm or every peer missing)"
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(entries) + 2), 4.2))
    width = 0.8 / len(series)
    for j, (peer, kind) in enumerate(series):
        vals = [e["ratios"].get(peer, {}).get(kind) or float("nan") for e in entries]
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(entries))]
        ax.bar(xs, vals, width, label=f"vs {peer} ({kind})", hatch="" if kind == "train" else "//")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels([e["name"] for e in entries], rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("peer time / fusedlstm time")
    ax.set_title(f"fusedlstm speed-up, {result['system']['cpu_model']}, {result['system']['threads']} threads"
                 + (" (quick)" if result["quick"] else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(result: dict, out_dir: str, stem: str) -> Tuple[List[str], str]:
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    skipped = chart(result, base + ".png")
    png_note = f"Chart: {stem}.png" if skipped is None else f"Chart skipped: {skipped}"
    result["chart"] = None if skipped else f"{stem}.png"
    md = markdown(result, png_note)
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1, default=float)
    with open(base + ".md", "w") as f:
        f.write(md)
    return [base + ".json", base + ".md"] + ([base + ".png"] if skipped is None else []), md
