"""The loss configurations the loss tests run, and data that fits each.

A case is (loss class name, constructor arguments, kind of targets, kind of
predictions); `make_data` draws targets and predictions of a (B, T, C) problem
that suit the loss (probabilities for cross-entropies, positive values for
Poisson/MSLE, logits with from_logits), away from the losses' kinks so finite
differences see a smooth function.
"""

import numpy as np
import pytest

# (class name, kwargs, targets, predictions)
LOSS_CASES = [
    ("MeanSquaredError", {}, "real", "real"),
    ("MeanAbsoluteError", {}, "real", "real"),
    ("MeanAbsolutePercentageError", {}, "real", "real"),
    ("MeanSquaredLogarithmicError", {}, "positive", "positive"),
    ("Huber", {}, "real", "real"),
    ("Huber", {"delta": 0.3}, "real", "real"),
    ("LogCosh", {}, "real", "real"),
    ("CosineSimilarity", {}, "real", "real"),
    ("KLDivergence", {}, "probs", "probs"),
    ("Poisson", {}, "positive", "positive"),
    ("Hinge", {}, "binary", "real"),
    ("Hinge", {}, "signs", "real"),
    ("SquaredHinge", {}, "binary", "real"),
    ("CategoricalHinge", {}, "onehot", "real"),
    ("CategoricalCrossentropy", {}, "onehot", "probs"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot", "probs"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "onehot", "real"),
    ("SparseCategoricalCrossentropy", {}, "ids", "probs"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "ids", "real"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "ids", "probs"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1}, "ids_padded", "real"),
    ("BinaryCrossentropy", {}, "binary", "unit"),
    ("BinaryCrossentropy", {"label_smoothing": 0.15}, "binary", "unit"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary", "real"),
    ("BinaryFocalCrossentropy", {}, "binary", "unit"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5}, "binary", "unit"),
    ("BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "gamma": 3.0}, "binary", "real"),
    ("CategoricalFocalCrossentropy", {}, "onehot", "probs"),
    ("CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}, "onehot", "probs"),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "onehot", "real"),
]


def case_id(case):
    name, kw, _, _ = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


LOSS_PARAMS = [pytest.param(c, id=case_id(c)) for c in LOSS_CASES]


def make_data(rng, targets, preds, shape, dtype=np.float64):
    """(y_true, y_pred) of `shape` (B, ..., C) for one case's kinds."""
    C = shape[-1]
    lead = shape[:-1]
    if targets == "real":
        t = rng.normal(size=shape)
        t[np.abs(t) < 0.05] += 0.3  # MAPE divides by |t|
    elif targets == "positive":
        t = rng.uniform(0.1, 3.0, size=shape)
    elif targets == "probs":
        t = rng.dirichlet(np.ones(C), size=lead)
    elif targets == "binary":
        t = rng.integers(0, 2, size=shape).astype(np.float64)
    elif targets == "signs":
        t = rng.choice([-1.0, 1.0], size=shape)
        t.flat[0] = 0.5  # not all in {0, 1}: Keras keeps such labels as they are
    elif targets == "onehot":
        t = np.eye(C)[rng.integers(0, C, size=lead)]
    elif targets == "ids":
        t = rng.integers(0, C, size=lead)
    elif targets == "ids_padded":
        t = rng.integers(0, C, size=lead)
        t.flat[:: 3] = -1
    else:
        raise ValueError(targets)
    if preds == "real":
        p = rng.normal(size=shape) * 1.5
    elif preds == "positive":
        p = rng.uniform(0.1, 3.0, size=shape)
    elif preds == "probs":
        p = rng.dirichlet(np.ones(C), size=lead) * rng.uniform(0.7, 1.3, size=lead + (1,))
        p = np.clip(p, 1e-3, None)
    elif preds == "unit":
        p = rng.uniform(0.02, 0.98, size=shape)
    else:
        raise ValueError(preds)
    return t.astype(dtype) if t.dtype.kind == "f" else t, p.astype(dtype)
