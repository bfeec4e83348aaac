"""Metrics that are the mean of a loss function's per-sample values (Keras's
regression, probabilistic and hinge metrics): MeanMetricWrapper over the loss of the
same name in fusedlstm.losses, with the loss's arguments (from_logits, ...).

CosineSimilarity is the exception in sign: the metric is +cos (the loss is -cos).
"""

from .. import losses as _losses
from .. import registry as _registry
from .base import MeanMetricWrapper

__all__ = ["LossMetric", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanSquaredLogarithmicError", "CosineSimilarity", "LogCoshError", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge",
           "SquaredHinge", "CategoricalHinge", "loss_metric"]


class LossMetric(MeanMetricWrapper):
    """The mean of `loss_cls(**loss_args)`'s per-sample values."""

    loss_cls = None
    sign = 1.0
    _loss_args = ()  # constructor arguments passed on to the loss (and saved)

    def __init__(self, name=None, dtype=None, **kwargs):
        self._loss = self.loss_cls(**kwargs)
        self._args = kwargs
        loss = self._loss

        def fn(y_true, y_pred):
            v = loss.values(loss.prepare_targets(y_true, y_pred.shape), y_pred.astype("float32", copy=False))
            return v if self.sign == 1.0 else -v

        super().__init__(fn, name or self._default_name, dtype)

    def get_config(self):
        cfg = {"name": self.name, "dtype": self.dtype}
        cfg.update({k: getattr(self._loss, k) for k in self._loss_args})
        return cfg


def _metric(cls_name, loss_cls, default_name, aliases=(), args=(), sign=1.0):
    cls = type(cls_name, (LossMetric,), {"loss_cls": loss_cls, "_default_name": default_name,
                                         "_loss_args": tuple(args), "sign": sign,
                                         "__doc__": f"Mean of {loss_cls.__name__}'s per-sample values "
                                                    f"(keras.metrics.{cls_name})."})
    cls.__module__ = __name__
    return _registry.register("metrics", aliases=aliases)(cls)


MeanSquaredError = _metric("MeanSquaredError", _losses.MeanSquaredError, "mean_squared_error",
                           ("mean_squared_error", "mse", "MSE"))
MeanAbsoluteError = _metric("MeanAbsoluteError", _losses.MeanAbsoluteError, "mean_absolute_error",
                            ("mean_absolute_error", "mae", "MAE"))
MeanAbsolutePercentageError = _metric("MeanAbsolutePercentageError", _losses.MeanAbsolutePercentageError,
                                      "mean_absolute_percentage_error",
                                      ("mean_absolute_percentage_error", "mape", "MAPE"))
MeanSquaredLogarithmicError = _metric("MeanSquaredLogarithmicError", _losses.MeanSquaredLogarithmicError,
                                      "mean_squared_logarithmic_error",
                                      ("mean_squared_logarithmic_error", "msle", "MSLE"))
CosineSimilarity = _metric("CosineSimilarity", _losses.CosineSimilarity, "cosine_similarity",
                           ("cosine_similarity",), ("axis",), sign=-1.0)
LogCoshError = _metric("LogCoshError", _losses.LogCosh, "logcosh", ("log_cosh_error", "logcosh", "log_cosh"))
BinaryCrossentropy = _metric("BinaryCrossentropy", _losses.BinaryCrossentropy, "binary_crossentropy",
                             ("binary_crossentropy", "bce", "BCE"), ("from_logits", "label_smoothing"))
CategoricalCrossentropy = _metric("CategoricalCrossentropy", _losses.CategoricalCrossentropy,
                                  "categorical_crossentropy", ("categorical_crossentropy",),
                                  ("from_logits", "label_smoothing", "axis"))
SparseCategoricalCrossentropy = _metric("SparseCategoricalCrossentropy", _losses.SparseCategoricalCrossentropy,
                                        "sparse_categorical_crossentropy", ("sparse_categorical_crossentropy",),
                                        ("from_logits", "axis"))
KLDivergence = _metric("KLDivergence", _losses.KLDivergence, "kl_divergence", ("kl_divergence", "kld", "KLD"))
Poisson = _metric("Poisson", _losses.Poisson, "poisson", ("poisson",))
Hinge = _metric("Hinge", _losses.Hinge, "hinge", ("hinge",))
SquaredHinge = _metric("SquaredHinge", _losses.SquaredHinge, "squared_hinge", ("squared_hinge",))
CategoricalHinge = _metric("CategoricalHinge", _losses.CategoricalHinge, "categorical_hinge", ("categorical_hinge",))


def loss_metric(name):
    """A MeanMetricWrapper over the loss `name` (a loss function named as a metric)."""
    loss = _losses.get(name)

    def fn(y_true, y_pred):
        return loss.values(loss.prepare_targets(y_true, y_pred.shape), y_pred)

    fn.__name__ = name
    return MeanMetricWrapper(fn, name)
