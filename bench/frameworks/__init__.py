"""One module per framework, each giving a `Framework` with the same small interface.

A framework's module is imported only when it is selected, and its heavy
imports happen in `setup()`, so a missing library shows up as a status
("not installed: ...") in the report instead of an ImportError.

Interface (duck-typed; see `Framework`):

    fw.setup(threads)            import the library, pin its thread count
    fw.precision                 "float32" or "mixed_bfloat16", set before setup();
                                 a framework that cannot run a precision raises
                                 Unavailable from setup()
    fw.version() -> str
    m = fw.build(cfg, weights)   a compiled model holding `weights` (Keras order)
    b = m.prepare(x, y, y_ids)   the batch as this framework's user would hold it
    m.train(b)                   one training step (forward, backward, Adam);
                                 returns the loss (maybe lazily; float() it);
                                 absent where fw.inference_only (ONNX Runtime)
    m.infer(b)                   one inference call on b's x; returns probabilities
    m.to_numpy(out)              inference output as a NumPy array
    fw.fit_epoch(cfg, weights, x, y, y_ids, batch_size, seed) -> (seconds, loss)
"""

import importlib
from typing import Dict, List

PRECISIONS = ("float32", "mixed_bfloat16")

# name -> (module, class, constructor kwargs). Order = default run order.
REGISTRY: Dict[str, tuple] = {
    "fusedlstm": ("bench.frameworks.fusedlstm_impl", "FusedLstm", {}),
    "torch": ("bench.frameworks.torch_impl", "Torch", {}),
    "onnxruntime": ("bench.frameworks.onnxruntime_impl", "OnnxRuntime", {}),
    "keras": ("bench.frameworks.keras_impl", "Keras", {"backend": "torch"}),
    "keras_tf": ("bench.frameworks.keras_impl", "Keras", {"backend": "tensorflow"}),
}


class Unavailable(Exception):
    """The framework cannot run here; the message says why (shown in the report)."""


class Framework:
    name = "?"
    # True when it cannot share a process with the others (Keras fixes its
    # backend per process): the runner then times it in a worker process.
    isolated = False
    # True for a runtime that only runs inference: no training step, loss or e2e run.
    inference_only = False
    # The bench's --precision; the runner sets it before setup().
    precision = "float32"

    def check_installed(self) -> None:
        """Raise Unavailable if the library is missing, without importing it."""

    def setup(self, threads: int) -> None:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def build(self, cfg, weights):
        raise NotImplementedError

    def fit_epoch(self, cfg, weights, x, y, y_ids, batch_size: int, seed: int):
        raise NotImplementedError


def parse_names(spec: str) -> List[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise ValueError(f"--frameworks: expected a comma-separated subset of {list(REGISTRY)}, got {spec!r}")
    return names


def create(name: str) -> Framework:
    module, cls, kwargs = REGISTRY[name]
    fw = getattr(importlib.import_module(module), cls)(**kwargs)
    fw.name = name
    return fw
