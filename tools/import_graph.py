"""Measure fusedlstm's import structure: cycles, imports against the layer order,
function-local imports, and the largest files.

    python tools/import_graph.py                      # the tree's python/fusedlstm
    python tools/import_graph.py --src OTHER/python   # another checkout, same layer order
    python tools/import_graph.py --json               # machine-readable

The layer order is the `layers` contract with `containers = ["fusedlstm"]` in
pyproject.toml's [tool.importlinter] (what CI enforces with lint-imports), so the
numbers here and the contract never drift apart. An import "upward" is one from a
module in a lower layer to one in a higher layer, or between two modules of one
layer marked independent (`a | b`); a cycle is a strongly connected set of modules
in grimp's import graph (function-local imports count: they are still arrows).

grimp does not see compiled modules: `from .. import _core` reads to it as an import
of the package itself (whose __init__ imports everything), which would join every
module that calls a kernel into one cycle. Those imports are counted here as what
they are, imports of the leaf `_core` (the contracts ignore imports of the package
root for the same reason; tests/test_imports.py checks that `_core` is the only
name any module takes from it).

A function-local import is "optional" when it imports a dependency fusedlstm does
not require (h5py, torch, mpi4py, ...): deferring those is their job. Every other
one is listed: on a clean tree there are none.
"""

import argparse
import ast
import json
import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

import grimp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "fusedlstm"
OPTIONAL = ("h5py", "torch", "mpi4py", "matplotlib", "tqdm", "onnx", "onnxruntime", "ml_dtypes", "keras",
            "tensorflow", "IPython")
# Our own modules that import an optional dependency at their top: deferring them defers it.
OPTIONAL_OWN = ("fusedlstm.io.onnx",)


def load_layers(pyproject):
    """[(is_independent, [module, ...]), ...] top first, from the importlinter layers contract."""
    with open(pyproject, "rb") as f:
        cfg = tomllib.load(f)
    for contract in cfg["tool"]["importlinter"]["contracts"]:
        if contract.get("type") == "layers" and contract.get("containers") == [PACKAGE]:
            out = []
            for raw in contract["layers"]:
                sep = "|" if "|" in raw else ":"
                names = [n.strip().strip("()") for n in raw.split(sep)]
                out.append((sep == "|", [f"{PACKAGE}.{n}" for n in names]))
            return out
    raise SystemExit(f"{pyproject}: no layers contract with containers = ['{PACKAGE}']")


def _top(module, names):
    """The declared layer module that `module` belongs to, or None."""
    best = None
    for n in names:
        if module == n or module.startswith(n + "."):
            if best is None or len(n) > len(best):
                best = n
    return best


_CORE_IMPORT = re.compile(r"^\s*from\s+\.+\s+import\s+_core\b|^\s*import\s+fusedlstm\._core\b")


def _drop_core_edges(graph):
    """Remove the imports of the package root that are imports of the compiled `_core`."""
    for importer in sorted(graph.modules):
        if PACKAGE not in graph.find_modules_directly_imported_by(importer):
            continue
        details = graph.get_import_details(importer=importer, imported=PACKAGE)
        if details and all(_CORE_IMPORT.match(d["line_contents"]) for d in details):
            graph.remove_import(importer=importer, imported=PACKAGE)


