"""The benchmark suite (bench/): one --quick run end to end, plus its arithmetic.

No timing is asserted (CI machines are noisy); what is asserted is that the
bench measures the same computation everywhere: every framework ran every
config, first-step losses are finite, near ln(classes) and agree, and the
reports hold what the JSON says.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fusedlstm

from conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `bench` lives at the repo root, beside tests/

from bench import configs, data, e2e, env, timing  # noqa: E402

FRAMEWORKS = ("fusedlstm", "torch", "keras")


# --- the --quick run -----------------------------------------------------------

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    require("torch", "compare")
    os.environ.setdefault("KERAS_BACKEND", "torch")  # keras's own default needs tensorflow
    require("keras", "compare")
    require("onnx", "onnx")
    require("onnxruntime", "onnx")
    out = tmp_path_factory.mktemp("bench")
    seed = int.from_bytes(os.urandom(2), "little")
    cmd = [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--seed", str(seed),
           "--e2e", "--e2e-seeds", "1", "--e2e-cap", "500", "--chars-windows", "1024"]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    jsons = [p for p in out.iterdir() if p.name.endswith("-quick.json")]
    assert len(jsons) == 1, f"seed {seed}: expected one -quick.json in {out}, got {jsons}\n{proc.stdout[-4000:]}"
    with open(jsons[0]) as f:
        result = json.load(f)
    return {"proc": proc, "result": result, "out": out, "stem": jsons[0].name[:-5], "seed": seed}


def test_quick_run_succeeds_for_every_framework(quick_run):
    proc, result, seed = quick_run["proc"], quick_run["result"], quick_run["seed"]
    ctx = f"seed {seed}\n{proc.stdout[-4000:]}"
    assert proc.returncode == 0, ctx
    for name in FRAMEWORKS:
        assert result["frameworks"][name]["status"] == "ok", ctx
    # TensorFlow is not a dependency: its entry reports why it did not run, or ran.
    tf = result["frameworks"]["keras_tf"]["status"]
    assert tf == "ok" or tf.startswith("not installed"), ctx
    assert [e["name"] for e in result["configs"]] == [c.name for c in configs.CONFIGS], ctx
    assert result["system"]["threads"] == 2 and result["quick"] is True


def test_quick_run_frameworks_start_from_the_same_loss(quick_run):
    result, seed = quick_run["result"], quick_run["seed"]
    for entry in result["configs"]:
        chk = entry["check"]
        assert entry["errors"] == {} and chk["ok"], f"seed {seed} {entry['name']}: {chk['warnings']}"
        losses = chk["first_loss"]
        assert set(FRAMEWORKS) <= set(losses), f"seed {seed} {entry['name']}: {losses}"
        ln_c = math.log(entry["config"]["classes"])
        for name, loss in losses.items():
            # Glorot weights and zero bias give near-uniform softmax outputs.
            assert math.isfinite(loss) and abs(loss - ln_c) < 0.3 * ln_c, \
                f"seed {seed} {entry['name']} {name}: loss {loss}, ln(C) {ln_c}"
            assert abs(loss - losses["fusedlstm"]) <= 1e-4 * abs(losses["fusedlstm"]), \
                f"seed {seed} {entry['name']}: {name} {loss} vs fusedlstm {losses['fusedlstm']}"
            assert math.isfinite(chk["second_loss"][name]), f"seed {seed} {entry['name']} {name}"
        for name, diff in chk["infer_max_abs_diff"].items():
            assert diff <= 1e-4, f"seed {seed} {entry['name']}: {name} predictions differ by {diff}"


def test_quick_run_timings_and_derived_numbers_are_sane(quick_run):
    result, seed = quick_run["result"], quick_run["seed"]
    assert result["sgemm"]["gflops"] > 0
    for entry in result["configs"]:
        ctx = f"seed {seed} {entry['name']}"
        for name in FRAMEWORKS:
            res = entry["results"][name]
            for kind in ("train_ms", "infer_ms"):
                t = res[kind]
                assert t["n"] >= 2 and 0 < t["min"] <= t["median"] <= t["max"] < 60e3, f"{ctx} {name} {kind}: {t}"
            assert res["peak_mib"] is None or res["peak_mib"] >= 0, f"{ctx} {name}"
        for peer in ("torch", "keras"):
            for kind in ("train", "infer"):
                r = entry["ratios"][peer][kind]
                ours = entry["results"]["fusedlstm"][f"{kind}_ms"]["median"]
                theirs = entry["results"][peer][f"{kind}_ms"]["median"]
                assert r == pytest.approx(theirs / ours), ctx
        g = entry["results"]["fusedlstm"]["gflops"]
        assert g["executed_train"] <= g["nominal_train"] + 1e-9, ctx
        assert entry["sgemm_fraction"] == pytest.approx(g["executed_train"] / result["sgemm"]["gflops"]), ctx
        if result["peak"]:  # the inference ceiling: fastest peer's time x peak over the executed work
            p, exe = entry["peak"], entry["flops"]["executed"]["infer"]
            peers = [entry["results"][n]["infer_ms"]["median"] for n in entry["results"] if n != "fusedlstm"]
            assert p["infer_ratio_ceiling"] == pytest.approx(min(peers) * 1e-3 * p["gflops"] * 1e9 / exe), ctx
            assert p["infer_fraction"]["fusedlstm"] == pytest.approx(g["executed_infer"] / p["gflops"]), ctx
    names = {t["name"] for t in result["targets"]}
    assert {"echo train step vs torch", "xlarge executed GFLOP/s vs sgemm", "echo time to 100% vs torch"} <= names
    gru = {"gru_echo", "gru_chars", "gru_chars_seq", "gru_large"}
    assert {e["name"] for e in result["configs"] if e["config"]["cell"] == "gru"} == gru, f"seed {seed}"
    assert {f"{n} train step vs torch" for n in gru} | {"gru_large executed GFLOP/s vs sgemm"} <= names


def test_quick_run_onnxruntime_columns(quick_run):
    """ONNX Runtime runs the graph our exporter writes, checked equal to predict before timing."""
    result, seed = quick_run["result"], quick_run["seed"]
    assert result["frameworks"]["onnxruntime"]["status"] == "ok", f"seed {seed}"
    for entry in result["configs"]:
        ctx = f"seed {seed} {entry['name']}"
        if entry["config"]["conv"]:  # the exporter has no Conv1D yet: a row saying so, not a failure
            assert "Conv1D" in entry["skipped"]["onnxruntime"] and "onnxruntime" not in entry["results"], ctx
            continue
        assert entry["skipped"] == {}, ctx
        res = entry["results"]["onnxruntime"]
        assert res["train_ms"] is None and "onnxruntime" not in entry["check"]["first_loss"], ctx
        t = res["infer_ms"]
        assert t["n"] >= 2 and 0 < t["min"] <= t["median"] <= t["max"], ctx
        assert entry["check"]["infer_max_abs_diff"]["onnxruntime"] <= 1e-5, ctx
        assert entry["ratios"]["onnxruntime"]["infer"] == pytest.approx(
            t["median"] / entry["results"]["fusedlstm"]["infer_ms"]["median"]), ctx
        assert entry["ratios"]["onnxruntime"]["train"] is None, ctx
    names = {t["name"] for t in result["targets"]}
    assert {"echo inference vs onnxruntime", "xlarge inference vs torch"} <= names, f"seed {seed}"


def test_quick_run_streaming_section(quick_run):
    result, seed = quick_run["result"], quick_run["seed"]
    ours_all = ("fusedlstm predict_on_batch", "fusedlstm model(x)", "fusedlstm Stream.step",
                "fusedlstm Stream.step exact", "fusedlstm Stream python path", "fusedlstm StreamKernel.step")
    entries = ours_all + ("fusedlstm kernels only", "torch eager", "onnxruntime session.run")
    assert [s["units"] for s in result["streaming"]] == [64, 256], f"seed {seed}"
    for s in result["streaming"]:
        ctx = f"seed {seed} H={s['units']}"
        assert s["errors"] == {}, f"{ctx}: {s['errors']}"
        assert set(s["results"]) == set(entries), ctx
        assert all(err <= 1e-5 for err in s["check"].values()), f"{ctx}: {s['check']}"
        assert s["kernel_calls"] == ["lstm_forward", "matmul"], ctx  # the LSTM step and the Dense GEMM
        med = {n: r["step_us"]["median"] for n, r in s["results"].items()}
        for ours in ours_all:
            assert s["python_overhead_us"][ours] == pytest.approx(med[ours] - med["fusedlstm kernels only"]), ctx
            for peer in ("torch eager", "onnxruntime session.run"):
                assert s["ratios"][ours][peer] == pytest.approx(med[peer] / med[ours]), ctx
    names = {t["name"] for t in result["targets"]}
    assert {"stream_h256 predict_on_batch vs onnxruntime session.run", "stream_h64 Stream.step vs torch eager",
            "stream_h256 Stream.step exact vs onnxruntime session.run"} <= names, f"seed {seed}"
    with open(quick_run["out"] / f"{quick_run['stem']}.md") as f:
        assert "## Streaming" in f.read()


def test_quick_run_end_to_end_section(quick_run):
    result, seed = quick_run["result"], quick_run["seed"]
    e = result["e2e"]
    assert e["errors"] == {}, f"seed {seed}: {e['errors']}"
    for name in FRAMEWORKS:
        p = e["echo"]["per_framework"][name]
        assert len(p["runs"]) == 1 and p["runs"][0]["fits"] in (250, 500), f"seed {seed} {name}: {p}"
        assert p["median_ms_per_fit"] > 0 and p["median_seconds"] > 0
    if "skipped" in e["chars"]:
        assert "not found" in e["chars"]["skipped"]
        return
    losses = {n: p["loss"] for n, p in e["chars"]["per_framework"].items()}
    assert set(FRAMEWORKS) <= set(losses) and e["chars"]["windows"] == 1024, f"seed {seed}: {e['chars']}"
    # Same start, 8 Adam steps on differently shuffled batches: close, not equal.
    ref = losses["fusedlstm"]
    assert all(math.isfinite(v) and abs(v - ref) < 0.05 * ref for v in losses.values()), f"seed {seed}: {losses}"


def test_quick_run_reports(quick_run):
    result, out, stem = quick_run["result"], quick_run["out"], quick_run["stem"]
    assert stem == env.slug(result["system"]["cpu_model"]) + "-quick"
    md = (out / f"{stem}.md").read_text()
    assert md in quick_run["proc"].stdout  # the table is printed too
    for entry in result["configs"]:
        assert f"| {entry['name']} |" in md
    assert "## Targets" in md and "## End-to-end" in md
    has_png = (out / f"{stem}.png").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not has_png and "Chart skipped: matplotlib" in md
    else:
        assert has_png and result["chart"] == f"{stem}.png"


def test_quick_mixed_bfloat16_run(tmp_path):
    """--precision mixed_bfloat16: our and Keras's models under the policy, torch under autocast,
    agreeing to bfloat16's precision; ONNX Runtime says it is float32-only; its own file name."""
    require("torch", "compare")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("keras", "compare")
    cmd = [sys.executable, "-m", "bench", "--quick", "--precision", "mixed_bfloat16", "--out", str(tmp_path),
           "--configs", "chars,large", "--frameworks", "fusedlstm,torch,onnxruntime,keras"]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(next(p for p in tmp_path.iterdir() if p.name.endswith("-mixed_bfloat16-quick.json"))) as f:
        result = json.load(f)
    assert result["precision"] == "mixed_bfloat16" and result["streaming"] is None and result["e2e"] is None
    assert result["frameworks"]["onnxruntime"]["status"].startswith("float32 only")
    for entry in result["configs"]:
        assert entry["check"]["ok"], entry["check"]["warnings"]
        assert set(entry["results"]) == {"fusedlstm", "torch", "keras"}
    assert {t["name"] for t in result["targets"]} == {"large train vs torch autocast (mixed_bfloat16)",
                                                      "large infer vs torch autocast (mixed_bfloat16)"}


