"""Training configuration across the Keras boundary: optimizer, loss, metrics, optimizer state.

Keras 3 keeps `compile_config` in config.json and the optimizer's variables in the
weights file under `optimizer/vars`: [iterations (int64), learning_rate (float32;
absent with a schedule), then groups of per-variable buffers, each group interleaved
over the trainable variables in model.trainable_variables order — the EMA
("average") with use_ema, the gradient accumulators with gradient_accumulation_steps,
then the rule's (Adam: momentum and velocity of each variable, then velocity_hat of
each with amsgrad; RMSprop: velocities, then momentums, then average gradients; ...:
Optimizer.keras_variable_groups()), and Nadam's momentum product last]. Our
optimizers keep the same buffers flat over the model's trainable weights
(fusedlstm.variables.ParamStore), in our model's weight order; the two orders are
matched variable by variable (layer name, index in the layer).

Carrying the state lets training resume across libraries with the same Adam
bias correction (iterations) and moments. Anything we cannot express (another
optimizer, a custom loss) is reported with a warning and the model is left
uncompiled rather than compiled differently.

Both directions go through our model's own description of its compile settings
(get_compile_config / compile_from_config): this module only translates between
Keras's compile_config and it; names and serialized objects are resolved by
losses.get, metrics.get and optimizers.get.
"""

import warnings
from typing import Any, List, NamedTuple, Optional

import numpy as np

from .. import untrusted
from .model_config import ModelNode
from .weight_layout import keras_layer_order, layer_var_names

__all__ = ["CompileInfo", "describe", "apply"]

class CompileInfo(NamedTuple):
    config: dict  # Keras 3 compile_config
    optimizer_vars: Optional[List[np.ndarray]]
    optimizer_name: str


def _keras_var_order(model, spec: ModelNode):
    """(layer name, index in layer.get_weights()) of each trainable weight, in Keras's order."""
    out = []
    for node in keras_layer_order(spec):
        if not node.trainable:
            continue
        out += [(node.name, k) for k in range(len(layer_var_names(node)))]
    return out


def _our_var_keys(model):
    """id(variable) -> (layer name, index in layer.weights)."""
    keys = {}
    for layer in model.layers:
        for k, v in enumerate(getattr(layer, "weights", [])):
            keys.setdefault(id(v), (layer.name, k))
    return keys


