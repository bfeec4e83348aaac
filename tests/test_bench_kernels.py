"""bench/kernels.py runs (the smallest rows, one short round each) and reports every row it was asked for."""

import json
import sys
from pathlib import Path

from conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` lives at the repo root
from bench import kernels  # noqa: E402


def test_kernel_bench_runs_and_reports_each_row(tmp_path):
    torch = require("torch", "compare")
    from fusedlstm import _core
    out = tmp_path / "kernels.json"
    before = _core.get_num_threads(), torch.get_num_threads()
    try:  # main() sets both libraries' thread counts
        rc = kernels.main(["--only", "lstm,gru,conv1d", "--configs", "echo", "--rounds", "1", "--block-s", "0.01",
                           "--json", str(out)])
    finally:
        _core.set_num_threads(before[0])
        torch.set_num_threads(before[1])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"lstm echo", "gru echo", "conv1d cnn_lstm"}
    for label, r in rows.items():
        assert r["fusedlstm_ms"] > 0 and r["torch_ms"] > 0, (label, r)
