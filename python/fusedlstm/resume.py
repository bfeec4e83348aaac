"""Exact resume of an interrupted fit from a ModelCheckpoint file.

A checkpoint that ModelCheckpoint writes in fusedlstm's formats ('.fusedlstm' or
'.weights.npz') holds, beside the weights, everything the rest of the run depends
on, in the `__train_state__` entry (JSON) and the optimizer entries:

* the optimizer: class, iterations, learning rate, state buffers (Adam's m and v,
  SGD's momentum, ..., the EMA and gradient accumulator; Nadam's momentum product);
* the position: epoch, batches done in it, batches per epoch and sample count;
* the random streams: fusedlstm.utils' global Generator now and at the start of
  the epoch (the epoch's shuffle permutation is drawn from it), the Generator of
  every layer built with `seed=` (Dropout, LSTM dropout), and the carried states
  of stateful LSTMs;
* the running sums of the epoch's loss and metrics, so the logs (and callbacks
  that read them) continue as if nothing happened.

Resume recipe (the new process builds and compiles the same model first):

    model = build_and_compile()                      # same architecture and optimizer
    info = fusedlstm.callbacks.restore_checkpoint(model, "ckpt.weights.npz")
    model.fit(x, y, epochs=E, batch_size=B, initial_epoch=info["initial_epoch"],
              callbacks=[ModelCheckpoint("ckpt.weights.npz", save_freq=100)])

fit then skips the batches already done in that epoch (same permutation) and ends
with weights bitwise equal to a run that was never interrupted, given the same
data, batch size, thread count and callbacks. Call restore_checkpoint right
before fit: anything drawing from the global Generator in between (building new
layers) shifts the random stream. Not restored: Python's `random` and NumPy's
legacy global state (fusedlstm draws from neither), the internal counters of
callbacks other than ModelCheckpoint (EarlyStopping's patience, ...), and the
position of a Python generator passed as `x` (fit draws the epoch's remaining
batches from it as it is).

`model.load_weights(ckpt)` loads only the weights (Keras's meaning) and
`load_model(ckpt)` the model and its optimizer; only restore_checkpoint restores
the position and the random streams.

What is saved is the model's `get_training_state()` (fusedlstm.models.training_state)
in saving's container: this module knows the file layout, not the model's insides.
"""

import json
import os

import numpy as np

from . import saving as _saving

__all__ = ["restore_checkpoint", "save_checkpoint", "can_checkpoint"]

STATE_KEY = "__train_state__"
STATE_VERSION = 1


def _is_trainable_model(model):
    return callable(getattr(model, "get_training_state", None)) and callable(getattr(model, "set_training_state", None))


# --- writing -------------------------------------------------------------------------------

def can_checkpoint(model, path, weights_only):
    """Whether ModelCheckpoint can write a full training checkpoint at `path` for `model`."""
    kind = _saving.file_kind(path)
    return _is_trainable_model(model) and getattr(model, "compiled", False) and \
        kind == ("weights" if weights_only else "model")


def save_checkpoint(model, path, weights_only):
    """Write the weights (or the whole model) plus the training state, atomically."""
    kind = "weights" if weights_only else "model"
    arrays = _saving.file_arrays(model, kind, with_optimizer=True)
    state = model.get_training_state()
    for p, values in state["layer_states"].items():
        for i, s in enumerate(values):
            arrays[f"state:{p}:{i}"] = np.ascontiguousarray(s)
    opt = state["optimizer"]
    arrays[STATE_KEY] = _saving.json_entry({
        "version": STATE_VERSION,
        "optimizer": {"class_name": opt["class_name"], "iterations": opt["iterations"],
                      "learning_rate": opt["learning_rate"]},
        "position": state["position"],
        "rng": state["rng"],
        "layer_states": {p: len(values) for p, values in state["layer_states"].items()},
    })
    _saving.write_npz(path, arrays)


# --- reading -----------------------------------------------------------------------------------

