"""Metrics accumulated over an epoch the way Keras 3 does (`from fusedlstm.metrics import AUC, ...`).

By family: base.py (Metric, Mean, MeanMetricWrapper), accuracy.py, from_losses.py
(regression/probabilistic/hinge metrics that average a loss), regression.py
(RootMeanSquaredError, R2Score), confusion.py (Precision, Recall, AUC, TP..FN),
fscore.py (F1Score, FBetaScore), iou.py (MeanIoU, IoU).

'acc'/'accuracy' is resolved from the shapes exactly as keras.src.trainers.
compile_utils does (binary when the output has 1 unit, sparse when y_true has one
rank less or a trailing 1, else categorical) and reported under the name the user
wrote. Any other Python callable fn(y_true, y_pred) -> per-sample values (NumPy)
is a custom metric: averaged like Keras's MeanMetricWrapper and named by __name__.

Metric classes register in fusedlstm.registry (the lowercase names users type are
aliases), so a compile config can hold a metric object as {"class_name", "config"}.
"""

from .. import registry as _registry
from .accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                       SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, accuracy, binary_accuracy,
                       categorical_accuracy, sparse_categorical_accuracy, sparse_top_k_categorical_accuracy,
                       top_k_categorical_accuracy)
from .base import Mean, MeanMetricWrapper, Metric, Sum
from .confusion import AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives
from .fscore import F1Score, FBetaScore
from .from_losses import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge, CosineSimilarity,
                          Hinge, KLDivergence, LogCoshError, MeanAbsoluteError, MeanAbsolutePercentageError,
                          MeanSquaredError, MeanSquaredLogarithmicError, Poisson, SparseCategoricalCrossentropy,
                          SquaredHinge)
from .iou import IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .regression import R2Score, RootMeanSquaredError

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "RootMeanSquaredError", "R2Score", "CosineSimilarity", "LogCoshError", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge",
           "SquaredHinge", "CategoricalHinge", "Precision", "Recall", "AUC", "TruePositives", "FalsePositives",
           "TrueNegatives", "FalseNegatives", "F1Score", "FBetaScore", "IoU", "MeanIoU", "OneHotIoU",
           "OneHotMeanIoU", "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "get", "serialize", "deserialize",
           "resolve_accuracy"]

# Keras 3 metrics fusedlstm does not implement (NotImplementedError); other unknown
# names are typos (ValueError).
_KERAS_ONLY = {"PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity",
               "PearsonCorrelation", "ConcordanceCorrelation", "BinaryIoU", "precision_at_recall",
               "recall_at_precision", "sensitivity_at_specificity", "specificity_at_sensitivity",
               "pearson_correlation", "concordance_correlation", "binary_io_u"}


def resolve_accuracy(y_true_shape, y_pred_shape):
    """Which accuracy Keras picks for 'acc'/'accuracy' (compile_utils.is_binary_or_sparse_categorical)."""
    if y_pred_shape[-1] == 1:
        return BinaryAccuracy
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return SparseCategoricalAccuracy
    return CategoricalAccuracy


def _our_function(fn):
    """The metric class behind one of this package's metric functions, or None."""
    for cls in (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
                SparseTopKCategoricalAccuracy):
        if cls.fn is fn:
            return cls
    return None


def get(identifier, y_true_shape=None, y_pred_shape=None):
    """A fresh Metric for a compile() entry: a name, a {"class_name", "config"} dict, a
    Metric class or instance, or a Python function fn(y_true, y_pred) -> per-sample
    values (a custom metric); a name becomes the metric's name as in Keras."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("acc", "accuracy"):
            if y_pred_shape is None:
                raise ValueError(f"metric {identifier!r} is resolved from the shapes of the data; pass them.")
            return resolve_accuracy(y_true_shape, y_pred_shape)(name=identifier)
        cls = _registry.lookup("metrics", identifier)
        if isinstance(cls, type) and issubclass(cls, Metric):
            try:
                m = cls()
            except TypeError:
                raise ValueError(
                    f"metric {identifier!r} needs arguments (e.g. num_classes): pass an instance, "
                    f"fusedlstm.metrics.{cls.__name__}(...), instead of its name.") from None
            m.name = identifier
            return m
        supported = sorted({n for n in _registry.names("metrics") if n.islower()} | {"accuracy", "acc"})
        if identifier in _KERAS_ONLY:
            raise NotImplementedError(f"Metric {identifier!r} is not supported by fusedlstm; supported: {supported}.")
        raise ValueError(f"Could not interpret metric identifier: {identifier} (supported: {supported}).")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        cls = _our_function(identifier)
        if cls is not None:
            return cls(name=identifier.__name__)
        name = getattr(identifier, "__name__", None) or type(identifier).__name__
        return MeanMetricWrapper(identifier, name=name)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def serialize(metric):
    """What compile configs store for a metric: a name as it is; a Metric of a registered
    class as {"class_name", "config"}. Custom metric functions cannot be rebuilt from a file."""
    if metric is None or isinstance(metric, str):
        return metric
    if isinstance(metric, Metric) and _registry.lookup("metrics", _registry.registered_name(metric)) is type(metric):
        return _registry.serialize_keras_object(metric)
    if callable(metric) and _our_function(metric) is not None:
        return metric.__name__
    raise NotImplementedError(
        f"Cannot save the metric {metric!r}: a custom metric function cannot be rebuilt from a file; compile "
        "with metric names or fusedlstm.metrics objects to save the model's training configuration.")


def deserialize(config):
    """A Metric from serialize()'s dict form (its class looked up in fusedlstm.registry)."""
    cls = _registry.lookup("metrics", config.get("class_name"))
    if not isinstance(cls, type) or not issubclass(cls, Metric):
        raise NotImplementedError(f"Metric class {config.get('class_name')!r} is not supported (refusing to load it).")
    return cls.from_config(dict(config.get("config") or {}))