def test_bad_arguments_exit_with_a_message():
    for args, expected in ((["--threads", "0"], "--threads"), (["--configs", "nope"], "nope"),
                           (["--frameworks", "jax"], "--frameworks"), (["--precision", "float16"], "--precision"),
                           (["--precision", "mixed_bfloat16", "--e2e"], "float32 only")):
        proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120,
                              env={**os.environ, env.REEXEC_MARK: "{}"})
        assert proc.returncode == 2 and expected in proc.stdout, (args, proc.stdout)


# --- the arithmetic behind the report -------------------------------------------

def test_flop_counts_follow_the_formulas():
    get = {c.name: c for c in configs.CONFIGS}
    echo = get["echo"]
    assert configs.nominal_flops(echo)["train"] == 3 * 2 * 1 * 50 * (100 + 25) * 4 * 25
    # one-hot input: only the recurrent GEMMs (forward, dU, dh) remain
    assert configs.executed_flops(echo)["train"] == 3 * 2 * 1 * 50 * 25 * 100
    large = get["large"]
    nom, exe = configs.nominal_flops(large), configs.executed_flops(large)
    assert nom["infer"] == exe["infer"]
    assert nom["train"] - exe["train"] == 2 * 64 * 100 * 512 * 2048  # the first layer's dX
    chars = get["chars"]
    table = 2 * 27 * 64 * 256
    assert configs.executed_flops(chars)["infer"] == 2 * 128 * 40 * 64 * 256 + table
    s2s = configs.lstm_layers(get["seq2seq"])
    assert [(L.inputs, L.steps, L.vocab, L.first) for L in s2s] == [("onehot", 5, 0, True), ("repeat", 2, 21, False)]
    rec = 2 * 21 * (5 + 2) * 150 * 600  # both layers' h·U
    assert configs.executed_flops(get["seq2seq"])["infer"] == rec + 2 * 21 * 150 * 600  # + h_enc·W once


