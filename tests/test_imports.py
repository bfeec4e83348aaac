"""The package's import structure: every module imports on its own, and lazy imports are
only for optional dependencies.

The import direction itself (no cycles, no import against the layer order, no MPI
below distributed...) is import-linter's job: `lint-imports` runs the contracts in
pyproject.toml in CI (.ci/run); tools/import_graph.py measures the same graph.
"""

import importlib.util
import json
import os
import subprocess
import sys

from conftest import IN_CI, package_parent, require

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "tools", "import_graph.py")


def test_every_module_imports_on_its_own_in_a_fresh_process():
    """Each module, imported first in a fresh process and without the package's __init__
    (tests/helpers/import_each.py), imports: none needs another one imported before it,
    and none takes a name from the package root (only the compiled `_core` module)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "helpers", "import_each.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    names = [name for name, _ in results]
    assert len(names) > 60 and "fusedlstm.models.training" in names and "fusedlstm.saving" in names
    missing = {name: tb for name, tb in results if tb and tb.startswith("missing optional dependency: ")}
    if IN_CI:
        assert not missing, f"CI installs every extra, yet: {missing}"
    failed = {name: tb for name, tb in results if tb is not None and name not in missing}
    assert not failed, "\n\n".join(f"{name}:\n{tb}" for name, tb in failed.items())


def _tool():
    require("grimp")  # tools/import_graph.py builds its graph with grimp (import-linter's)
    spec = importlib.util.spec_from_file_location("import_graph", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_function_local_imports_only_defer_optional_dependencies_and_say_why():
    found = _tool().local_imports(package_parent())
    assert found, "the package has lazy imports of h5py, torch, mpi4py, matplotlib: the scan found none"
    wrong = [f"{i['file']}:{i['line']} {i['modules']}" for i in found if not i["optional"]]
    assert not wrong, ("function-local imports of fusedlstm or required modules (import them at the top; "
                       f"a cycle is fixed by moving code, not by a lazy import): {wrong}")
    silent = [f"{i['file']}:{i['line']} {i['modules']}" for i in found if not i["reason"]]
    assert not silent, f"lazy imports of optional dependencies need a one-line comment saying why: {silent}"
