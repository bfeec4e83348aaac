"""What compile() sets up: the loss of each output, the metrics, and their description.

compile() resolves every name through the get() of its module (losses.get,
metrics.get, optimizers.get). Once the graph exists it fixes, per output, the loss
object and its weight (`compiled_losses`), and finds the outputs whose softmax (or,
with from_logits, linear) Dense feeds a cross-entropy: those train through
`_core.dense_softmax_xent` in one call (step.py). Metric objects are made at the
first batch, from the shapes of its targets and outputs ('accuracy' depends on them).

`get_compile_config()` / `compile_from_config()` are the model's description of its
training configuration, as in Keras: saved in our files and translated to Keras's
compile_config by fusedlstm.io.
"""

import numbers

import numpy as np

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..layers.dense import Dense
from ..layers.wrappers import TimeDistributed
from . import strategy as _strategy

__all__ = ["OutputLoss", "CompileMixin"]


class OutputLoss:
    """One output's loss as compiled: `loss` (a losses.Loss), `weight` (None = 1) and
    `name` (the output's name). The rest is the fused softmax+xent step, if any."""

    __slots__ = ("loss", "weight", "name", "fused", "dense", "wcache")

    def __init__(self, loss, weight, name):
        self.loss = loss
        self.weight = weight
        self.name = name
        self.fused = None  # index of the plan step computed by dense_softmax_xent
        self.dense = None
        self.wcache = {}


