"""Each task's quick configuration trains to its bar (fresh seed per run; digitsum on fixed seeds).

These are the README's `fusedlstm run all --quick` runs, one test each; the
seed is printed on failure (FUSEDLSTM_TEST_SEED replays it).
"""

import numpy as np
import pytest

from fusedlstm.tasks import registry

pytestmark = pytest.mark.slow


def _run(name, seed, **overrides):
    lines = []
    res = registry.run_task(name, overrides, quick=True, seed=seed, verbose=0, out=lines.append)
    assert res.seed == seed and res.steps > 0 and res.seconds > 0
    assert np.isfinite(res.value)
    return res, "\n".join(lines)


def test_echo_reaches_100_percent(seed):
    res, out = _run("echo", seed)
    assert res.value == 100.0 and res.passed, f"seed={seed}: {res.value}%\n{out}"
    assert "Expected:" in out and "Predicted:" in out


def test_echo_long_learns_with_a_curriculum(seed):
    # Bounded by work, not time, so the run is the same for a seed on any machine: with clipnorm 1
    # the quick run reached >= 94% within 4,000 steps on each of 20 seeds, 100% on 19 (without
    # clipping 17 of 20; docs/results.md); the time budget only stops a run that never converges.
    res, out = _run("echo-long", seed, max_steps=4000, time_budget=1e6)
    assert res.passed is None
    assert res.value >= 90.0, f"seed={seed}: {res.value}% {res.notes}\n{out}"


def test_echo_sequence(seed):
    res, out = _run("echo-sequence", seed)
    assert res.passed, f"seed={seed}: {res.value}%\n{out}"


def test_seq2seq(seed):
    res, out = _run("seq2seq", seed)
    assert res.passed, f"seed={seed}: {res.value}%\n{out}"


def test_seq2seq_4_learns(seed):
    # Half the quick run (which reaches ~85% whole outputs): chance is 1% per value.
    res, out = _run("seq2seq-4", seed, sequences=1000)
    assert res.passed is None
    per_value = float(res.notes[0].split()[-1].rstrip("%"))
    assert per_value >= 40.0, f"seed={seed}: {res.notes}\n{out}"


def test_chars_samples_text_and_reaches_epoch_1_bar(seed):
    res, out = _run("chars", seed)
    assert res.passed, f"seed={seed}: {res.notes}\n{out}"
    samples = [l for i, l in enumerate(out.splitlines()) if i and out.splitlines()[i - 1].startswith("----- epoch")]
    assert len(samples) == 2 and all(len(s) == 100 for s in samples)
    assert all(set(s) <= set(" abcdefghijklmnopqrstuvwxyz") for s in samples)


def test_chars_seq_with_stateful_sampling_twin(seed):
    res, out = _run("chars-seq", seed)
    assert res.passed, f"seed={seed}: {res.notes}\n{out}"
    assert "----- epoch 1" in out


@pytest.mark.parametrize("seed", [0, 7])
def test_digitsum_held_out(seed):
    # Fixed seeds, unlike the other tasks: digitsum generalises to its 180 held-out numbers on about
    # 19 seeds in 20 (docs/results.md: 20/20 on seeds 0-19, 19/20 on 100-119; seed 2302753202 stops at
    # 87.8%), so a fresh seed per run would fail CI one run in twenty. The sweep measures the rate.
    res, out = _run("digitsum", seed)
    assert res.passed, f"seed={seed}: {res.value}%\n{out}"
    assert "return_sequences" not in out  # no shape demonstration before training


def test_addition(seed):
    res, out = _run("addition", seed)
    assert res.passed, f"seed={seed}: {res.value}% {res.notes}\n{out}"
    assert "Expected:" in out and "Predicted:" in out


def test_chars_on_a_custom_text_reports_without_target(tmp_path, seed):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    res, out = _run("chars", seed, text=str(text), epochs=4, windows=0, sample=20)
    assert res.passed is None and res.target.startswith("report")
    assert "MISSED" not in " ".join(res.notes)
    # A 45-char phrase repeated: far below the 27-symbol chance loss ln 27 = 3.30.
    assert res.value < 1.0, f"seed={seed}: {res.value}\n{out}"


def test_motif_order_cnn_lstm(seed):
    res, out = _run("motif-order", seed)
    assert res.passed, f"seed={seed}: {res.value}%\n{out}"
    assert "first; predicted" in out


# --cell gru (issue #24): the same tasks with GRU(units) in place of each LSTM(units).

def test_seq2seq_gru(seed):
    res, out = _run("seq2seq", seed, cell="gru")
    assert res.task == "seq2seq --cell gru" and "GRU(150) x2" in out
    assert res.passed, f"seed={seed}: {res.value}%\n{out}"


def test_chars_gru_reaches_epoch_1_bar(seed):
    res, out = _run("chars", seed, cell="gru", sample=20)
    assert res.task == "chars --cell gru" and "GRU(64)" in out
    assert [type(l).__name__ for l in res.model.layers] == ["Embedding", "GRU", "Dense"]
    assert res.passed, f"seed={seed}: {res.notes}\n{out}"
