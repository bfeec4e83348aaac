"""keras.optimizers: Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta, Lion, Ftrl, RMSprop, SGD, and schedules.

Each optimizer updates the model's whole flat weight buffer in one `_core` call per
step (base.py, rules.py); `schedules` holds the learning-rate schedules.

`get(identifier)` resolves a name ('adam', 'adamw', ...), a config dict
({"class_name": "Adam", "config": {...}}, Keras's form with "module" too) or an
instance: compile(), load_model and the Keras-file reader all call it. Each class
registers itself in fusedlstm.registry under its class name.

`serialize(optimizer)` is what our files hold: {"class_name", "config"} where the
config is get_config() without the options added with issue 25 (weight_decay, use_ema,
..., amsgrad, RMSprop's momentum and centered) while they are at their defaults, and
with Keras 2's `decay` always — so a model compiled as before writes the very config
files written before hold. from_config fills in the defaults.
"""

from .. import registry as _registry
from . import schedules
from .base import Optimizer
from .rules import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Ftrl, Lion, Nadam, RMSprop

__all__ = ["Optimizer", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Ftrl", "RMSprop", "SGD",
           "schedules", "get", "serialize", "deserialize"]

_KERAS_ONLY = ("adafactor", "lamb", "muon", "lossscaleoptimizer", "multioptimizer", "schedulefreeadamw")

# Options at these values are left out of serialize()'s config (see the module docstring).
_QUIET_DEFAULTS = {"weight_decay": None, "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                   "loss_scale_factor": None, "gradient_accumulation_steps": None}
_QUIET_RULE_DEFAULTS = {"Adam": {"amsgrad": False}, "RMSprop": {"momentum": 0.0, "centered": False}}


def __getattr__(name):
    if name.lower() in _KERAS_ONLY:
        raise NotImplementedError(f"keras.optimizers.{name} is not implemented by fusedlstm; available: "
                                  f"{', '.join(__all__[1:11])}.")
    raise AttributeError(f"module 'fusedlstm.optimizers' has no attribute {name!r}")


def _names():
    return ", ".join(repr(n) for n in _registry.names("optimizers") if n.islower())


def get(identifier):
    """An Optimizer from a name ('adam', 'sgd', ...), a {"class_name", "config"} dict (serialize's
    or Keras's form) or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _registry.lookup("optimizers", identifier.lower())
        if cls is None:
            if identifier.lower() in _KERAS_ONLY:
                raise NotImplementedError(f"Optimizer {identifier!r} is not implemented by fusedlstm; use one of "
                                          f"{_names()}.")
            raise ValueError(f"Could not interpret optimizer identifier: {identifier!r} (argument `optimizer`, "
                             f"expected one of {_names()} or a fusedlstm.optimizers.Optimizer).")
        return cls()
    raise TypeError(f"Could not interpret optimizer identifier: {identifier!r} (expected one of {_names()} or a "
                    "fusedlstm.optimizers.Optimizer).")


def serialize(optimizer):
    """{"class_name", "config"}: our files' form (see the module docstring)."""
    cls = _registry.registered_name(optimizer)
    config = optimizer.get_config()
    quiet = dict(_QUIET_DEFAULTS, **_QUIET_RULE_DEFAULTS.get(type(optimizer).__mro__[0].__name__, {}))
    for key, default in quiet.items():
        if key in config and config[key] == default and type(config[key]) is type(default):
            del config[key]
    config.setdefault("decay", 0.0)
    return {"class_name": cls, "config": config}


def deserialize(config, custom_objects=None):
    """An optimizer from serialize()'s form or Keras's ({"module", "class_name", "config", ...}).
    Class names are case-insensitive for the built-in optimizers, as in Keras."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret optimizer identifier: {config!r} (a dict needs 'class_name' and "
                         "'config').")
    name = config.get("registered_name") or config["class_name"]
    cls = _registry.lookup("optimizers", name) or _registry.lookup("optimizers", str(name).lower())
    if custom_objects and name in custom_objects:
        cls = custom_objects[name]
    if not isinstance(cls, type):
        if str(name).lower() in _KERAS_ONLY:
            raise NotImplementedError(f"Optimizer class {name!r} is not implemented by fusedlstm.")
        raise NotImplementedError(f"Optimizer class {name!r} is not supported by fusedlstm (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}), custom_objects)
