"""Import every module of fusedlstm on its own, each in a fresh process (tests/test_imports.py).

    python import_each.py   # prints a JSON list of [module, traceback, "missing optional dependency: x" or null]

Each module is imported in a child forked from this interpreter, which has loaded
numpy and nothing of fusedlstm. The child first puts an empty stand-in for the
package itself in sys.modules, so `import fusedlstm.x` runs x and what x imports, in
x's own order, and not the package's __init__ (which imports everything in one fixed
order and would hide a module that only works after some other one was imported, or
one that takes a name from the package root).
"""

import importlib
import importlib.util
import json
import multiprocessing
import os
import sys
import traceback
import types

import numpy  # noqa: F401 -- loaded once here, so the children only pay for fusedlstm

PACKAGE = "fusedlstm"
SKIP = {f"{PACKAGE}.__main__"}  # importing it runs the command line (tests/test_cli.py runs it)
# A module built on an optional extra (fusedlstm.io.onnx on onnx) may import it at its top:
# where that extra is not installed, the module is reported as needing it, not as broken.
OPTIONAL = ("h5py", "torch", "mpi4py", "matplotlib", "tqdm", "onnx", "onnxruntime", "ml_dtypes", "keras",
            "tensorflow", "IPython")
MISSING = "missing optional dependency: "


def modules(root):
    out = []
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        parts = [] if rel == "." else rel.split(os.sep)
        if not os.path.exists(os.path.join(folder, "__init__.py")):
            continue
        if parts:
            out.append(".".join([PACKAGE] + parts))
        for f in sorted(files):
            if f.endswith(".py") and f != "__init__.py":
                out.append(".".join([PACKAGE] + parts + [f[:-3]]))
    return sorted(m for m in out if m not in SKIP)


def import_alone(name):
    spec = importlib.util.find_spec(PACKAGE)
    stand_in = types.ModuleType(PACKAGE)
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__spec__ = spec
    stand_in.__file__ = spec.origin
    sys.modules[PACKAGE] = stand_in
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in OPTIONAL:
            return MISSING + e.name.split(".")[0]
        return traceback.format_exc()
    except BaseException:  # noqa: BLE001 -- reported to the test, whatever it is
        return traceback.format_exc()
    return None


def main():
    root = os.path.dirname(importlib.util.find_spec(PACKAGE).origin)
    names = modules(root)
    ctx = multiprocessing.get_context("fork")
    # maxtasksperchild=1: every module gets a process of its own, forked from this one.
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        results = pool.map(import_alone, names, chunksize=1)
    print(json.dumps([[n, r] for n, r in zip(names, results)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