def cycles(graph, skip=()):
    """Strongly connected components with more than one module (Tarjan, iterative);
    modules in `skip` are left out of the graph."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def imported_by(m):
        return iter(sorted(n for n in graph.find_modules_directly_imported_by(m) if n not in skip))

    for root in sorted(m for m in graph.modules if m not in skip):
        if root in index:
            continue
        work = [(root, imported_by(root))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, imported_by(nxt)))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out, key=lambda c: (-len(c), c))


def upward_imports(graph, layers):
    rank, independent = {}, {}
    names = []
    for i, (indep, mods) in enumerate(layers):
        for m in mods:
            rank[m] = i
            independent[m] = indep
            names.append(m)
    out = []
    for importer in sorted(graph.modules):
        a = _top(importer, names)
        if a is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            b = _top(imported, names)
            if b is None or a == b:
                continue
            if rank[b] < rank[a] or (rank[b] == rank[a] and independent[a]):
                lines = sorted({d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)})
                out.append({"importer": importer, "imported": imported, "lines": lines})
    return out


class _LocalImports(ast.NodeVisitor):
    def __init__(self, lines, module=""):
        self.lines = lines
        self.package = module.rsplit(".", 1)[0] if module else ""  # what a relative import starts from
        self.depth = 0
        self.found = []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _import(self, node):
        if self.depth:
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                base = "." * node.level + (node.module or "")
                mods = [base] if node.module else [base + a.name for a in node.names]
            here = self.lines[node.lineno - 1]
            above = self.lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            reason = "#" in here or above.startswith("#")
            self.found.append({"line": node.lineno, "modules": mods, "reason": reason,
                               "optional": all(self._optional(m) for m in mods)})

    def _optional(self, mod):
        if mod.startswith("."):
            level = len(mod) - len(mod.lstrip("."))
            base = self.package.split(".")[:len(self.package.split(".")) - (level - 1)]
            mod = ".".join(base + [mod.lstrip(".")])
        return mod.split(".")[0] in OPTIONAL or any(mod == o or mod.startswith(o + ".") for o in OPTIONAL_OWN)

    visit_Import = visit_ImportFrom = _import


def local_imports(src):
    out = []
    for path in sorted(_py_files(src)):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        rel = os.path.relpath(path, src)[:-3].replace(os.sep, ".")
        v = _LocalImports(text.splitlines(), rel)  # a package's __init__ resolves from the package
        v.visit(ast.parse(text))
        for item in v.found:
            out.append(dict(item, file=os.path.relpath(path, src)))
    return out


def _py_files(src):
    for d, _, files in os.walk(os.path.join(src, PACKAGE)):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(d, f)


def largest_files(src, n):
    sizes = []
    for path in _py_files(src):
        with open(path, encoding="utf-8") as f:
            sizes.append((sum(1 for _ in f), os.path.relpath(path, src)))
    return sorted(sizes, reverse=True)[:n]


def measure(src, pyproject, top=8):
    sys.path.insert(0, src)
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    _drop_core_edges(graph)
    layers = load_layers(pyproject)
    local = local_imports(src)
    return {
        "modules": len(graph.modules),
        "cycles": cycles(graph),
        # The package's __init__ imports its subpackages, so one module importing the root
        # (`from .. import __version__`) joins everything into one cycle; without the root:
        "cycles_without_root": cycles(graph, skip={PACKAGE}),
        "upward": upward_imports(graph, layers),
        "local_imports": local,
        "largest": largest_files(src, top),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=os.path.join(ROOT, "python"), help="the folder holding fusedlstm/")
    p.add_argument("--pyproject", default=os.path.join(ROOT, "pyproject.toml"))
    p.add_argument("--top", type=int, default=8, help="how many of the largest files to list")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = measure(os.path.abspath(args.src), args.pyproject, args.top)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    local = r["local_imports"]
    other = [i for i in local if not i["optional"]]
    print(f"{r['modules']} modules")
    print(f"import cycles: {len(r['cycles'])}")
    for c in r["cycles"]:
        print(f"  {len(c)} modules: {', '.join(m[len(PACKAGE) + 1:] or '(root)' for m in c)}")
    print(f"import cycles without the package root: {len(r['cycles_without_root'])}")
    for c in r["cycles_without_root"]:
        print(f"  {len(c)} modules: {', '.join(m[len(PACKAGE) + 1:] for m in c)}")
    print(f"upward imports: {len(r['upward'])}")
    for u in r["upward"]:
        print(f"  {u['importer']} -> {u['imported']} (line {', '.join(map(str, u['lines']))})")
    print(f"function-local imports: {len(local)} ({len(local) - len(other)} of optional dependencies, "
          f"{sum(not i['reason'] for i in local if i['optional'])} of them without a reason comment; "
          f"{len(other)} others)")
    for i in other:
        print(f"  {i['file']}:{i['line']} {', '.join(i['modules'])}")
    print("largest files (lines):")
    for n, path in r["largest"]:
        print(f"  {n:5d} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
