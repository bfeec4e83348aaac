"""Training configuration across the Keras boundary: optimizer, loss, metrics, optimizer state.

Keras 3 keeps `compile_config` in config.json and the optimizer's variables in the
weights file under `optimizer/vars`: [iterations (int64), learning_rate (float32),
then per trainable variable, in model.trainable_variables order, its slots —
Adam: momentum, velocity; SGD with momentum: momentum; RMSprop: velocity]. Our
optimizers keep the same slots as flat buffers over the model's trainable
weights (models/store.py), in our model's weight order; the two orders are
matched variable by variable (layer name, index in the layer).

Carrying the state lets training resume across libraries with the same Adam
bias correction (iterations) and moments. Anything we cannot express (another
optimizer, a custom loss) is reported with a warning and the model is left
uncompiled rather than compiled differently.
"""

import warnings
from typing import Any, List, NamedTuple, Optional

import numpy as np

from .model_config import ModelNode
from .weight_layout import keras_layer_order, layer_var_names

__all__ = ["CompileInfo", "describe", "apply"]

# Keras 3 constructor arguments we write for each optimizer (others are Keras defaults).
_OPT_KEYS = {
    "Adam": ("name", "learning_rate", "beta_1", "beta_2", "epsilon", "clipnorm", "clipvalue", "global_clipnorm"),
    "SGD": ("name", "learning_rate", "momentum", "nesterov", "clipnorm", "clipvalue", "global_clipnorm"),
    "RMSprop": ("name", "learning_rate", "rho", "epsilon", "clipnorm", "clipvalue", "global_clipnorm"),
}


class CompileInfo(NamedTuple):
    config: dict  # Keras 3 compile_config
    optimizer_vars: Optional[List[np.ndarray]]
    optimizer_name: str


def _n_slots(optimizer) -> int:
    cls = type(optimizer).__name__
    if cls == "Adam":
        return 2
    if cls == "SGD":
        return 1 if getattr(optimizer, "momentum", 0.0) else 0
    return 1  # RMSprop


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


def _serialize_loss(loss) -> Any:
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, (list, tuple)):
        return [_serialize_loss(item) for item in loss]
    if isinstance(loss, dict):
        return {k: _serialize_loss(v) for k, v in loss.items()}
    if hasattr(loss, "get_config"):
        return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    name = getattr(loss, "__name__", None)
    if name:
        return name
    raise ValueError(f"cannot describe the loss {loss!r} for Keras")


def _serialize_metrics(model) -> Optional[list]:
    cfg = getattr(model, "_metric_cfg", None)
    if not cfg or not cfg[0]:
        return None
    per_output = cfg[0]
    first = per_output[0]
    if first is None:
        return None
    items = first if isinstance(first, (list, tuple)) else [first]
    out = []
    for m in items:
        if isinstance(m, str):
            out.append(m)
        elif getattr(m, "name", None):
            out.append(m.name)
    return out or None


def describe(model, spec: ModelNode) -> Optional[CompileInfo]:
    """The compile_config and optimizer variables Keras 3 writes for this model, or None if uncompiled."""
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None:
        return None
    cls = type(opt).__name__
    if cls not in _OPT_KEYS:
        return None
    raw = opt.get_config()
    if raw.get("decay"):
        warnings.warn(f"model {model.name!r}: the optimizer's Keras 2 `decay`={raw['decay']} is not a Keras 3 "
                      "setting and is left out of the Keras file.", UserWarning, stacklevel=4)
    config = {k: raw[k] for k in _OPT_KEYS[cls] if k in raw}
    optimizer = {"module": "keras.optimizers", "class_name": cls, "config": config, "registered_name": None}
    try:
        loss = _serialize_loss(model.loss)
    except ValueError:
        return None
    compile_config = {"optimizer": optimizer, "loss": loss, "loss_weights": None,
                      "metrics": _serialize_metrics(model), "weighted_metrics": None, "run_eagerly": False,
                      "steps_per_execution": 1, "jit_compile": False}
    return CompileInfo(compile_config, _optimizer_vars(model, spec, opt), config.get("name", cls.lower()))


