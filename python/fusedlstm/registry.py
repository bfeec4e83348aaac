"""One registry of the library's classes and functions by name, and Keras's serialization form.

An object that can be saved is described as `{"class_name": name, "config": {...}}`
(what `serialize_keras_object` returns: `get_config()` under its registered name), and
rebuilt by looking the name up here and calling `cls.from_config(config)`. So the code
that reads files (fusedlstm.saving, fusedlstm.io) never imports a layer, model, loss or
optimizer class: each class registers itself where it is defined, and importing
`fusedlstm` imports every module that defines one.

Names live in kinds, because one name can mean two things ("MeanSquaredError" is a loss
and a metric): layers, models, losses, metrics, optimizers, initializers, activations,
regularizers, constraints, schedules (more kinds can be added by registering into them).
Within a kind an object has one registered name (what serialization writes) and any
number of aliases (other spellings a user may pass to `get()`: "mse" for mean_squared_error).

    @register("layers")                       # the library's own classes
    class LSTM(Layer): ...

    @register_keras_serializable(package="my_pkg")   # user classes, as in Keras:
    class MyLayer(fusedlstm.layers.Layer): ...       # registered as "my_pkg>MyLayer"

Loading only ever instantiates registered classes: a file naming anything else (a
Lambda, a class from some module) is refused; no code named in a file is imported.
"""

import threading

__all__ = ["register", "lookup", "names", "registered_name", "register_keras_serializable",
           "get_registered_object", "get_registered_name", "serialize_keras_object",
           "deserialize_keras_object", "deserialize_subclass"]

_lock = threading.Lock()
_BY_KIND = {}  # kind -> {name or alias: object}
_CANONICAL = {}  # kind -> {name: object}: the names serialization writes
_CUSTOM = {}  # "package>name" -> object (register_keras_serializable)
_NAME_OF = {}  # id(object) -> registered name (custom objects: "package>name")


def register(kind, name=None, aliases=()):
    """Decorator registering one of the library's classes or functions under `kind`.

    Args:
        kind: the namespace ('layers', 'losses', ...).
        name: the registered name (default the object's __name__): what a saved config
            holds as class_name.
        aliases: other names `get()` resolves to the same object.
    """
    def deco(obj):
        key = name or obj.__name__
        with _lock:
            canon = _CANONICAL.setdefault(kind, {})
            table = _BY_KIND.setdefault(kind, {})
            for n in (key,) + tuple(aliases):
                old = table.get(n)
                if old is not None and old is not obj:
                    raise ValueError(f"fusedlstm.registry: {kind} name {n!r} is already taken by {old!r}.")
                table[n] = obj
            canon[key] = obj
            _NAME_OF.setdefault(id(obj), key)
        return obj

    return deco


def lookup(kind, name):
    """The object registered as `name` (a name or an alias) in `kind`, a user-registered
    object of that name ("package>name"), or None."""
    if not isinstance(name, str):
        return None
    obj = _BY_KIND.get(kind, {}).get(name)
    return obj if obj is not None else _CUSTOM.get(name)


def names(kind, aliases=True):
    """Sorted names registered in `kind` (with aliases unless aliases=False)."""
    table = _BY_KIND if aliases else _CANONICAL
    return sorted(table.get(kind, {}))


def registered_name(obj):
    """The name `obj` (a class or function, or an instance of a registered class) is saved under."""
    for candidate in (obj, type(obj)):
        n = _NAME_OF.get(id(candidate))
        if n is not None:
            return n
    named = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__name__"))
    return obj.__name__ if named else type(obj).__name__


# --- Keras's public names (re-exported by fusedlstm.saving) ---------------------------------------