def restore_checkpoint(model, filepath):
    """Restore a ModelCheckpoint file into `model` so that fit continues exactly.

    Args:
        model: the model, built and compiled as in the interrupted run (same
            architecture, optimizer class and loss).
        filepath: a checkpoint written by ModelCheckpoint with a '.fusedlstm' or
            '.weights.npz' path.

    Returns:
        A dict: `initial_epoch` (pass it to fit), `epoch` and `batch` (the
        checkpoint's 0-based epoch and the batches done in it), `iterations`
        (optimizer steps taken).

    Everything in the file is read and checked (checksum, weight shapes, optimizer
    state, random states) before the model changes: a bad file raises ValueError
    and leaves the model as it was.

    >>> info = restore_checkpoint(model, "ckpt.weights.npz")     # doctest: +SKIP
    >>> model.fit(x, y, epochs=10, initial_epoch=info["initial_epoch"])   # doctest: +SKIP
    """
    if not _is_trainable_model(model):
        raise TypeError(f"restore_checkpoint: expected a fusedlstm model, got {type(model).__name__}.")
    kind = _saving.file_kind(filepath)
    if kind not in _saving.OWN_KINDS:
        raise ValueError(
            f"restore_checkpoint: {os.fspath(filepath)!r} is not a fusedlstm checkpoint; expected a path ending "
            f"in {_saving.MODEL_SUFFIX!r} or {_saving.WEIGHTS_SUFFIX!r} written by ModelCheckpoint.")
    if not model.compiled:
        raise ValueError("restore_checkpoint: compile the model (with the optimizer of the interrupted run) first.")
    arrays, _ = _saving.read_checked(filepath, kind)
    if STATE_KEY not in arrays:
        raise ValueError(
            f"restore_checkpoint: {os.fspath(filepath)!r} holds no training state: it was written by "
            "model.save/save_weights, not by ModelCheckpoint. Use model.load_weights for its weights.")
    try:
        saved = json.loads(arrays[STATE_KEY].tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"restore_checkpoint: {os.fspath(filepath)!r} has an unreadable training state "
                         f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
        raise ValueError(
            f"restore_checkpoint: {os.fspath(filepath)!r} has training-state version "
            f"{saved.get('version') if isinstance(saved, dict) else saved!r}; this fusedlstm reads version {STATE_VERSION}.")
    try:
        state = _training_state(model, arrays, saved, filepath)
        pos = saved["position"]
        info = {"initial_epoch": int(pos["next_epoch"]) if pos else 0, "epoch": int(pos["epoch"]) if pos else None,
                "batch": int(pos["done"]) if pos else None, "iterations": state["optimizer"]["iterations"]}
        model.set_training_state(state)
    except ValueError as exc:
        raise ValueError(f"restore_checkpoint: {os.fspath(filepath)!r}: {exc}") from None
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # A training state no ModelCheckpoint writes: the file was forged (its checksum recomputed).
        raise ValueError(f"restore_checkpoint: {os.fspath(filepath)!r} has a malformed training state "
                         f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    return info


def _training_state(model, arrays, saved, path):
    """The file's entries as the model's training-state form (the weights checked here)."""
    weights = _saving.weight_arrays(model, arrays, path)
    opt = saved.get("optimizer") or {}
    entries = _saving.optimizer_entries(arrays) or {"iterations": int(opt.get("iterations", 0)), "slots": []}
    counts = {p: int(n) for p, n in (saved.get("layer_states") or {}).items()}
    if any(not 0 <= n <= len(arrays) for n in counts.values()):  # a forged count would build a huge list
        raise ValueError(f"its training state lists layer-state counts {counts}, more than the file's "
                         f"{len(arrays)} entries.")
    layer_states = {p: [arrays.get(f"state:{p}:{i}") for i in range(n)] for p, n in counts.items()}
    rng = saved.get("rng") or {}
    return {
        "weights": weights,
        "optimizer": dict(entries, class_name=opt.get("class_name"), learning_rate=opt.get("learning_rate")),
        "rng": {"global": rng.get("global"), "layers": rng.get("layers") or {}},
        "layer_states": layer_states,
        "position": saved.get("position"),
    }
