"""The `fusedlstm` command: argument checking, errors as one line, list/info, run."""

import os
import subprocess
import sys

import pytest

from conftest import require
from fusedlstm import cli
from fusedlstm.tasks import registry


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err, *words):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fusedlstm: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], ["required"]),
        (["fly"], ["invalid choice", "fly"]),
        (["run"], ["task"]),
        (["run", "nosuch"], ["unknown task 'nosuch'", "echo"]),
        (["run", "echo", "--units", "abc"], ["--units", "abc"]),
        (["run", "echo", "--units", "0"], ["--units", "positive", "0"]),
        (["run", "echo", "--lr", "-1"], ["--lr", "positive"]),
        (["run", "echo", "--epochs", "3"], ["--epochs does not apply to echo", "--examples"]),
        (["run", "echo", "--bogus"], ["unrecognized arguments", "--bogus"]),
        (["run", "echo", "--engine", "tf"], ["--engine", "tf"]),
        (["run", "all", "--units", "3"], ["'run all'", "--units"]),
        (["run", "all", "--save", "w.npz"], ["--save", "single task"]),
        (["run", "chars", "--text", "/nonexistent/file.txt"], ["--text /nonexistent/file.txt", "no such file"]),
        (["run", "echo", "--save", "/nonexistent/dir/w.npz"], ["--save", "does not exist"]),
        (["run", "echo", "--threads", "0"], ["--threads", "positive"]),
        (["run", "echo-long", "--reverse", "2"], ["--reverse", "0 or 1", "got 2"]),
        (["run", "chars", "--temperature", "-0.5"], ["--temperature", "non-negative"]),
        (["run", "echo", "--cell", "gru"], ["--cell does not apply to echo", "chars", "chars-seq", "seq2seq"]),
        (["run", "addition", "--cell", "gru"], ["--cell does not apply to addition", "seq2seq-4"]),
        (["run", "chars", "--cell", "rnn"], ["--cell expects one of lstm, gru", "'rnn'"]),
        (["run", "all", "--cell", "xx"], ["--cell expects one of lstm, gru", "'xx'"]),
        (["run", "all", "--cell", "gru", "--units", "3"], ["'run all'", "--units"]),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, out, err)
    one_line_error(err, *words)
    assert out == ""


def test_text_not_utf8_or_too_short(capsys, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 30)
    code, _, err = run_cli(capsys, "run", "chars", "--text", str(bad))
    assert code == 2
    one_line_error(err, "not UTF-8")
    short = tmp_path / "short.txt"
    short.write_text("too short", encoding="utf-8")
    code, _, err = run_cli(capsys, "run", "chars-seq", "--text", str(short))
    assert code == 2
    one_line_error(err, "9 characters", "window of 40")
    code, _, err = run_cli(capsys, "run", "chars", "--text", str(tmp_path))
    assert code == 2
    one_line_error(err, "cannot read")


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch):
    from fusedlstm.tasks import plotting

    monkeypatch.setattr(plotting, "plotting_available", lambda: False)
    code, _, err = run_cli(capsys, "run", "echo", "--plot", "x.png")
    assert code == 2
    one_line_error(err, "--plot needs matplotlib", "fusedlstm[plot]")