def register_keras_serializable(package="Custom", name=None):
    """Register a user class or function so that saved configs can name it (Keras's decorator).

    The object is saved as "package>name" (name defaults to its __name__), the key
    `get_registered_object` and the loaders look up.
    """
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"Received an invalid value for argument `package`, expected a string without '>', got {package!r}.")

    def deco(obj):
        key = f"{package}>{name or obj.__name__}"
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register a class that does not have a get_config() method: {obj!r}.")
        with _lock:
            _CUSTOM[key] = obj
            _NAME_OF[id(obj)] = key
        return obj

    return deco


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object named `name`: from `custom_objects`, the user registrations, then
    `module_objects` (Keras's lookup order); None when nothing has that name."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _CUSTOM:
        return _CUSTOM[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None


def get_registered_name(obj):
    """The name `obj` is registered under ("package>name" for user objects)."""
    return registered_name(obj)


def serialize_keras_object(obj):
    """A JSON-able description: plain values as they are, lists and dicts element-wise,
    registered functions by name, objects as {"class_name", "config"}."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(o) for o in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if hasattr(obj, "get_config") and not isinstance(obj, type):
        return {"class_name": registered_name(obj), "config": obj.get_config()}
    if callable(obj) and id(obj) in _NAME_OF:
        return _NAME_OF[id(obj)]
    raise NotImplementedError(f"Cannot serialize {obj!r}: it is not a registered fusedlstm object.")



def deserialize_subclass(config, kind, base, label, arg):
    """`base` subclass from {"class_name", "config"} (ours or Keras's form), looked up in
    `kind`; NotImplementedError names `label`, the argument and what is known otherwise."""
    name = config.get("class_name")
    cls = lookup(kind, name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise NotImplementedError(f"{label} class {name!r} (argument `{arg}`) is not supported by fusedlstm "
                                  f"(known: {names(kind, aliases=False)}).")
    return cls.from_config(dict(config.get("config") or {}))

_SINGULAR = {"layers": "Layer", "models": "Model", "losses": "Loss", "metrics": "Metric", "optimizers": "Optimizer",
             "initializers": "Initializer", "activations": "Activation", "regularizers": "Regularizer",
             "constraints": "Constraint", "schedules": "LearningRateSchedule"}
_MODULE_KINDS = {"layers": "layers", "models": "models", "losses": "losses", "metrics": "metrics",
                 "optimizers": "optimizers", "initializers": "initializers", "activations": "activations",
                 "regularizers": "regularizers", "constraints": "constraints", "schedules": "schedules"}


def _kind_of(config, kind):
    if kind is not None:
        return kind
    module = config.get("module") if isinstance(config, dict) else None
    if isinstance(module, str):
        return _MODULE_KINDS.get(module.rsplit(".", 1)[-1])
    return None


def deserialize_keras_object(config, custom_objects=None, kind=None, **kwargs):
    """Rebuild an object from serialize_keras_object's form (or Keras's, with "module").

    Args:
        config: {"class_name", "config"} (a name string resolves to the registered
            function or class itself).
        custom_objects: {name: class or function} consulted first (Keras's argument).
        kind: the namespace to look the name up in; taken from a Keras config's
            "module" ("keras.losses") when not given.

    Raises NotImplementedError naming the class when nothing is registered under it.
    """
    kind = _kind_of(config, kind)
    if isinstance(config, str):
        obj = get_registered_object(config, custom_objects) or (lookup(kind, config) if kind else None)
        if obj is None:
            raise NotImplementedError(f"{config!r} is not a registered fusedlstm object (refusing to load it).")
        return obj
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A serialized object must be a dict with 'class_name' and 'config', got {config!r}.")
    name = config["class_name"]
    cls = get_registered_object(name, custom_objects)
    if cls is None and kind is not None:
        cls = lookup(kind, name)
    if cls is None and kind is None:
        for k in _CANONICAL:
            cls = _CANONICAL[k].get(name)
            if cls is not None:
                break
    if cls is None or not isinstance(cls, type):
        raise NotImplementedError(
            f"{_SINGULAR.get(kind, 'Object') + ' class' if kind else 'Class'} {name!r} is not supported by "
            "fusedlstm (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}))
