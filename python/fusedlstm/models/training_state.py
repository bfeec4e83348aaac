"""The whole state of a training run, and where fit is in it.

`get_training_state()` returns, as plain data, everything beyond the architecture
that the rest of a fit depends on; `set_training_state(state)` puts it back, after
checking all of it (a state that does not fit raises ValueError and changes
nothing). The keys, each optional in set_training_state:

    "weights":      arrays in model.weights order
    "optimizer":    {"class_name", "iterations" (calls to apply), "learning_rate" (None for a
                     schedule), "slots": the flat state arrays (optimizer.slot_names(): Adam's
                     m, v, ..., the EMA), None before the first step; Nadam: "u_product"}
    "rng":          {"global": the library Generator's state (fit's shuffle, unseeded
                     dropout), "layers": {path: state} of layers built with seed=}
    "layer_states": {path: [h, c]} of stateful LSTMs
    "position":     fit's position: {"epoch", "next_epoch", "done" (batches done in it),
                     "steps", "samples", "epoch_rng" (the state the epoch's shuffle was
                     drawn from), "trackers" (the running loss and metric sums)}, or None
                     outside fit. Setting it makes the next fit continue there.

Paths are fusedlstm.layers.base.walk_layers' (positions and class names). Checkpoint
files (fusedlstm.resume) store exactly this; a data-parallel strategy uses it to give
every replica rank 0's optimizer and random state.

FitProgress is fit's position while it runs.
"""

import warnings

import numpy as np

from .. import utils
from ..layers.walk import seeded_generators, stateful_layers, walk_layers

__all__ = ["FitProgress", "StateMixin"]


def _check_rng_state(state, what):
    """Raise ValueError unless `state` is a valid bit-generator state."""
    try:
        name = state["bit_generator"]
        bitgen = getattr(np.random, name)
        if not (isinstance(bitgen, type) and issubclass(bitgen, np.random.BitGenerator)):
            raise TypeError(f"{name!r} is not a NumPy bit generator")
        bitgen().state = state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"the saved state of {what} is invalid ({exc}).") from None


def _set_rng(gen, state):
    if type(gen.bit_generator).__name__ != state["bit_generator"]:
        raise ValueError(f"cannot restore a {state['bit_generator']} state into a "
                         f"{type(gen.bit_generator).__name__} generator")
    gen.bit_generator.state = state


# --- where fit is ----------------------------------------------------------------------------