def test_gru_flop_counts():
    get = {c.name: c for c in configs.CONFIGS}
    echo, large, chars = get["gru_echo"], get["gru_large"], get["gru_chars"]
    assert configs.nominal_flops(echo)["train"] == 3 * 2 * 1 * 50 * (100 + 25) * 3 * 25
    assert configs.executed_flops(echo)["train"] == 3 * 2 * 1 * 50 * 25 * 75
    assert configs.nominal_flops(large)["train"] - configs.executed_flops(large)["train"] == 2 * 64 * 100 * 512 * 1536
    assert configs.executed_flops(chars)["infer"] == 2 * 128 * 40 * 64 * 192 + 2 * 27 * 64 * 192
    for cfg in (echo, large, chars):  # 3 gates against 4: three quarters of the LSTM twin's work
        twin = get[cfg.name[len("gru_"):]]
        assert configs.nominal_flops(cfg)["train"] == 0.75 * configs.nominal_flops(twin)["train"]


def test_gru_rows_are_twins_of_the_lstm_rows():
    from dataclasses import replace

    for quick in (False, True):
        get = {c.name: c for c in configs.get_configs(quick=quick)}
        grus = [n for n in get if get[n].cell == "gru"]
        assert grus == ["gru_echo", "gru_chars", "gru_chars_seq", "gru_large"]
        for n in grus:
            twin = get[n[len("gru_"):]]
            assert twin.cell == "lstm" and replace(get[n], name=twin.name, cell="lstm") == twin, n
            assert "GRU" in get[n].describe() and "GRU" not in twin.describe()


