"""Files written by an older fusedlstm load, predict and resume training bitwise as they did.

tests/fixtures/ holds one file of each of our formats written by the code before the
package refactor (commit 5055592) and the numbers that code computed from them
(tests/helpers/format_fixtures.py says what each file holds and how they were made).
Each ISA level this CPU has recomputes them in a fresh interpreter and must match the
numbers recorded for that level exactly. A CPU with none of the recorded levels (ARM)
compares with a tolerance instead: its kernels round differently.
"""

import json
import os

import numpy as np
import pytest

from fusedlstm import build_info, saving
from fusedlstm.backend import clear_session
from fusedlstm.models import load_model

from helpers import format_fixtures as ff


def _expected():
    with np.load(ff.EXPECTED, allow_pickle=False) as z:
        exp = {k: z[k] for k in z.files}
    meta = json.loads(exp.pop("__meta__").tobytes())
    return exp, meta


EXPECTED, META = _expected()
LEVELS = META["levels"]


def _for_level(level):
    prefix = level + "/"
    return {k[len(prefix):]: v for k, v in EXPECTED.items() if k.startswith(prefix)}


def _compare(got, want, exact, level):
    assert sorted(set(want) - set(got)) == [], f"{level}: results missing"
    for key, w in want.items():
        g = got[key]
        assert g.shape == w.shape and g.dtype == w.dtype, f"{level} {key}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        if exact:
            assert np.array_equal(g, w), f"{level} {key}: differs from the pre-refactor result (max |d| = " \
                                         f"{np.max(np.abs(g.astype(np.float64) - w)) if g.size else 0})"
        else:
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-5, err_msg=f"{level} {key}")


def test_fixtures_were_written_by_the_pre_refactor_code():
    assert META["written_by"] == ff.WRITTEN_BY == "5055592"
    # The only numbers recorded since: SGD Nesterov's, in Keras's order (tests/fixtures/README.md).
    assert META.get("recomputed") == [{"prefixes": ["sequential/fit_loss", "sequential/trained/"],
                                       "see": "tests/fixtures/README.md"}]
    for name in ("functional.fusedlstm", "sequential.fusedlstm", "functional.weights.npz",
                 "checkpoint.weights.npz", "checkpoint.fusedlstm", "stateful.fusedlstm"):
        assert os.path.exists(os.path.join(ff.FIXTURES, name)), name


@pytest.mark.parametrize("level", LEVELS)
def test_old_files_give_the_recorded_numbers_bitwise(level):
    available = build_info()["isa_available"]
    if level not in available:
        pytest.skip(f"this CPU lacks {level} (available: {available}); another level checks the files")
    _compare(ff.compute_at(level), _for_level(level), exact=True, level=level)


def test_old_files_load_on_a_cpu_without_the_recorded_levels():
    """Where no recorded level runs (another architecture), the numbers agree to rounding."""
    native = build_info()["isa"]
    if native in LEVELS:
        pytest.skip(f"{native} is a recorded level: compared bitwise")
    _compare(ff.compute(ff.FIXTURES), _for_level(LEVELS[0]), exact=False, level=native)


@pytest.mark.parametrize("name", ["functional.fusedlstm", "sequential.fusedlstm", "checkpoint.fusedlstm"])
def test_a_loaded_model_saves_the_same_file(tmp_path, name):
    """The writer is unchanged too: saving a loaded model gives back the same entries."""
    src = os.path.join(ff.FIXTURES, name)
    m = load_model(src)
    dst = str(tmp_path / name)
    m.save(dst)
    old, _ = saving.read_checked(src, "model")
    new, _ = saving.read_checked(dst, "model")
    old.pop("__train_state__", None)  # a checkpoint's training state is not part of model.save
    for k in [k for k in old if k.startswith("state:")]:
        old.pop(k)
    old_meta = json.loads(old.pop("__model__").tobytes())
    new_meta = json.loads(new.pop("__model__").tobytes())
    assert new_meta == old_meta
    old.pop(saving.INTEGRITY_KEY)
    new.pop(saving.INTEGRITY_KEY)
    assert sorted(new) == sorted(old)
    for k in old:
        assert old[k].dtype == new[k].dtype and np.array_equal(old[k], new[k]), k


def test_a_weights_file_saved_again_is_the_same(tmp_path):
    src = os.path.join(ff.FIXTURES, "functional.weights.npz")
    clear_session()  # automatic layer names (in the file's weight paths) as in the fresh process that wrote it
    m = ff.functional_model()
    m.load_weights(src)
    dst = str(tmp_path / "w.weights.npz")
    m.save_weights(dst)
    old, old_meta = saving.read_checked(src, "weights")
    new, new_meta = saving.read_checked(dst, "weights")
    assert new_meta == old_meta
    assert sorted(new) == sorted(old)
    for k in old:
        if k != saving.INTEGRITY_KEY:
            assert np.array_equal(old[k], new[k]), k
