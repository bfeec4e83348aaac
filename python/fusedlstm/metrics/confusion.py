"""Confusion-matrix metrics: TruePositives..FalseNegatives, Precision, Recall, AUC.

Each keeps, per threshold, weighted counts of true/false positives/negatives,
updated as keras.src.metrics.metrics_utils.update_confusion_matrix_variables does:
a prediction is positive at threshold θ when y_pred > θ, a label is positive when
y_true != 0; every count is weighted by the sample weight. Evenly spaced
thresholds (AUC's, or any list of >= 3 within 1e-7 of i/(n-1)) go through Keras's
bucketed form, which we reproduce in float32: bucket = ceil(clip(p, 0, 1)·(n-1)) - 1,
counts summed per bucket and accumulated from the top, so a prediction on a
threshold falls where Keras puts it.

top_k keeps each row's k highest scores (the others count as negative); class_id
looks at one class column only. AUC turns its counts into a ROC or PR curve and
sums it by 'interpolation' (trapezoids; PR by Davis & Goadrich's interpolation),
'minoring' or 'majoring', as keras.metrics.AUC.
"""

import numbers

import numpy as np

from .. import registry as _registry
from .base import Metric, same_rank

__all__ = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision", "Recall", "AUC",
           "confusion_counts"]

NEG_INF = -1e10
EPSILON = 1e-7


def _divide_no_nan(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _thresholds(thresholds, default):
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if t is None or isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 <= t <= 1]
    if bad:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return [float(t) for t in values]


def _evenly_spaced(thresholds):
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


def _filter_top_k(x, k):
    """Each row's k largest entries kept, the others set to NEG_INF (ties: lowest index first)."""
    C = x.shape[-1]
    order = np.argsort(-x, axis=-1, kind="stable")[..., :min(k, C)]
    keep = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(keep, order, True, axis=-1)
    return np.where(keep, x, np.float32(NEG_INF)).astype(np.float32)


def confusion_counts(y_true, y_pred, thresholds, want, evenly=False, top_k=None, class_id=None,
                     sample_weight=None, multi_label=False, label_weights=None):
    """The increments {name: counts} of the confusion counts named in `want`
    ('tp', 'fp', 'tn', 'fn'), each of shape (thresholds,) or (thresholds, labels)."""
    y_true = np.asarray(y_true, dtype=np.float32)
    y_pred = np.asarray(y_pred, dtype=np.float32)
    thr = np.asarray(thresholds, dtype=np.float32)
    with_epsilon = bool(thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    y_pred, y_true = same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = np.expand_dims(np.asarray(sample_weight, dtype=np.float32), -1)
        _, sample_weight = same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                f"num_classes), found shape: {y_pred.shape}")
        y_true = y_true[..., class_id, None]
        y_pred = y_pred[..., class_id, None]
    try:
        y_true = np.broadcast_to(y_true, y_pred.shape)
    except ValueError:
        raise ValueError(f"y_true of shape {y_true.shape} does not match y_pred of shape {y_pred.shape}.") from None
    weights = None
    if sample_weight is not None:
        weights = np.broadcast_to(sample_weight, y_pred.shape)
    if label_weights is not None and not multi_label:
        lw = np.broadcast_to(np.asarray(label_weights, np.float32), y_pred.shape)
        weights = lw if weights is None else weights * lw
    if multi_label:
        if y_pred.ndim != 2:
            raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {y_pred.ndim}.")
        labels, preds = y_true != 0, y_pred
        w = None if weights is None else weights
    else:
        labels, preds = (y_true != 0).reshape(-1), y_pred.reshape(-1)
        w = None if weights is None else weights.reshape(-1)
    n = thr.shape[0]
    if evenly:
        return _bucketed(labels, preds, w, n, with_epsilon, want)
    shape = (n,) + preds.shape[1:] if multi_label else (n,)
    is_pos = preds[None] > thr.reshape((n,) + (1,) * preds.ndim)
    out = {}
    w = np.ones(preds.shape, np.float64) if w is None else np.asarray(w, np.float64)
    cases = {"tp": (labels, True), "fp": (~labels, True), "tn": (~labels, False), "fn": (labels, False)}
    for name in want:
        lab, pos = cases[name]
        hit = lab[None] & (is_pos if pos else ~is_pos)
        out[name] = (hit * w[None]).sum(axis=1).reshape(shape)
    return out