def test_list_names_every_task(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == list(registry.TASKS)
    assert "target" in out


def test_info_prints_build_info(capsys):
    import fusedlstm

    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    for key, value in fusedlstm.build_info().items():
        assert f"{key}: {value}" in out


def test_run_a_task_prints_results_and_saves(capsys, tmp_path, seed):
    path = tmp_path / "echo.weights.npz"
    code, out, err = run_cli(capsys, "run", "echo", "--examples", "200", "--eval", "20", "--seed", str(seed),
                             "--save", str(path))
    assert err == ""
    assert code in (0, 1)  # 200 fits rarely reach the target; the exit code says which
    assert f"seed {seed}" in out and "Expected:" in out and "Predicted:" in out
    assert "steps/s" in out and f"weights saved to {path}" in out
    assert path.exists() and path.stat().st_size > 0


def test_failing_task_is_one_line_exit_1(capsys, monkeypatch):
    def boom(cfg, ctx):
        raise RuntimeError("kernel exploded")

    monkeypatch.setitem(registry.TASKS, "echo", registry.TASKS["echo"].__class__(
        **{**registry.TASKS["echo"].__dict__, "run": boom}))
    monkeypatch.delenv("FUSEDLSTM_DEBUG", raising=False)
    code, _, err = run_cli(capsys, "run", "echo", "--seed", "1")
    assert code == 1
    one_line_error(err, "RuntimeError: kernel exploded", "FUSEDLSTM_DEBUG")


def test_run_all_table_counts_errors(capsys, monkeypatch):
    from fusedlstm.tasks import runall

    def boom(cfg, ctx):
        raise ValueError("no data")

    spec = registry.TASKS["echo"]
    monkeypatch.setitem(registry.TASKS, "echo", spec.__class__(**{**spec.__dict__, "run": boom}))
    lines = []
    outcomes, code = runall.run_all(quick=True, seed=3, verbose=0, out=lines.append, tasks=["echo", "echo-sequence"])
    assert code == 1 and isinstance(outcomes["echo"], ValueError)
    table = "\n".join(lines[lines.index(next(l for l in lines if l.startswith("== summary"))) + 1:])
    assert table.splitlines()[0].split() == ["task", "result", "target", "wall", "steps/s", "verdict"]
    assert "ERROR" in table and "error: ValueError: no data" in table
    assert any(l.startswith("echo-sequence") and l.rstrip().endswith("ok") for l in table.splitlines())


def test_plot_writes_a_png(tmp_path, capsys, seed):
    require("matplotlib", extra="plot")
    path = tmp_path / "curve.png"
    code, out, err = run_cli(capsys, "run", "addition", "--quick", "--epochs", "2", "--seed", str(seed),
                             "--plot", str(path))
    assert err == "" and code in (0, 1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_dash_m_entry_point():
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(cli.__file__))
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fusedlstm", "run", "echo", "--lr", "x"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "--lr", "'x'")
    proc = subprocess.run([sys.executable, "-m", "fusedlstm", "list"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("echo ")


def test_threads_flag_sets_kernel_threads(capsys):
    import fusedlstm

    before = fusedlstm.get_num_threads()
    try:
        code, out, err = run_cli(capsys, "run", "echo-sequence", "--threads", "1", "--sequences", "5",
                                 "--eval", "1", "--seed", "4", "--verbose", "0")
        assert err == "" and code in (0, 1)
        assert fusedlstm.get_num_threads() == 1
    finally:
        fusedlstm.set_num_threads(before)


def test_cell_gru_builds_the_task_with_a_gru(capsys, tmp_path, seed):
    """--cell gru: the same model with GRU(units) in place of LSTM(units), reported as such."""
    path = tmp_path / "chars-gru.weights.npz"
    code, out, err = run_cli(capsys, "run", "chars-seq", "--cell", "gru", "--units", "24", "--windows", "256",
                             "--epochs", "1", "--sample", "5", "--seed", str(seed), "--verbose", "0",
                             "--save", str(path))
    assert err == "" and code in (0, 1), err
    assert "GRU(24, return_sequences)" in out and "== chars-seq --cell gru:" in out
    assert path.exists()


def test_cell_swaps_only_the_recurrent_layers():
    from fusedlstm.layers import GRU, LSTM
    from fusedlstm.tasks import chars, seq2seq
    from fusedlstm.tasks.common import Context
    from fusedlstm.tasks.engine import load_engine

    assert registry.tasks_taking("cell") == ["seq2seq", "seq2seq-4", "chars", "chars-seq"]
    ctx = Context(load_engine(), 0, verbose=0, out=lambda *a: None)
    builders = {"seq2seq": lambda cfg: seq2seq.build_model(ctx, cfg),
                "chars-seq": lambda cfg: chars.build_seq_model(ctx.engine, cfg)}
    for name, build in builders.items():
        assert registry.task_config(name, quick=True).cell == "lstm"  # the default
        lstm, gru = (build(registry.task_config(name, {"cell": c}, quick=True)) for c in ("lstm", "gru"))
        kinds = [type(layer) for layer in lstm.layers]
        assert LSTM in kinds and [GRU if k is LSTM else k for k in kinds] == [type(l) for l in gru.layers], name
        assert [l.units for l in gru.layers if isinstance(l, GRU)] == [l.units for l in lstm.layers
                                                                       if isinstance(l, LSTM)], name


def test_run_all_with_cell_runs_the_tasks_that_take_it(capsys, monkeypatch):
    calls = {}

    def fake_run_all(**kwargs):
        calls.update(kwargs)
        return {}, 0

    monkeypatch.setattr(cli, "run_all", fake_run_all)
    code, out, err = run_cli(capsys, "run", "all", "--quick", "--cell", "gru", "--seed", "5")
    assert code == 0 and err == ""
    assert calls["tasks"] == registry.tasks_taking("cell") and calls["overrides"] == {"cell": "gru"}
    assert calls["quick"] is True and calls["seed"] == 5
    code, out, err = run_cli(capsys, "run", "all", "--quick", "--seed", "5")
    assert code == 0 and calls["tasks"] is None and calls["overrides"] == {}


def test_dtype_policy_flag_builds_the_task_under_it_and_restores_the_global(capsys, tmp_path, seed, monkeypatch):
    from fusedlstm import mixed_precision
    from fusedlstm.tasks import registry

    seen = []
    real = registry.run_task

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        seen.append({layer.dtype_policy.name for layer in result.model.layers})
        return result
    monkeypatch.setattr(registry, "run_task", spy)
    code, out, err = run_cli(capsys, "run", "echo", "--examples", "200", "--eval", "20", "--seed", str(seed),
                             "--dtype-policy", "mixed_bfloat16")
    assert err == "" and code in (0, 1)
    assert "dtype policy: mixed_bfloat16 (fusedlstm)" in out
    assert seen == [{"mixed_bfloat16"}]
    assert mixed_precision.global_policy().name == "float32"
    code, _, err = run_cli(capsys, "run", "echo", "--dtype-policy", "mixed_float16")
    assert code == 2 and "mixed_float16" in err
