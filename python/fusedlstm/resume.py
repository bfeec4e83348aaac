"""Exact resume of an interrupted fit from a ModelCheckpoint file.

A checkpoint that ModelCheckpoint writes in fusedlstm's formats ('.fusedlstm' or
'.weights.npz') holds, beside the weights, everything the rest of the run depends
on, in the `__train_state__` entry (JSON) and the optimizer entries:

* the optimizer: class, iterations, learning rate, slot buffers (Adam's m and v,
  SGD's momentum, RMSprop's mean square);
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
"""

import json
import os
import warnings

import numpy as np

from . import saving as _saving
from . import utils

__all__ = ["restore_checkpoint", "save_checkpoint", "can_checkpoint", "FitProgress"]

STATE_KEY = "__train_state__"
STATE_VERSION = 1


# --- random streams and layer state --------------------------------------------------------

def _walk_layers(model):
    """(path, layer) for every layer inside `model`, nested models and wrappers included.

    A path is positions and class names ("2:Bidirectional/0:LSTM"), not layer names:
    automatic names ('lstm_3') differ between two models built in one process.
    """
    out, seen = [], set()

    def visit(layer, prefix):
        for i, sub in enumerate(layer._sublayers()):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            path = f"{prefix}{i}:{type(sub).__name__}"
            out.append((path, sub))
            visit(sub, path + "/")

    visit(model, "")
    return out


def _layer_generators(model):
    return {p: layer._rng for p, layer in _walk_layers(model)
            if isinstance(getattr(layer, "_rng", None), np.random.Generator)}


def _stateful_layers(model):
    return {p: layer for p, layer in _walk_layers(model)
            if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None
            and not layer._sublayers()}


def _check_rng_state(state, what, path):
    """Raise ValueError unless `state` is a valid bit-generator state."""
    try:
        name = state["bit_generator"]
        bitgen = getattr(np.random, name)
        if not (isinstance(bitgen, type) and issubclass(bitgen, np.random.BitGenerator)):
            raise TypeError(f"{name!r} is not a NumPy bit generator")
        bitgen().state = state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{os.fspath(path)!r}: the saved state of {what} is invalid ({exc}).") from None


def _set_rng(gen, state):
    if type(gen.bit_generator).__name__ != state["bit_generator"]:
        raise ValueError(f"cannot restore a {state['bit_generator']} state into a "
                         f"{type(gen.bit_generator).__name__} generator")
    gen.bit_generator.state = state


# --- where fit is ----------------------------------------------------------------------------

class FitProgress:
    """fit's position (epoch, batches done) and the random state its epoch began with.

    fit creates one per call (model._fit_progress); ModelCheckpoint saves it and
    restore_checkpoint leaves a pending resume point (model._pending_resume) that
    the next fit consumes here.
    """

    __slots__ = ("model", "epoch", "done", "complete", "steps", "samples", "epoch_rng", "_resume")

    def __init__(self, model, data, initial_epoch):
        self.model = model
        self.epoch = initial_epoch
        self.done = 0
        self.complete = False
        self.steps = data.steps
        self.samples = getattr(data, "n", None)
        self.epoch_rng = None
        resume = getattr(model, "_pending_resume", None)
        model._pending_resume = None
        if resume is not None and resume["next_epoch"] != initial_epoch:
            warnings.warn(
                f"restore_checkpoint: the checkpoint continues at epoch index {resume['next_epoch']}, but fit "
                f"was called with initial_epoch={initial_epoch}; training starts that epoch from its first "
                "batch, and the run will not repeat the interrupted one exactly.", stacklevel=4)
            resume = None
        if resume is not None and resume["done"]:
            for what, saved, now in (("batches per epoch", resume["steps"], self.steps),
                                     ("training samples", resume["samples"], self.samples)):
                if saved != now:
                    raise ValueError(
                        f"restore_checkpoint: the checkpoint stopped after batch {resume['done']} of epoch "
                        f"index {resume['next_epoch']} with {saved} {what}; this fit has {now}. Resume with the "
                        "same training data and batch_size (or start at the next epoch).")
        self._resume = resume if resume is not None and resume["done"] else None

    def epoch_batches(self, epoch, data):
        """(iterator over (step, batch), first step) for `epoch`, skipping the batches a resumed
        checkpoint already did, with the random streams where the interrupted run had them."""
        gen = utils._global_rng()
        r = self._resume if self._resume is not None and self._resume["next_epoch"] == epoch else None
        if r is not None:
            _set_rng(gen, r["epoch_rng"])
        self.epoch, self.done, self.complete = epoch, 0, False
        self.epoch_rng = gen.bit_generator.state
        start = r["done"] if r is not None else 0
        batches = data.epoch(start)  # draws the epoch's shuffle permutation now
        if r is not None:
            _set_rng(gen, r["rng"])
            _restore_trackers(self.model, r["trackers"], data)
            self._resume = None
            self.done = start
        return enumerate(batches, start), start

    def resume_point(self):
        """(epoch, batches done) of a pending mid-epoch resume, or None."""
        r = self._resume
        return None if r is None else (r["next_epoch"], r["done"])

    def step_done(self, step):
        self.done = step + 1

    def end_epoch(self):
        self.complete = True
        self.model._pending_metric_state = None

    def state(self):
        complete = self.complete
        return {
            "epoch": self.epoch,
            "next_epoch": self.epoch + 1 if complete else self.epoch,
            "done": 0 if complete else self.done,
            "steps": self.steps,
            "samples": self.samples,
            "epoch_rng": self.epoch_rng,
            "trackers": None if complete else _tracker_state(self.model),
        }


