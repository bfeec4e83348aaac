"""Keras 3 losses with their gradients (`from fusedlstm.losses import Huber, ...`).

Each loss is a class (base.Loss: per-element values and their gradient with respect
to y_pred, reduced by Keras's rule) and a function of the same Keras name returning
the per-sample values (`fusedlstm.losses.huber(y_true, y_pred)`). By family:
crossentropy.py, regression.py, probabilistic.py, hinge.py.

`get(identifier)` resolves a name ('mse', 'Huber'), a {"class_name", "config"} dict
or a Loss; every place that turns a saved or written loss back into an object calls
it. The classes register themselves in fusedlstm.registry (the names users type are
aliases).
"""

import numpy as np

from .. import registry as _registry
from .base import (EPSILON, REDUCTIONS, Loss, combine_masks, mask_for_values, reduction_divisor,
                   reduction_weights)
from .crossentropy import (BinaryCrossentropy, BinaryFocalCrossentropy, CategoricalCrossentropy,
                           CategoricalFocalCrossentropy, SparseCategoricalCrossentropy)
from .hinge import CategoricalHinge, Hinge, SquaredHinge
from .probabilistic import KLDivergence, Poisson
from .regression import (CosineSimilarity, Huber, LogCosh, MeanAbsoluteError, MeanAbsolutePercentageError,
                         MeanSquaredError, MeanSquaredLogarithmicError)

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "MeanSquaredError",
           "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Huber",
           "LogCosh", "CosineSimilarity", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
           "CategoricalHinge",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
           "binary_focal_crossentropy", "categorical_focal_crossentropy", "mean_squared_error", "mse",
           "mean_absolute_error", "mae", "mean_absolute_percentage_error", "mape",
           "mean_squared_logarithmic_error", "msle", "huber", "log_cosh", "logcosh", "kl_divergence", "kld",
           "kullback_leibler_divergence", "poisson", "cosine_similarity", "hinge", "squared_hinge",
           "categorical_hinge", "get", "serialize", "deserialize", "reduction_weights", "reduction_divisor",
           "mask_for_values", "combine_masks", "REDUCTIONS", "EPSILON"]


def _fn(cls, name):
    def loss_fn(y_true, y_pred, **kwargs):
        obj = cls(**kwargs)
        y_pred = np.asarray(y_pred, dtype=np.float32)
        return obj.values(obj.prepare_targets(y_true, y_pred.shape), y_pred)
    loss_fn.__name__ = loss_fn.__qualname__ = name
    loss_fn.__doc__ = f"Per-sample values of {cls.__name__} (keras.losses.{name}); keyword arguments go to {cls.__name__}."
    loss_fn._cls = cls
    return loss_fn


categorical_crossentropy = _fn(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _fn(SparseCategoricalCrossentropy, "sparse_categorical_crossentropy")
binary_crossentropy = _fn(BinaryCrossentropy, "binary_crossentropy")
binary_focal_crossentropy = _fn(BinaryFocalCrossentropy, "binary_focal_crossentropy")
categorical_focal_crossentropy = _fn(CategoricalFocalCrossentropy, "categorical_focal_crossentropy")
mean_squared_error = mse = _fn(MeanSquaredError, "mean_squared_error")
mean_absolute_error = mae = _fn(MeanAbsoluteError, "mean_absolute_error")
mean_absolute_percentage_error = mape = _fn(MeanAbsolutePercentageError, "mean_absolute_percentage_error")
mean_squared_logarithmic_error = msle = _fn(MeanSquaredLogarithmicError, "mean_squared_logarithmic_error")
huber = _fn(Huber, "huber")
log_cosh = logcosh = _fn(LogCosh, "log_cosh")
kl_divergence = kld = kullback_leibler_divergence = _fn(KLDivergence, "kl_divergence")
poisson = _fn(Poisson, "poisson")
cosine_similarity = _fn(CosineSimilarity, "cosine_similarity")
hinge = _fn(Hinge, "hinge")
squared_hinge = _fn(SquaredHinge, "squared_hinge")
categorical_hinge = _fn(CategoricalHinge, "categorical_hinge")


# Keras 3 losses fusedlstm does not implement (NotImplementedError); other unknown
# names are typos (ValueError).
_KERAS_ONLY = {"ctc", "dice", "tversky", "circle", "categorical_generalized_cross_entropy",
               "CTC", "Dice", "Tversky", "Circle", "CategoricalGeneralizedCrossEntropy"}


def get(identifier):
    """A Loss from a name, a {"class_name", "config"} dict (serialize's form), one of this
    module's loss functions, or a Loss instance.

    The object keeps the name the user gave (Keras reports per-output losses by it).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _registry.lookup("losses", identifier)
        if cls is None:
            supported = [k for k in _registry.names("losses") if k.islower()]
            if identifier in _KERAS_ONLY:
                raise NotImplementedError(
                    f"Loss {identifier!r} is not supported by fusedlstm; supported: {supported}.")
            raise ValueError(
                f"Received an invalid value for argument `loss`, expected one of {supported} or a "
                f"fusedlstm.losses.Loss, got {identifier!r}.")
        return cls(name=identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    cls = getattr(identifier, "_cls", None)
    if cls is not None:
        return cls(name=identifier.__name__)
    if callable(identifier):
        name = getattr(identifier, "__name__", "")
        cls = _registry.lookup("losses", name)
        if cls is not None and getattr(identifier, "__module__", "").startswith(("keras", "tensorflow")):
            return cls(name=name)
        raise NotImplementedError(
            f"Custom loss function {identifier!r} is not supported (fusedlstm needs its gradient); "
            "use one of the built-in losses.")
    raise TypeError(
        f"Could not interpret loss identifier: {identifier!r} (argument `loss`, expected a loss name "
        "or a fusedlstm.losses.Loss).")


def serialize(loss):
    """What compile configs store for a loss: a name as it is, a loss function by its
    name, a Loss as {"class_name", "config"}."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, Loss):
        return _registry.serialize_keras_object(loss)
    name = getattr(loss, "__name__", None)
    if name and (getattr(loss, "_cls", None) is not None or _registry.lookup("losses", name) is not None):
        return name
    raise NotImplementedError(f"Cannot save the loss {loss!r}.")


def deserialize(config):
    """A Loss from serialize()'s dict form (its class looked up in fusedlstm.registry)."""
    cls = _registry.lookup("losses", config.get("class_name"))
    if not isinstance(cls, type) or not issubclass(cls, Loss):
        raise NotImplementedError(f"Loss class {config.get('class_name')!r} is not supported (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}))