def _bucketed(labels, preds, w, n, with_epsilon, want):
    """Keras's _update_confusion_matrix_variables_optimized (evenly spaced thresholds)."""
    preds = np.clip(preds, np.float32(0), np.float32(1))
    truth = labels.astype(np.float64)
    w = 1.0 if w is None else np.asarray(w, np.float64)
    true_w, false_w = truth * w, (1.0 - truth) * w
    bucket = np.ceil(preds * np.float32(n - 1)) - np.float32(1)
    if with_epsilon:
        bucket = np.maximum(bucket, 0)
    bucket = bucket.astype(np.int64)

    def per_bucket(vals):
        vals = np.broadcast_to(vals, bucket.shape)
        if bucket.ndim == 1:
            ok = bucket >= 0
            return np.bincount(bucket[ok], weights=vals[ok], minlength=n)
        return np.stack([np.bincount(bucket[ok, j], weights=vals[ok, j], minlength=n)
                         for j in range(bucket.shape[1]) for ok in [bucket[:, j] >= 0]], axis=1)

    tp = np.cumsum(per_bucket(true_w)[::-1], axis=0)[::-1]
    fp = np.cumsum(per_bucket(false_w)[::-1], axis=0)[::-1]
    out = {}
    if "tp" in want:
        out["tp"] = tp
    if "fp" in want:
        out["fp"] = fp
    if "tn" in want:
        out["tn"] = np.broadcast_to(false_w, bucket.shape).sum(axis=0) - fp
    if "fn" in want:
        out["fn"] = np.broadcast_to(true_w, bucket.shape).sum(axis=0) - tp
    return out


_COUNT_NAMES = {"tp": "true_positives", "fp": "false_positives", "tn": "true_negatives", "fn": "false_negatives"}


class _ThresholdCounts(Metric):
    """Counts named in `_counts`, one per threshold."""

    _counts = ()
    _default_threshold = 0.5

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
            raise ValueError(f"Received an invalid value for argument `top_k`, expected a positive integer, got {top_k!r}.")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, numbers.Integral) or class_id < 0):
            raise ValueError(f"Received an invalid value for argument `class_id`, expected a non-negative integer, got {class_id!r}.")
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = NEG_INF if top_k is not None else self._default_threshold
        self.thresholds = _thresholds(thresholds, default)
        self._evenly = _evenly_spaced(self.thresholds)
        self.accumulators = tuple(_COUNT_NAMES[c] for c in self._counts)
        super().__init__(name, dtype)

    def reset_state(self):
        for n in self.accumulators:
            setattr(self, n, np.zeros(len(self.thresholds)))

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        inc = confusion_counts(y_true, y_pred, self.thresholds, self._counts, self._evenly, self.top_k,
                               self.class_id, sample_weight)
        for c in self._counts:
            getattr(self, _COUNT_NAMES[c])[...] += inc[c]

    def _value(self, v):
        return float(v[0]) if len(self.thresholds) == 1 else v

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


def _count_metric(cls_name, count, default_name):
    def result(self):
        return self._value(getattr(self, _COUNT_NAMES[count]).copy())

    def init(self, thresholds=None, name=None, dtype=None):
        _ThresholdCounts.__init__(self, thresholds, None, None, name or default_name, dtype)

    cls = type(cls_name, (_ThresholdCounts,), {
        "_counts": (count,), "_default_name": default_name, "result": result, "__init__": init,
        "__doc__": f"The weighted count of {_COUNT_NAMES[count].replace('_', ' ')} (keras.metrics.{cls_name})."})
    cls.__module__ = __name__
    return _registry.register("metrics", aliases=(default_name,))(cls)


TruePositives = _count_metric("TruePositives", "tp", "true_positives")
FalsePositives = _count_metric("FalsePositives", "fp", "false_positives")
TrueNegatives = _count_metric("TrueNegatives", "tn", "true_negatives")
FalseNegatives = _count_metric("FalseNegatives", "fn", "false_negatives")


@_registry.register("metrics", aliases=("precision",))
class Precision(_ThresholdCounts):
    """TP / (TP + FP) at each threshold (keras.metrics.Precision).

    Args:
        thresholds: a float or list in [0, 1] (default 0.5; with top_k, any kept score).
        top_k: count only each row's k highest scores as predicted positive.
        class_id: the class column to look at (binary metric for that class).
    """

    _counts = ("tp", "fp")
    _default_name = "precision"

    def result(self):
        return self._value(_divide_no_nan(self.true_positives, self.true_positives + self.false_positives))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(top_k=self.top_k, class_id=self.class_id)
        return cfg


