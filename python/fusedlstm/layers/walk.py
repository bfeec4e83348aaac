"""The layers inside a layer or model, found by walking `_sublayers()`, with stable paths.

A path is positions and class names ("2:Bidirectional/0:LSTM"), not layer names:
automatic names ('lstm_3') differ between two models built in one process. Checkpoint
files name layers by these paths, so their form is part of the file format.
"""

import numpy as np

__all__ = ["walk_layers", "seeded_generators", "stateful_layers"]


def walk_layers(layer):
    """(path, layer) for every layer inside `layer` (a model or a wrapper), nested ones included.

    A path is positions and class names ("2:Bidirectional/0:LSTM"), not layer names:
    automatic names ('lstm_3') differ between two models built in one process. The
    paths name layers in checkpoint files, so their form is part of the file format.
    """
    out, seen = [], set()

    def visit(parent, prefix):
        for i, sub in enumerate(parent._sublayers()):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            path = f"{prefix}{i}:{type(sub).__name__}"
            out.append((path, sub))
            visit(sub, path + "/")

    visit(layer, "")
    return out


def seeded_generators(layer):
    """{path: Generator} of the layers inside `layer` built with `seed=` (their own dropout stream)."""
    return {p: sub._rng for p, sub in walk_layers(layer)
            if isinstance(getattr(sub, "_rng", None), np.random.Generator)}


def stateful_layers(layer):
    """{path: layer} of the innermost stateful layers inside `layer` whose states exist."""
    return {p: sub for p, sub in walk_layers(layer)
            if getattr(sub, "stateful", False) and getattr(sub, "states", None) is not None
            and not sub._sublayers()}
