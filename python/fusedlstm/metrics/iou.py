"""MeanIoU and IoU (keras.src.metrics.iou_metrics): intersection over union per class
from a (num_classes, num_classes) confusion matrix of true (rows) and predicted
(columns) class ids.

    IoU_c = TP_c / (TP_c + FP_c + FN_c)   averaged over the classes that occurred

Like Keras, the matrix is integer by default: class ids and sample weights are cast
to integers (a float y_pred is truncated unless sparse_y_pred=False, which takes
its argmax; Keras warns about float weights, and so do we); ids outside
[0, num_classes) and ignore_class are left out.
"""

import numbers
import warnings

import numpy as np

from .. import registry as _registry
from .base import Metric

__all__ = ["IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]

EPSILON = 1e-7


def _int_dtype(dtype):
    return dtype in (None, "int", "int32", "int64") or (not isinstance(dtype, str) and np.issubdtype(np.dtype(dtype), np.integer))


@_registry.register("metrics", aliases=("io_u", "iou"))
class IoU(Metric):
    """Intersection over union of the classes `target_class_ids`, averaged (keras.metrics.IoU)."""

    accumulators = ("total_cm",)
    _default_name = "io_u"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"Received an invalid value for argument `num_classes`, expected a positive integer, got {num_classes!r}.")
        self.num_classes = int(num_classes)
        ids = list(target_class_ids)
        if max(ids) >= num_classes:
            raise ValueError(f"Target class id {max(ids)} is out of range, which is [0, {num_classes}).")
        self.target_class_ids = [int(i) for i in ids]
        self.ignore_class = ignore_class
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = axis
        self._int = _int_dtype(dtype)
        super().__init__(name, dtype)

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes))

    def _cast(self, x):
        x = np.asarray(x)
        return np.trunc(x).astype(np.int64) if self._int else x.astype(np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        if not self.sparse_y_true:
            y_true = np.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = np.argmax(y_pred, axis=self.axis)
        y_true = self._cast(y_true).reshape(-1)
        y_pred = self._cast(y_pred).reshape(-1)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"{type(self).__name__}: y_true and y_pred have {y_true.size} and {y_pred.size} class ids; they must "
                "match (pass sparse_y_pred=False when y_pred holds per-class scores).")
        if sample_weight is None:
            w = np.ones(y_true.shape)
        else:
            sw = np.asarray(sample_weight)
            if sw.dtype.kind == "f" and self._int:
                warnings.warn("You are passing weight as `float`, but dtype is `int`. This may result in an "
                              "incorrect weight due to type casting Consider using integer weights.", stacklevel=2)
            w = np.broadcast_to(self._cast(sw).reshape(-1) if sw.ndim > 1 else self._cast(sw), y_true.shape)
        ok = (y_true >= 0) & (y_true < self.num_classes) & (y_pred >= 0) & (y_pred < self.num_classes)
        if self.ignore_class is not None:
            ok &= y_true != self.ignore_class
        np.add.at(self.total_cm, (np.where(ok, y_true, 0).astype(np.int64), np.where(ok, y_pred, 0).astype(np.int64)),
                  np.where(ok, w, 0))

    def result(self):
        cm = self.total_cm
        tp = np.diag(cm)
        denominator = (cm.sum(axis=0) + cm.sum(axis=1) - tp)[self.target_class_ids]
        tp = tp[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + EPSILON), 0.0)
        return float(np.sum(iou) / (np.sum(valid) + EPSILON))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@_registry.register("metrics", aliases=("mean_io_u", "mean_iou"))
class MeanIoU(IoU):
    """IoU averaged over all num_classes classes (keras.metrics.MeanIoU)."""

    _default_name = "mean_io_u"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"Received an invalid value for argument `num_classes`, expected a positive integer, got {num_classes!r}.")
        super().__init__(num_classes, list(range(num_classes)), name, dtype, ignore_class, sparse_y_true,
                         sparse_y_pred, axis)

    def get_config(self):
        cfg = super().get_config()
        del cfg["target_class_ids"]
        return cfg


@_registry.register("metrics", aliases=("one_hot_io_u",))
class OneHotIoU(IoU):
    """IoU with one-hot y_true (keras.metrics.OneHotIoU)."""

    _default_name = "one_hot_io_u"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        cfg = super().get_config()
        del cfg["sparse_y_true"]
        return cfg


@_registry.register("metrics", aliases=("one_hot_mean_io_u",))
class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot y_true (keras.metrics.OneHotMeanIoU)."""

    _default_name = "one_hot_mean_io_u"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        cfg = super().get_config()
        del cfg["sparse_y_true"]
        return cfg