def _tracker_state(model):
    out = {"loss": [model._loss_tracker.total, model._loss_tracker.count]}
    for t in model._out_loss_trackers:
        if t is not None:
            out[t.name] = [t.total, t.count]
    for _, m, name, _ in model._metric_objs or []:
        out["metric:" + name] = [m.total, m.count]
    return out


def _restore_trackers(model, saved, data):
    if not saved:
        return
    trackers = [model._loss_tracker] + [t for t in model._out_loss_trackers if t is not None]
    for t in trackers:
        if t.name in saved:
            t.total, t.count = saved[t.name]
    metrics = {k[7:]: v for k, v in saved.items() if k.startswith("metric:")}
    if not metrics:
        return
    model._pending_metric_state = metrics
    ys = getattr(data, "ys", None)
    if model._metric_objs is None and ys is not None and all(y is not None for y in ys):
        # Metric objects are normally built at the first batch, from the shapes of the
        # targets and outputs; build them now, so an epoch with no batch left still logs them.
        preds = [np.empty(tuple(1 if d is None else d for d in t.shape)) for t in model.outputs]
        model._build_metrics(ys, preds)
    if model._metric_objs is not None:
        apply_pending_metrics(model)


def apply_pending_metrics(model):
    """Called once the metric objects exist: continue the interrupted epoch's sums."""
    saved = getattr(model, "_pending_metric_state", None)
    model._pending_metric_state = None
    if saved:
        for _, m, name, _ in model._metric_objs or []:
            if name in saved:
                m.total, m.count = saved[name]


# --- writing -------------------------------------------------------------------------------

def can_checkpoint(model, path, weights_only):
    """Whether ModelCheckpoint can write a full training checkpoint at `path` for `model`."""
    from .models.training import Trainer

    kind = _saving._suffix_kind(path)
    return isinstance(model, Trainer) and getattr(model, "compiled", False) and \
        kind == ("weights" if weights_only else "model")


def capture(model):
    """The JSON-able training state of `model` (see the module docstring)."""
    opt = model.optimizer
    try:
        lr = None if callable(opt._lr) else float(opt._lr)
    except AttributeError:
        lr = None
    progress = getattr(model, "_fit_progress", None)
    layer_states = {}
    for p, layer in _stateful_layers(model).items():
        layer_states[p] = len(layer.states)
    return {
        "version": STATE_VERSION,
        "optimizer": {"class_name": type(opt).__name__, "iterations": int(opt.iterations),
                      "learning_rate": lr},
        "position": progress.state() if progress is not None else None,
        "rng": {"global": utils._global_rng().bit_generator.state,
                "layers": {p: g.bit_generator.state for p, g in _layer_generators(model).items()}},
        "layer_states": layer_states,
    }