def _per_output(spec, n, names, what):
    """A compile() argument as one entry per output (single value, list or dict by output name)."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"Unknown entries in `{what}` dictionary: {unknown}. Only expected the following keys: {names}")
        return [spec.get(k) for k in names]
    if isinstance(spec, (list, tuple)) and n > 1:
        if len(spec) != n:
            raise ValueError(
                f"When passing a list as `{what}`, it should have one entry per each model output. "
                f"The model has {n} outputs, but you passed {what} with {len(spec)} entries.")
        return list(spec)
    return [spec] * n


def _metrics_per_output(metrics, n, names, arg):
    """keras.src.trainers.compile_utils.CompileMetrics._build_metrics_set: one entry per
    output (None or a list of metric identifiers)."""
    if not metrics:
        return [None] * n
    if n == 1:
        return [_flatten(metrics)]
    if isinstance(metrics, (list, tuple)) and len(metrics) == n:
        return [None if m is None else _flatten(m) for m in metrics]
    if isinstance(metrics, dict) and len(metrics) <= n and set(metrics) <= set(names):
        return [None if metrics.get(name) is None else _flatten(metrics[name]) for name in names]
    if isinstance(metrics, dict):
        first = f"Node type mismatch; expected <class 'tuple'>, but got <class 'dict'>."
    else:
        first = f"Node arity mismatch; expected {n}, but got {len(metrics)}."
    raise ValueError(
        f"{first}\nInvalid `{arg}`. `{arg}` should contain metrics objects and either be a dict or a list "
        f"matching the output names of the functional model {list(names)} or match the output structure of "
        f"the model: {['X'] * n}.\nReceived: {arg}={metrics}")


def _flatten(x):
    """The leaves of a (nested) list or dict of metric identifiers, dict values in key order."""
    if isinstance(x, dict) and "class_name" not in x:
        return [leaf for k in sorted(x) for leaf in _flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _flatten(item)]
    return [x]


def _map(x, fn):
    """`fn` on every leaf of a compile() argument (a value, a list per output, a dict by
    output name); a serialized object ({"class_name", ...}) is a leaf, not a dict."""
    if isinstance(x, dict) and "class_name" not in x:
        return {k: _map(v, fn) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_map(v, fn) for v in x]
    return fn(x)


class CompileMixin:
    """compile(), the compiled losses and metrics, and the compile config."""

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True, sample_weight_mode=None, distribute=None,
                **kwargs):
        """Configure training (Keras 3 names; `sample_weight_mode` of Keras 2 is accepted:
        sample weights of shape (batch, time) are recognised from their shape).

        `distribute`: a fusedlstm.distributed.MPIStrategy trains data-parallel over MPI
        ranks (docs/distributed.md); None uses the default strategy (set by the CLI
        under mpirun), False none."""
        if kwargs:
            bad = sorted(kwargs)
            raise (NotImplementedError if "target_tensors" in kwargs else TypeError)(
                f"compile() got unsupported keyword argument(s): {bad}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, numbers.Integral) or steps_per_execution < 1:
            raise ValueError(f"Received an invalid value for argument `steps_per_execution`, expected a positive integer, got {steps_per_execution!r}.")
        if sample_weight_mode not in (None, "temporal"):
            raise ValueError(f"Received an invalid value for argument `sample_weight_mode`, expected None or 'temporal', got {sample_weight_mode!r}.")
        for arg, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value and not isinstance(value, (list, tuple, dict)):
                raise ValueError(f"Expected `{arg}` argument to be a list, tuple, or dict. Received instead: "
                                 f"{arg}={value} of type {type(value)}")
        self._distribute = _strategy.resolve(distribute)
        self.optimizer = _optimizers.get(optimizer)
        self.loss = loss
        self._compile_args = (loss, loss_weights, metrics, weighted_metrics)
        self.compiled = True
        if self._graph_ready():
            self._finish_compile()

    def _graph_ready(self):
        return True

    def _finish_compile(self):
        """Resolve losses/metrics per output and the fused loss steps (needs the graph)."""
        loss, loss_weights, metrics, weighted_metrics = self._compile_args
        n, names = len(self.outputs), self.output_names
        losses = _per_output(loss, n, names, "loss")
        weights = _per_output(loss_weights, n, names, "loss_weights") if loss_weights is not None else [None] * n
        specs = []
        for k, (l, w) in enumerate(zip(losses, weights)):
            if l is None:
                specs.append(None)
                continue
            obj = _losses.get(l)
            if obj.reduction in (None, "none"):
                # Keras accepts it here and fails at the first training step (the gradient of
                # a non-scalar loss); refuse it where it is written instead.
                raise ValueError(
                    f"The loss {obj.name!r} of output '{names[k]}' has reduction={obj.reduction!r}: a compiled "
                    "loss must reduce to one number per batch. Use 'sum_over_batch_size' (the default), "
                    "'sum', 'mean' or 'mean_with_sample_weight'; reduction=None is for calling the loss directly.")
            if w is not None and (isinstance(w, bool) or not isinstance(w, numbers.Real)):
                raise TypeError(f"loss_weights entries must be numbers, got {w!r}.")
            specs.append(OutputLoss(obj, None if w is None else float(w), names[k]))
        self._loss_specs = specs
        # Matched to the outputs when first needed (_metrics_per_output), as Keras does: a
        # model that is compiled and only predicts never meets a mismatch.
        self._metric_cfg = None
        self._metric_objs = None
        self._has_metrics = bool(metrics) or bool(weighted_metrics)
        self._out_loss_trackers = [_metrics.Mean(name=f"{s.name}_loss") if s is not None else None
                                   for s in specs] if sum(s is not None for s in specs) > 1 else []
        self._find_fused_losses()
        self._ensure_store()

    def _find_fused_losses(self):
        plan = self._plan
        consumers = {}
        for st in plan.steps:
            for i in st.ins:
                consumers[i] = consumers.get(i, 0) + 1
        outs = plan.output_slots
        fused = set()
        for k, spec in enumerate(self._loss_specs):
            if spec is None or spec.loss.fused_kind is None:
                continue
            slot = outs[k]
            if consumers.get(slot, 0) or outs.count(slot) > 1:
                continue
            idx = plan.producers.get(slot, -1)
            if idx < 0:
                continue
            st = plan.steps[idx]
            op = st.op
            dense = op.layer if isinstance(op, TimeDistributed) and type(op.layer) is Dense else op
            if type(dense) is not Dense or st.training is not None or st.act is not None \
                    or dense.activity_regularizer is not None:
                continue  # an activity penalty needs the probabilities as a layer output
            from_logits = spec.loss.fused_kind[1]
            act = dense.activation.__name__
            if (act == "softmax" and not from_logits) or (act == "linear" and from_logits):
                spec.fused, spec.dense = idx, dense
                fused.add(idx)
        self._train_steps = [st for k, st in enumerate(plan.steps) if k not in fused]

    def _assert_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before using the model ({what}).")
        if self._loss_specs is None:
            raise ValueError(f"Model '{self.name}' has not been built yet; call it on data or build() it first ({what}).")
        if not any(s is not None for s in self._loss_specs):
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        if what != "compute_gradients":
            self._metric_structure()  # Keras checks the metrics against the outputs here

    @property
    def compiled_losses(self):
        """One OutputLoss per output (None where the output has no loss); None before the
        model is compiled and built."""
        return None if self._loss_specs is None else list(self._loss_specs)

    # --- the description of compile() -----------------------------------------------------

    def get_compile_config(self):
        """compile()'s arguments as JSON-able data (None when not compiled): the optimizer,
        losses and metrics serialized by their modules, structure kept (one per output,
        or a dict by output name). Raises NotImplementedError for objects that cannot be
        rebuilt from a file (a custom metric function)."""
        if not self.compiled:
            return None
        loss, loss_weights, metrics, weighted = self._compile_args
        return {
            "optimizer": _optimizers.serialize(self.optimizer),
            "loss": _map(loss, _losses.serialize),
            "loss_weights": loss_weights,
            "metrics": _map(metrics, _metrics.serialize),
            "weighted_metrics": _map(weighted, _metrics.serialize),
        }

    def compile_from_config(self, config):
        """compile() from get_compile_config()'s form (names and serialized objects are
        resolved by losses.get, metrics.get and optimizers.get)."""
        def obj(module):
            return lambda c: module.deserialize(c) if isinstance(c, dict) else c

        self.compile(optimizer=_optimizers.get(config["optimizer"]),
                     loss=_map(config.get("loss"), obj(_losses)),
                     loss_weights=config.get("loss_weights"),
                     metrics=_map(config.get("metrics"), obj(_metrics)),
                     weighted_metrics=_map(config.get("weighted_metrics"), obj(_metrics)))

    # --- metrics --------------------------------------------------------------------------

    def _metric_structure(self):
        """compile()'s metrics and weighted_metrics matched to the outputs: (plain, weighted),
        each one entry per output (None or a list). Raises Keras's ValueError when they do
        not fit the outputs; called before the first step of fit/evaluate."""
        if self._metric_cfg is None:
            _, _, metrics, weighted = self._compile_args
            n, names = len(self.outputs), self.output_names
            self._metric_cfg = (_metrics_per_output(metrics, n, names, "metrics"),
                                _metrics_per_output(weighted, n, names, "weighted_metrics"))
        return self._metric_cfg

    def _build_metrics(self, ys, preds):
        objs = []
        plain, weighted = self._metric_structure()
        multi = len(self.outputs) > 1
        for k in range(len(self.outputs)):
            for cfg, is_w in ((plain[k], False), (weighted[k], True)):
                if cfg is None:
                    continue
                for ident in cfg:
                    if ident is None:
                        continue
                    y_shape, p_shape = np.shape(ys[k]), preds[k].shape
                    m = _metrics.get(ident, y_shape, p_shape)
                    if not m.built:
                        m.build(y_shape, p_shape)
                    name = m.name
                    if multi:
                        name = f"{self.output_names[k]}_{name}"
                    taken = {o[2] for o in objs}
                    if name in taken and is_w:
                        name = f"weighted_{m.name}" if not multi else f"{self.output_names[k]}_weighted_{m.name}"
                    base, i = name, 1
                    while name in taken:
                        name = f"{base}_{i}"
                        i += 1
                    objs.append((k, m, name, is_w))
        self._metric_objs = objs

    def build_metrics(self, ys, predictions):
        """Make the metric objects if they do not exist yet (fit makes them at the first batch,
        from the shapes of its targets and outputs), and continue a restored checkpoint's
        running sums in them."""
        if self._metric_objs is None and self._has_metrics:
            self._build_metrics(ys, predictions)
            self._apply_pending_metrics()

    @property
    def metrics_built(self):
        """Whether the compiled metrics' objects exist (or there are none to make)."""
        return self._metric_objs is not None or not self._has_metrics

    @property
    def metrics(self):
        out = [self._loss_tracker] if self.compiled else []
        for _, m, name, _ in self._metric_objs or []:
            out.append(m)
        out.extend(t for t in self._out_loss_trackers if t is not None)
        return out

    @property
    def metrics_names(self):
        return list(self._logs().keys()) if self.compiled else []

    def reset_metrics(self):
        self._loss_tracker.reset_state()
        for t in self._out_loss_trackers:
            if t is not None:
                t.reset_state()
        for _, m, _, _ in self._metric_objs or []:
            m.reset_state()

    def _logs(self):
        # Keras 3's order (evaluate's list): total loss, per-output losses, then metrics.
        logs = {"loss": self._loss_tracker.result()}
        for t in self._out_loss_trackers:
            if t is not None:
                logs[t.name] = t.result()
        for _, m, name, _ in self._metric_objs or []:
            logs[name] = m.result()
        return logs

    def update_metrics(self, ys, predictions, masks, sws):
        """Add one batch to the compiled metrics (not the loss trackers)."""
        if self._metric_objs is None:
            self._build_metrics(ys, predictions)
            self._apply_pending_metrics()
        for k, m, _, is_w in self._metric_objs:
            sw = None
            if is_w and sws is not None:
                sw = sws[k] if len(sws) > 1 else sws[0]
            if isinstance(m, _metrics.MeanMetricWrapper):
                # Keras takes the output mask into these metrics' weights only.
                m.update_state(ys[k], predictions[k], sample_weight=sw, mask=masks[k])
            else:
                m.update_state(ys[k], predictions[k], sample_weight=sw)

    def metric_state(self):
        """The compiled metrics' accumulators (Metric.state(): sums only) as one float64
        vector (empty before the metric objects exist)."""
        parts = [m.state() for _, m, _, _ in self._metric_objs or []]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def set_metric_state(self, state):
        """Set the accumulators from metric_state()'s vector."""
        at = 0
        for _, m, _, _ in self._metric_objs or []:
            n = m.state().size
            m.set_state(state[at:at + n])
            at += n
