"""Shared test fixtures: fresh seeds per run (printed on failure) and optional extras."""

import importlib
import os
import secrets

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def package_parent() -> str:
    """The folder holding the fusedlstm these tests import: the installed wheel's
    site-packages in CI, python/ in a dev tree. Subprocesses put it on PYTHONPATH so
    they test the same build (a clean clone's python/ has no compiled _core)."""
    import fusedlstm
    return os.path.dirname(os.path.dirname(os.path.abspath(fusedlstm.__file__)))


def require(module_name: str, extra: str = "test"):
    """Import an optional dependency, or skip the test where it is missing.

    Under CI=true a missing extra is a failure, not a skip: CI installs every
    extra, so a vanished suite means a broken set-up, not a shorter run.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"{module_name} is not installed (pip install 'fusedlstm[{extra}]'): {exc}"
        if IN_CI:
            pytest.fail(msg + " -- CI=true, so this is an error, not a skip")
        pytest.skip(msg)


@pytest.fixture
def seed(request):
    """A fresh seed for every test run; reported when the test fails.

    FUSEDLSTM_TEST_SEED=<int> replays a failing run.
    """
    s = int(os.environ.get("FUSEDLSTM_TEST_SEED", secrets.randbits(32)))
    request.node.user_properties.append(("seed", s))
    return s


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        if seeds:
            rep.sections.append(("seed", f"replay with FUSEDLSTM_TEST_SEED={seeds[0]}"))


# The torch interchange suites (test_torch_io*.py): torch itself and fusedlstm.io.torch_io.

@pytest.fixture(scope="module")
def torch():
    return require("torch", "compare")


@pytest.fixture(scope="module")
def torch_io(torch):
    from fusedlstm.io import torch_io
    return torch_io


def bf16_level_or_skip(level):
    """`level` when this CPU/build has that bfloat16 GEMM level, else skip saying which it has."""
    from fusedlstm import _core

    available = _core.build_info()["bf16_levels"]
    if level not in available:
        pytest.skip(f"this CPU/build lacks the {level} bfloat16 level (available: {available})")
    return level