def test_gru_weights_load_into_torch_as_into_keras_models(rng, seed):
    """nn.GRU's gate order (r, z, n) and its two biases: torch's outputs on the bench's
    weights equal fusedlstm's (the Keras model), and a wrong mapping would not."""
    require("torch", "compare")
    import fusedlstm.layers  # noqa: F401
    import fusedlstm.models  # noqa: F401
    import fusedlstm.optimizers  # noqa: F401
    from bench.frameworks import create, keras_like

    torch_fw = create("torch")
    torch_fw.setup(1)
    for name in ("gru_chars_seq", "gru_large"):
        cfg = configs.get_configs([name], quick=True)[0]
        weights = data.model_weights(cfg, rng)
        x, y, y_ids = data.batch(cfg, rng)
        ours = np.asarray(keras_like.build(fusedlstm, cfg, weights).predict_on_batch(x))
        m = torch_fw.build(cfg, weights)
        theirs = m.to_numpy(m.infer(m.prepare(x, y, y_ids)))
        np.testing.assert_allclose(theirs, ours, atol=1e-5, err_msg=f"seed {seed} {name}")
        k = 1 if cfg.inputs == "ids" else 0
        swapped = list(weights)
        swapped[k + 2] = weights[k + 2][::-1].copy()  # input and recurrent bias exchanged
        m = torch_fw.build(cfg, swapped)
        assert np.max(np.abs(m.to_numpy(m.infer(m.prepare(x, y, y_ids))) - ours)) > 1e-4, f"seed {seed} {name}"


def test_keras_initialisers(rng, seed):
    cfg = configs.get_configs(["chars_seq"], quick=True)[0]
    E, W, U, b, Wd, bd = data.model_weights(cfg, rng)
    H = cfg.units
    assert E.shape == (27, 64) and W.shape == (64, 4 * H) and U.shape == (H, 4 * H)
    np.testing.assert_allclose(U @ U.T, np.eye(H), atol=1e-5, err_msg=f"seed {seed}")
    assert np.all(b[H:2 * H] == 1) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)
    assert np.abs(W).max() <= math.sqrt(6 / (64 + 4 * H)) and np.all(bd == 0) and Wd.dtype == np.float32


