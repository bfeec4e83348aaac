"""Layers by name: the {"class_name", "config"} form and back, through fusedlstm.registry.

Every layer class registers itself under its class name (`@register("layers")`);
wrappers (Bidirectional, TimeDistributed) and models rebuild the layers they hold
with `deserialize`, never by importing their classes.
"""

from .. import registry as _registry

__all__ = ["get_layer_class", "serialize", "deserialize", "deserialize_named"]


def get_layer_class(class_name):
    """The class registered for a layer config's class_name; NotImplementedError for anything else.

    Loading a saved model only ever instantiates registered classes (fusedlstm.registry):
    no code named in a file (Lambda, custom objects) is ever imported or run.
    """
    cls = _registry.lookup("layers", class_name)
    if not isinstance(cls, type):
        raise NotImplementedError(
            f"Layer class {class_name!r} is not supported by fusedlstm (refusing to load it); "
            f"supported: {_registry.names('layers')}.")
    return cls


def serialize(layer):
    """{"class_name", "config"}: the layer's registered name and get_config()."""
    return _registry.serialize_keras_object(layer)


def deserialize(config):
    """A new layer from serialize()'s form (its class looked up in fusedlstm.registry)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A layer config must be a dict with 'class_name' and 'config', got {config!r}.")
    return get_layer_class(config["class_name"]).from_config(dict(config.get("config", {})))


def deserialize_named(config):
    """deserialize() for a model's layer list: a layer that cannot be built is named in the
    error ("layer 'dec' (LSTM): ..."), so a file's bad entry can be found."""
    try:
        return deserialize(config)
    except (NotImplementedError, TypeError, ValueError) as exc:
        entry = config if isinstance(config, dict) else {}
        inner = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        raise type(exc)(f"layer {inner.get('name')!r} ({entry.get('class_name')}): {exc}") from None