class FitProgress:
    """fit's position (epoch, batches done) and the random state its epoch began with.

    fit creates one per call (model._fit_progress); a checkpoint saves its state() and
    set_training_state leaves a pending resume point (model._pending_resume) that the
    next fit consumes here.
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
            self.model._restore_trackers(r["trackers"], data)
            self._resume = None
            self.done = start
        return enumerate(batches, start), start

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
            "trackers": None if complete else self.model._tracker_state(),
        }


# --- the state as data ---------------------------------------------------------------------------

class StateMixin:
    """get_training_state / set_training_state (see the module docstring)."""

    def get_training_state(self):
        """Everything a fit depends on beyond the architecture, as copies (module docstring)."""
        opt = self.optimizer
        optimizer = None
        if opt is not None:
            st = opt.get_state()
            optimizer = {"class_name": type(opt).__name__, "iterations": int(st["iterations"]),
                         "learning_rate": st["learning_rate"], "slots": st["slots"] if opt.built else None}
            if "u_product" in st:
                optimizer["u_product"] = st["u_product"]
        progress = self._fit_progress
        return {
            "weights": [v.value.copy() for v in self.weights],
            "optimizer": optimizer,
            "rng": {"global": utils._global_rng().bit_generator.state,
                    "layers": {p: g.bit_generator.state for p, g in seeded_generators(self).items()}},
            "layer_states": {p: [np.array(s) for s in layer.states] for p, layer in stateful_layers(self).items()},
            "position": progress.state() if progress is not None else None,
        }

    def set_training_state(self, state):
        """Put back get_training_state()'s form (any subset of its keys): everything is
        checked first; a part that does not fit this model raises ValueError saying what,
        and nothing changes."""
        plan = self._check_training_state(state)
        if "weights" in state:
            for p, a in zip(self.weights, state["weights"]):
                p._write(a)
        if plan["optimizer"] is not None:
            self.optimizer.set_state(plan["optimizer"], plan["size"])
        for layer, vals in plan["layer_states"].items():
            layer.reset_states(vals)
        rng = state.get("rng") or {}
        gens = seeded_generators(self)
        for p, st in (rng.get("layers") or {}).items():
            _set_rng(gens[p], st)
        if rng.get("global") is not None:
            _set_rng(utils._global_rng(), rng["global"])
        if "position" in state:
            pos = state["position"]
            self._pending_resume = None if pos is None else {
                "next_epoch": pos["next_epoch"], "done": pos["done"], "steps": pos["steps"],
                "samples": pos["samples"], "epoch_rng": pos["epoch_rng"], "rng": rng.get("global"),
                "trackers": pos["trackers"]}

    def _check_training_state(self, state):
        """Validate `state` against this model; returns what to assign (touches nothing)."""
        if "weights" in state:
            params = self.weights
            if len(state["weights"]) != len(params):
                raise ValueError(f"the state holds {len(state['weights'])} weights, the model has {len(params)}.")
            for p, a in zip(params, state["weights"]):
                if np.shape(a) != p.shape:
                    raise ValueError(f"weight {p.path!r} has shape {p.shape} in the model but {np.shape(a)} in the state.")
        opt_state, size = state.get("optimizer"), None
        if opt_state is not None:
            opt = self.optimizer
            if opt is None:
                raise ValueError("the state holds an optimizer state, but the model is not compiled.")
            if "class_name" in opt_state and opt_state["class_name"] != type(opt).__name__:
                raise ValueError(
                    f"the checkpoint was written with optimizer {opt_state['class_name']!r}; the model is "
                    f"compiled with {type(opt).__name__!r}. Compile it as in the interrupted run.")
            size = self._ensure_store().size
            opt_state = dict(opt_state, slots=opt_state.get("slots") or [])
            opt.check_state(opt_state, size)
        rng = state.get("rng") or {}
        if "global" in rng:
            _check_rng_state(rng["global"], "the global random generator")
        if "layers" in rng:
            have, saved = seeded_generators(self), rng["layers"] or {}
            if sorted(have) != sorted(saved):
                raise ValueError(
                    f"the checkpoint holds random generators for layers {sorted(saved)}; the model's "
                    f"seeded layers are {sorted(have)}. Build the model as in the interrupted run.")
            for p, st in saved.items():
                _check_rng_state(st, f"layer {p!r}'s generator")
        pos = state.get("position")
        if pos is not None:
            _check_rng_state(pos.get("epoch_rng"), "the epoch's shuffle generator")
        layer_states = {}
        stateful = {p: layer for p, layer in walk_layers(self) if getattr(layer, "stateful", False)}
        for p, vals in (state.get("layer_states") or {}).items():
            layer = stateful.get(p)
            if layer is None or any(v is None for v in vals):
                raise ValueError(f"the checkpoint holds states for a stateful layer {p!r} that the model lacks.")
            want = tuple(layer.states[0].shape) if layer.states is not None else (None, layer.units)
            if len(vals) != 2 or any(v.shape != want or v.dtype.kind != "f" for v in vals):
                raise ValueError(
                    f"the states of layer {p!r} are {[v.shape for v in vals]}; "
                    f"the layer carries two float states of shape {want}.")
            layer_states[layer] = vals
        return {"optimizer": opt_state, "size": size, "layer_states": layer_states}

    # --- the running loss and metric sums of an interrupted epoch ----------------------------------

    def _tracker_state(self):
        out = {"loss": [self._loss_tracker.total, self._loss_tracker.count]}
        for t in self._out_loss_trackers:
            if t is not None:
                out[t.name] = [t.total, t.count]
        for _, m, name, _ in self._metric_objs or []:
            out["metric:" + name] = [float(v) for v in m.state()]
        return out

    def _restore_trackers(self, saved, data):
        if not saved:
            return
        trackers = [self._loss_tracker] + [t for t in self._out_loss_trackers if t is not None]
        for t in trackers:
            if t.name in saved:
                t.total, t.count = saved[t.name]
        metrics = {k[7:]: v for k, v in saved.items() if k.startswith("metric:")}
        if not metrics:
            return
        self._pending_metric_state = metrics
        ys = getattr(data, "ys", None)
        if self._metric_objs is None and ys is not None and all(y is not None for y in ys):
            # Metric objects are normally built at the first batch, from the shapes of the
            # targets and outputs; build them now, so an epoch with no batch left still logs them.
            preds = [np.empty(tuple(1 if d is None else d for d in t.shape)) for t in self.outputs]
            self._build_metrics(ys, preds)
        if self._metric_objs is not None:
            self._apply_pending_metrics()

    def _apply_pending_metrics(self):
        """Called once the metric objects exist: continue the interrupted epoch's sums."""
        saved = self._pending_metric_state
        self._pending_metric_state = None
        if saved:
            for _, m, name, _ in self._metric_objs or []:
                if name in saved:
                    m.set_state(saved[name])