@_registry.register("metrics", aliases=("recall",))
class Recall(_ThresholdCounts):
    """TP / (TP + FN) at each threshold (keras.metrics.Recall); arguments as Precision."""

    _counts = ("tp", "fn")
    _default_name = "recall"

    def result(self):
        return self._value(_divide_no_nan(self.true_positives, self.true_positives + self.false_negatives))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(top_k=self.top_k, class_id=self.class_id)
        return cfg


_CURVES = {"roc": "ROC", "ROC": "ROC", "pr": "PR", "PR": "PR", "prgain": "PRGAIN", "PRGAIN": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "Interpolation": "interpolation", "majoring": "majoring",
               "Majoring": "majoring", "minoring": "minoring", "Minoring": "minoring"}


@_registry.register("metrics", aliases=("auc",))
class AUC(Metric):
    """Area under the ROC or precision-recall curve (keras.metrics.AUC).

    Args:
        num_thresholds: thresholds evenly spaced in [0, 1] (default 200).
        curve: 'ROC' (default), 'PR' or 'PRGAIN'.
        summation_method: 'interpolation' (default), 'minoring' or 'majoring'.
        thresholds: explicit thresholds in [0, 1] instead (0 - ε and 1 + ε are added).
        multi_label: one curve per label column (the mean of their areas, or weighted by
            label_weights), instead of one curve over all entries.
        num_labels: the label count of multi_label (else taken from the first batch).
        label_weights: per-label weights (of the counts without multi_label, of the areas with it).
        from_logits: y_pred are logits (a sigmoid is applied first).
    """

    accumulators = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    _default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if curve not in _CURVES:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if summation_method not in _SUMMATIONS:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(thresholds, 0.5))
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_spaced(np.array([0.0] + inner + [1.0]))
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral) or num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve = _CURVES[curve]
        self.summation_method = _SUMMATIONS[summation_method]
        self.multi_label = bool(multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, dtype=np.float32)
        self.from_logits = bool(from_logits)
        self._labels = None
        super().__init__(name, dtype)
        if self.multi_label and num_labels:
            self.build(None, (None, int(num_labels)))
        elif not self.multi_label:
            self._allocate(())

    @property
    def thresholds(self):
        return list(self._thresholds)

    def _allocate(self, extra):
        for n in self.accumulators:
            setattr(self, n, np.zeros((self.num_thresholds,) + extra))

    def build(self, y_true_shape, y_pred_shape):
        if not self.multi_label or self._labels is not None:
            return
        if len(y_pred_shape) != 2:
            raise ValueError(
                f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {len(y_pred_shape)}. Full shape "
                f"received for `y_pred`: {tuple(y_pred_shape)}")
        self._labels = int(y_pred_shape[1])
        self._allocate((self._labels,))

    def reset_state(self):
        for n in self.accumulators:
            a = getattr(self, n, None)
            if a is not None:
                a[...] = 0
            else:
                setattr(self, n, None)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = np.asarray(y_pred, dtype=np.float32)
        self.build(np.shape(y_true), y_pred.shape)
        if self.from_logits:
            y_pred = (1.0 / (1.0 + np.exp(-y_pred))).astype(np.float32)
        inc = confusion_counts(y_true, y_pred, self._thresholds, ("tp", "fp", "tn", "fn"), self._evenly,
                               sample_weight=sample_weight, multi_label=self.multi_label,
                               label_weights=None if self.multi_label else self.label_weights)
        for c, name in _COUNT_NAMES.items():
            getattr(self, name)[...] += inc[c]

    def _by_label(self, terms):
        if not self.multi_label:
            return float(np.sum(terms))
        by_label = np.sum(terms, axis=0)
        if self.label_weights is None:
            return float(np.mean(by_label))
        lw = self.label_weights.astype(np.float64)
        return float(_divide_no_nan(np.sum(by_label * lw), np.sum(lw)))

    def _interpolate_pr_auc(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
        inc = _divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(inc)

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp))
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def get_config(self):
        cfg = {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds, "curve": self.curve,
               "summation_method": self.summation_method, "multi_label": self.multi_label,
               "num_labels": self.num_labels,
               "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
               "from_logits": self.from_logits}
        if self._init_from_thresholds:
            cfg["thresholds"] = [float(t) for t in self._thresholds[1:-1]]
        return cfg