def save_checkpoint(model, path, weights_only):
    """Write the weights (or the whole model) plus the training state, atomically."""
    kind = "weights" if weights_only else "model"
    arrays = _saving.file_arrays(model, kind, with_optimizer=True)
    for p, layer in _stateful_layers(model).items():
        for i, s in enumerate(layer.states):
            arrays[f"state:{p}:{i}"] = np.ascontiguousarray(s)
    arrays[STATE_KEY] = _saving._json_array(capture(model))
    _saving._write_npz(path, arrays)


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
    from .models.training import Trainer

    if not isinstance(model, Trainer):
        raise TypeError(f"restore_checkpoint: expected a fusedlstm model, got {type(model).__name__}.")
    kind = _saving._suffix_kind(filepath)
    if kind not in ("model", "weights"):
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
        state = json.loads(arrays[STATE_KEY].tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"restore_checkpoint: {os.fspath(filepath)!r} has an unreadable training state ({exc}).") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(
            f"restore_checkpoint: {os.fspath(filepath)!r} has training-state version "
            f"{state.get('version') if isinstance(state, dict) else state!r}; this fusedlstm reads version {STATE_VERSION}.")
    plan = _check(model, arrays, state, filepath)
    _apply(model, plan)
    pos = state["position"]
    return {"initial_epoch": pos["next_epoch"] if pos else 0, "epoch": pos["epoch"] if pos else None,
            "batch": pos["done"] if pos else None, "iterations": plan["iterations"]}


def _check(model, arrays, state, path):
    """Validate everything and return what to assign; touches nothing."""
    name = os.fspath(path)
    weights = _saving._check_weights(model, arrays, path)
    opt_state = state.get("optimizer") or {}
    opt = model.optimizer
    if opt_state.get("class_name") != type(opt).__name__:
        raise ValueError(
            f"restore_checkpoint: {name!r} was written with optimizer {opt_state.get('class_name')!r}; the "
            f"model is compiled with {type(opt).__name__!r}. Compile it as in the interrupted run.")
    entries = _saving.optimizer_entries(arrays)
    store = model._ensure_store()
    slots = entries[1] if entries is not None else []
    if entries is not None or opt._n_slots():
        _saving.check_optimizer_slots(opt, slots, store.size, path)
    iterations = entries[0] if entries is not None else int(opt_state.get("iterations", 0))
    rng = state.get("rng") or {}
    _check_rng_state(rng.get("global"), "the global random generator", path)
    have = _layer_generators(model)
    saved = rng.get("layers") or {}
    if sorted(have) != sorted(saved):
        raise ValueError(
            f"restore_checkpoint: {name!r} holds random generators for layers {sorted(saved)}; the model's "
            f"seeded layers are {sorted(have)}. Build the model as in the interrupted run.")
    for p, st in saved.items():
        _check_rng_state(st, f"layer {p!r}'s generator", path)
    pos = state.get("position")
    if pos is not None:
        _check_rng_state(pos.get("epoch_rng"), "the epoch's shuffle generator", path)
    layer_states = {}
    stateful = {p: layer for p, layer in _walk_layers(model) if getattr(layer, "stateful", False)}
    for p, n in (state.get("layer_states") or {}).items():
        layer = stateful.get(p)
        vals = [arrays.get(f"state:{p}:{i}") for i in range(int(n))]
        if layer is None or any(v is None for v in vals):
            raise ValueError(f"restore_checkpoint: {name!r} holds states for a stateful layer {p!r} that the model lacks.")
        want = (getattr(layer, "_state_batch", None), layer.units)
        if len(vals) != 2 or any(v.shape != want or v.dtype.kind != "f" for v in vals):
            raise ValueError(
                f"restore_checkpoint: {name!r}: the states of layer {p!r} are {[v.shape for v in vals]}; "
                f"the layer carries two float states of shape {want}.")
        layer_states[layer] = vals
    return {"weights": weights, "slots": slots, "iterations": iterations, "lr": opt_state.get("learning_rate"),
            "size": store.size, "rng": rng, "position": pos, "layer_states": layer_states}


def _apply(model, plan):
    for p, a in zip(model.weights, plan["weights"]):
        p.value[...] = a
    opt = model.optimizer
    opt.set_state({"iterations": plan["iterations"], "slots": plan["slots"]}, plan["size"])
    if plan["lr"] is not None and not callable(opt._lr):
        opt.learning_rate = plan["lr"]
    for layer, vals in plan["layer_states"].items():
        layer.reset_states(vals)
    gens = _layer_generators(model)
    for p, st in plan["rng"]["layers"].items():
        _set_rng(gens[p], st)
    _set_rng(utils._global_rng(), plan["rng"]["global"])
    pos = plan["position"]
    model._pending_resume = None if pos is None else {
        "next_epoch": pos["next_epoch"], "done": pos["done"], "steps": pos["steps"],
        "samples": pos["samples"], "epoch_rng": pos["epoch_rng"], "rng": plan["rng"]["global"],
        "trackers": pos["trackers"]}