def test_gru_initialisers(rng, seed):
    cfg = configs.get_configs(["gru_chars_seq"], quick=True)[0]
    E, W, U, b, Wd, bd = data.model_weights(cfg, rng)
    H = cfg.units
    assert W.shape == (64, 3 * H) and U.shape == (H, 3 * H) and b.shape == (2, 3 * H)
    np.testing.assert_allclose(U @ U.T, np.eye(H), atol=1e-5, err_msg=f"seed {seed}")
    assert np.abs(b).max() <= 0.1 and np.all(b != 0) and b.dtype == np.float32


def test_batches_match_the_config(rng, seed):
    for cfg in configs.get_configs(quick=True):
        x, y, y_ids = data.batch(cfg, rng)
        B, T = cfg.batch, cfg.steps
        if cfg.inputs == "onehot":
            assert x.shape == (B, T, cfg.features) and np.all(x.sum(-1) == 1), cfg.name
            assert np.array_equal(np.argmax(y, -1), y_ids), cfg.name
        elif cfg.inputs == "ids":
            assert x.shape == (B, T) and x.dtype == np.int32 and x.max() < cfg.features, cfg.name
        assert y_ids.max() < cfg.classes, f"seed {seed} {cfg.name}"


def test_interleaved_timing_alternates_blocks():
    order = []
    calls = {k: (lambda k=k: order.append(k)) for k in "ABC"}
    times = timing.interleaved(calls, block_s=1e-4, rounds=3, warmup=2, max_calls_per_block=4)
    timed = order[6:]  # after 2 warm-up calls each
    runs = [timed[0]]
    for k in timed[1:]:
        if k != runs[-1]:
            runs.append(k)
    assert runs == list("ABC" * 3)
    assert all(1 <= len(times[k]) <= 12 and len(times[k]) == timed.count(k) for k in "ABC")
    s = timing.summary_ms([0.001, 0.003, 0.002])
    assert s == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    with pytest.raises(ValueError, match="rounds"):
        timing.interleaved(calls, rounds=0)


def test_env_changes_and_slug():
    want = env.wanted_env(3)
    assert want["OPENBLAS_CORETYPE"] is None and want["OPENBLAS_L2_SIZE"] is None
    assert want["OPENBLAS_NUM_THREADS"] == "3" and want["OMP_NUM_THREADS"] == "3"
    note = env.describe_reexec({"OPENBLAS_CORETYPE": {"was": "Haswell", "now": None}})
    assert note == "OPENBLAS_CORETYPE unset (was Haswell)"
    assert env.slug("AMD EPYC 7B13 64-Core Processor") == "amd-epyc-7b13-64-core-processor"
    peak = env.peak_mib(lambda: np.ones(16 << 20, np.float32).sum())  # touches 64 MiB
    assert peak is None or 60 <= peak < 1024, peak


def test_chars_windows():
    x, y = e2e.char_windows("Ab, c!\nxyz", 4)
    assert x.shape == (6, 4) and x.dtype == np.int32
    assert x[0].tolist() == [1, 2, 0, 0] and y.tolist() == [3, 0, 0, 24, 25, 26]
    with pytest.raises(ValueError, match="text"):
        e2e.char_windows("abc", 4)


class _ScriptedModel:
    """Predicts the right answer once it has been trained `learn_after` times."""

    def __init__(self, learn_after):
        self.fits, self.learn_after = 0, learn_after

    def prepare(self, x, y, y_ids):
        return x, y_ids

    def train(self, batch):
        assert batch[0].shape == (1, e2e.ECHO.steps, e2e.ECHO.features)
        self.fits += 1

    def infer(self, batch):
        ids = batch[1] if self.fits >= self.learn_after else (batch[1] + 1) % 10
        return data.onehot(ids, 10)

    def to_numpy(self, out):
        return out


class _ScriptedFramework:
    def __init__(self, learn_after):
        self.learn_after = learn_after

    def build(self, cfg, weights):
        return _ScriptedModel(self.learn_after)


def test_echo_run_stops_at_the_first_perfect_evaluation():
    weights, train, evals = e2e.echo_stream(7, 1000)
    assert train[0].shape == (1000, 5, 10) and len(evals) == 4
    assert np.array_equal(train[2], np.argmax(train[0][:, 2], -1))  # target = value at index 2
    run = e2e.echo_run(_ScriptedFramework(300), weights, train, evals, 1000)
    assert run["fits"] == 500 and not run["capped"]
    run = e2e.echo_run(_ScriptedFramework(10 ** 6), weights, train, evals, 1000)
    assert run["fits"] == 1000 and run["capped"]
