"""bench/gemm_precision.py: one --quick run end to end (no timing is asserted).

The script checks each product's answers before timing it (bfloat16 within
bfloat16 rounding of float32, PyTorch's autocast too), so a clean exit means
every row timed the product it names.
"""

import json
import os
import subprocess
import sys

from conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_run_times_every_product(tmp_path):
    require("torch", "compare")
    out = tmp_path / "gemm.json"
    cmd = [sys.executable, "-m", "bench.gemm_precision", "--quick", "--rounds", "1", "--block-s", "0.002",
           "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + [p for p in sys.path if p]))
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {r["config"] for r in rows} == {"large", "xlarge", "chars_seq"}, rows
    for r in rows:
        assert set(r["ms"]) == {"f32", "bf16", "torch_f32", "autocast", "torch_bf16"}, r
        assert all(v > 0 for v in r["ms"].values()), r
    assert result["build_info"]["bf16_level"] in result["build_info"]["bf16_levels"]