def _optimizer_vars(model, spec: ModelNode, opt) -> List[np.ndarray]:
    trainable = list(model.trainable_weights)
    keys = _our_var_keys(model)
    state = opt.get_state()
    slots = state.get("slots") or []
    n_slots = _n_slots(opt)
    per_var = {}
    offset = 0
    for v in trainable:
        size = v.value.size
        per_var[keys[id(v)]] = [
            (s[offset:offset + size].reshape(v.shape) if len(slots) == n_slots else np.zeros(v.shape, np.float32))
            for s in (slots if len(slots) == n_slots else [None] * n_slots)]
        offset += size
    out = [np.asarray(state.get("iterations", 0), dtype=np.int64),
           np.asarray(opt.learning_rate, dtype=np.float32)]
    for key in _keras_var_order(model, spec):
        out += [np.asarray(a, dtype=np.float32) for a in per_var.get(key, [])]
    return out


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

def _build_optimizer(cfg):
    from .. import optimizers

    if isinstance(cfg, str):
        return optimizers.get(cfg)
    if not isinstance(cfg, dict):
        raise ValueError(f"optimizer config {cfg!r} is not understood")
    cls = cfg.get("class_name")
    kwargs = dict(cfg.get("config") or {})
    # Keras 3 writes its whole constructor signature; drop settings at their inactive defaults.
    for key, default in (("weight_decay", None), ("use_ema", False), ("ema_momentum", 0.99),
                         ("ema_overwrite_frequency", None), ("loss_scale_factor", None),
                         ("gradient_accumulation_steps", None), ("amsgrad", False), ("centered", False),
                         ("momentum", 0.0), ("is_legacy_optimizer", False)):
        if key in kwargs and kwargs[key] == default and not (key == "momentum" and cls == "SGD"):
            kwargs.pop(key)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, dict):
        raise ValueError("a learning-rate schedule is not supported")
    return optimizers.deserialize({"class_name": cls, "config": kwargs})


def _build_loss(cfg):
    from .. import losses

    if cfg is None or isinstance(cfg, str):
        return cfg
    if isinstance(cfg, list):
        return [_build_loss(c) for c in cfg]
    if isinstance(cfg, dict) and "class_name" in cfg:
        cls = getattr(losses, cfg["class_name"], None)
        if cls is None or not isinstance(cls, type):
            raise ValueError(f"loss {cfg['class_name']!r} is not supported")
        kwargs = {k: v for k, v in (cfg.get("config") or {}).items() if k != "dtype"}
        return cls(**kwargs)
    if isinstance(cfg, dict):
        return {k: _build_loss(v) for k, v in cfg.items()}
    raise ValueError(f"loss {cfg!r} is not understood")


def _build_metrics(cfg):
    if cfg is None:
        return None
    if isinstance(cfg, (list, tuple)):
        out = []
        for m in cfg:
            if isinstance(m, str):
                out.append(m)
            elif isinstance(m, dict) and isinstance((m.get("config") or {}).get("name"), str):
                out.append(m["config"]["name"])
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
        optimizer = _build_optimizer(cfg.get("optimizer", cfg.get("optimizer_config")))
        loss = _build_loss(cfg.get("loss"))
        metrics = _build_metrics(cfg.get("metrics"))
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=cfg.get("loss_weights"))
    except (ValueError, TypeError, NotImplementedError) as exc:
        warnings.warn(f"{source}: the model was loaded but not compiled ({exc}); call model.compile yourself.",
                      warning_cls, stacklevel=3)
        return
    if data.optimizer is not None:
        _restore_state(model, data, source, warning_cls)


def _restore_state(model, data, source: str, warning_cls) -> None:
    opt = model.optimizer
    n_slots = _n_slots(opt)
    order = _keras_var_order(model, data.model)
    expected = 2 + n_slots * len(order)
    if len(data.optimizer) == 2 and int(np.asarray(data.optimizer[0])) == 0:
        return  # a compiled, never-trained Keras optimizer: nothing to restore
    if len(data.optimizer) != expected:
        warnings.warn(f"{source}: the file's optimizer state has {len(data.optimizer)} variables, "
                      f"{type(opt).__name__} here needs {expected}; starting with a fresh optimizer state.",
                      warning_cls, stacklevel=4)
        return
    by_key = {}
    for i, key in enumerate(order):
        by_key[key] = data.optimizer[2 + i * n_slots: 2 + (i + 1) * n_slots]
    keys = _our_var_keys(model)
    trainable = list(model.trainable_weights)
    slots = [np.concatenate([np.asarray(by_key[keys[id(v)]][s], dtype=np.float32).reshape(-1) for v in trainable])
             if trainable else np.zeros(0, np.float32) for s in range(n_slots)]
    size = int(sum(v.value.size for v in trainable))
    opt.set_state({"iterations": int(np.asarray(data.optimizer[0])), "slots": slots}, size)
    opt.learning_rate = float(np.asarray(data.optimizer[1]))