def _keras_loss(loss) -> Any:
    """Our serialized loss (a name, {"class_name", "config"}, or a list/dict of them) in Keras's form."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, list):
        return [_keras_loss(item) for item in loss]
    if isinstance(loss, dict) and "class_name" in loss:
        return {"module": "keras.losses", "class_name": loss["class_name"], "config": loss.get("config", {}),
                "registered_name": None}
    if isinstance(loss, dict):
        return {k: _keras_loss(v) for k, v in loss.items()}
    raise ValueError(f"cannot describe the loss {loss!r} for Keras")


def _first_output_metrics(metrics, output_names) -> Optional[list]:
    """The metric names of the first output (what Keras's compile_config can hold for us)."""
    if metrics is None:
        return None
    if isinstance(metrics, dict) and "class_name" not in metrics:
        first = metrics.get(output_names[0])
    elif isinstance(metrics, list) and len(output_names) > 1:
        first = metrics[0]
    else:
        first = metrics
    if first is None:
        return None
    out = []
    for m in (first if isinstance(first, list) else [first]):
        if isinstance(m, str):
            out.append(m)
        elif isinstance(m, dict) and "class_name" in m:
            # A metric object as Keras serializes it, so its settings (AUC's curve...) survive.
            out.append({"module": "keras.metrics", "class_name": m["class_name"], "config": dict(m.get("config") or {}),
                        "registered_name": None})
    return out or None


def describe(model, spec: ModelNode) -> Optional[CompileInfo]:
    """The compile_config and optimizer variables Keras 3 writes for this model, or None if uncompiled."""
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None:
        return None
    cls = type(opt).__name__
    try:
        config = opt.get_config()
    except NotImplementedError as exc:  # a learning rate Keras's file cannot name
        warnings.warn(f"model {model.name!r}: the optimizer is left out of the Keras file ({exc})",
                      UserWarning, stacklevel=4)
        return None
    decay = config.pop("decay", 0.0)
    if decay:
        warnings.warn(f"model {model.name!r}: the optimizer's Keras 2 `decay`={decay} is not a Keras 3 "
                      "setting and is left out of the Keras file.", UserWarning, stacklevel=4)
    try:
        ours = model.get_compile_config()
        loss = _keras_loss(ours["loss"])
    except (NotImplementedError, ValueError):
        return None  # a loss or metric Keras's file cannot name: the model is written uncompiled
    optimizer = {"module": "keras.optimizers", "class_name": cls, "config": config, "registered_name": None}
    compile_config = {"optimizer": optimizer, "loss": loss, "loss_weights": None,
                      "metrics": _first_output_metrics(ours["metrics"], model.output_names),
                      "weighted_metrics": None, "run_eagerly": False,
                      "steps_per_execution": 1, "jit_compile": False}
    return CompileInfo(compile_config, _optimizer_vars(model, spec, opt), config.get("name", cls.lower()))


def _has_lr_variable(opt) -> bool:
    """Keras keeps the learning rate as a variable unless it is a schedule or a callable."""
    return opt.get_state()["learning_rate"] is not None


def _optimizer_vars(model, spec: ModelNode, opt) -> List[np.ndarray]:
    trainable = list(model.trainable_weights)
    keys = _our_var_keys(model)
    state = opt.get_state()
    names = opt.slot_names()
    by_name = dict(zip(names, state["slots"])) if len(state["slots"]) == len(names) else {}
    per_var = {}  # (layer name, index) -> {slot name: array shaped like the variable}
    offset = 0
    for v in trainable:
        size = v.value.size
        per_var[keys[id(v)]] = {n: (by_name[n][offset:offset + size].reshape(v.shape) if by_name
                                    else _initial_slot(opt, n, v.shape)) for n in names}
        offset += size
    out = [np.asarray(state.get("iterations", 0), dtype=np.int64)]
    if _has_lr_variable(opt):
        out.append(np.asarray(opt.learning_rate, dtype=np.float32))
    order = _keras_var_order(model, spec)
    for group in opt.keras_variable_groups():
        for key in order:
            out += [np.asarray(per_var[key][n], dtype=np.float32) for n in group if key in per_var]
    if "u_product" in state:
        out.append(np.asarray(state["u_product"], dtype=np.float32))
    return out


def _initial_slot(opt, name, shape):
    """A buffer's value before the first update (Adagrad's and Ftrl's accumulators start at
    initial_accumulator_value, everything else at zero)."""
    initial = opt.get_config().get("initial_accumulator_value")
    if name == "accumulator" and initial is not None:
        return np.full(shape, initial, np.float32)
    return np.zeros(shape, np.float32)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

def _optimizer_config(cfg):
    """Keras's optimizer config as ours: a name, or {"class_name", "config"} without the flags of
    TensorFlow's Keras 2.11+ optimizers that mean nothing here."""
    if isinstance(cfg, str):
        return cfg
    if not isinstance(cfg, dict):
        raise ValueError(f"optimizer config {cfg!r} is not understood")
    kwargs = dict(cfg.get("config") or {})
    for key in ("is_legacy_optimizer", "jit_compile"):
        kwargs.pop(key, None)
    return {"class_name": cfg.get("registered_name") or cfg.get("class_name"), "config": kwargs}


def _loss_config(cfg):
    """Keras's loss config as ours (a Keras loss config's dtype is not a loss setting here)."""
    if cfg is None or isinstance(cfg, str):
        return cfg
    if isinstance(cfg, list):
        return [_loss_config(c) for c in cfg]
    if isinstance(cfg, dict) and "class_name" in cfg:
        kwargs = {k: v for k, v in (cfg.get("config") or {}).items() if k != "dtype"}
        return {"class_name": cfg["class_name"], "config": kwargs}
    if isinstance(cfg, dict):
        return {k: _loss_config(v) for k, v in cfg.items()}
    raise ValueError(f"loss {cfg!r} is not understood")


def _metrics_config(cfg):
    """Keras's metrics as ours: names as they are, metric objects as {"class_name", "config"}
    (metrics.deserialize refuses classes we do not have)."""
    if cfg is None:
        return None
    if isinstance(cfg, (list, tuple)):
        out = []
        for m in cfg:
            if isinstance(m, str):
                out.append(m)
            elif isinstance(m, dict) and isinstance(m.get("class_name"), str) and m.get("registered_name") in (None, m["class_name"]):
                out.append({"class_name": m["class_name"], "config": dict(m.get("config") or {})})
            else:
                raise ValueError(f"metric {m!r} is not understood")
        return out
    raise ValueError(f"metrics {cfg!r} are not understood")


def apply(model, data, source: str, warning_cls) -> None:
    """Compile `model` as the file's compile/training config says and restore the optimizer state."""
    cfg = data.model.compile_config if data.model is not None else None
    if not cfg:
        return
    try:
        model.compile_from_config({"optimizer": _optimizer_config(cfg.get("optimizer", cfg.get("optimizer_config"))),
                                   "loss": _loss_config(cfg.get("loss")), "loss_weights": cfg.get("loss_weights"),
                                   "metrics": _metrics_config(cfg.get("metrics")), "weighted_metrics": None})
    except (ValueError, TypeError, NotImplementedError) as exc:
        warnings.warn(f"{source}: the model was loaded but not compiled ({exc}); call model.compile yourself.",
                      warning_cls, stacklevel=3)
        return
    if data.optimizer is not None:
        _restore_state(model, data, source, warning_cls)


def _restore_state(model, data, source: str, warning_cls) -> None:
    opt = model.optimizer
    order = _keras_var_order(model, data.model)
    groups = opt.keras_variable_groups()
    head = 2 if _has_lr_variable(opt) else 1
    nadam = "u_product" in opt.get_state()
    expected = head + sum(len(g) for g in groups) * len(order) + (1 if nadam else 0)
    iterations = untrusted.scalar(data.optimizer[0], "the optimizer's iterations", source, "i")
    if len(data.optimizer) == head and iterations == 0:
        return  # a compiled, never-trained Keras optimizer: nothing to restore
    if len(data.optimizer) != expected:
        warnings.warn(f"{source}: the file's optimizer state has {len(data.optimizer)} variables, "
                      f"{type(opt).__name__} here needs {expected}; starting with a fresh optimizer state.",
                      warning_cls, stacklevel=4)
        return
    by_key = {key: {} for key in order}  # (layer name, index) -> {slot name: array}
    i = head
    for group in groups:
        for key in order:
            for name in group:
                by_key[key][name] = data.optimizer[i]
                i += 1
    keys = _our_var_keys(model)
    trainable = list(model.trainable_weights)
    slots = [np.concatenate([_slot(by_key[keys[id(v)]][n], v, n, source) for v in trainable])
             if trainable else np.zeros(0, np.float32) for n in opt.slot_names()]
    state = {"iterations": iterations, "slots": slots}
    if nadam:
        state["u_product"] = untrusted.scalar(data.optimizer[-1], "Nadam's u_product", source)
    opt.set_state(state, int(sum(v.value.size for v in trainable)))
    if head == 2:
        opt.learning_rate = untrusted.scalar(data.optimizer[1], "the optimizer's learning_rate", source)


def _slot(stored, variable, slot_name, source):
    """One variable's optimizer slot from the file, flat float32; it holds one value per weight."""
    a = np.asarray(stored)
    if a.dtype.kind not in "iuf" or a.size != variable.value.size:
        raise ValueError(f"{source}: the optimizer's {slot_name} for {variable.path} should hold "
                         f"{variable.value.size} numbers, but the file holds {a.dtype} of shape {a.shape}.")
    return a.astype(np.float32).reshape(-1)
