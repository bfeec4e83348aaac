"""Metrics against real Keras 3.15.1 (torch backend): results after each of several
batches, with and without sample weights, for every configuration we support.

Keras accumulates in float32 variables, we in float64: exact metrics (counts, AUC's
curve from counts, ratios) agree to ≤ 1e-6 relative. Compiled metrics inside
evaluate() and fit() are compared in test_metrics_training_keras.py.
"""

import warnings

import numpy as np
import pytest

from conftest import require

import keras_parity_support as ps
from fusedlstm import metrics

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings(ps.KERAS_WARNINGS)]

TOL = 1e-6
B, C = 16, 5


@pytest.fixture(scope="module")
def keras():
    require("torch", "compare")
    return require("keras", "compare")


def _binary(rng):
    t = rng.integers(0, 2, size=(B, C)).astype(np.float32)
    p = rng.uniform(0, 1, size=(B, C)).astype(np.float32)
    # predictions on the thresholds Keras buckets and compares against
    p.flat[:6] = [0.0, 0.5, 1.0, 0.25, 0.75, 0.3]
    return t, p


def _onehot(rng):
    p = rng.dirichlet(np.ones(C), size=B).astype(np.float32)
    return np.eye(C, dtype=np.float32)[rng.integers(0, C, size=B)], p


def _sparse(rng):
    p = rng.dirichlet(np.ones(C), size=B).astype(np.float32)
    return rng.integers(0, C, size=(B, 1)), p


def _logits(rng):
    t, _ = _binary(rng)
    return t, rng.normal(size=(B, C)).astype(np.float32) * 2


def _regression(rng):
    t = rng.normal(size=(B, C)).astype(np.float32)
    return t, (t + rng.normal(size=(B, C)) * 0.5).astype(np.float32)


def _positive(rng):
    return rng.uniform(0.1, 2, size=(B, C)).astype(np.float32), rng.uniform(0.1, 2, size=(B, C)).astype(np.float32)


def _ids_pairs(rng):
    return rng.integers(0, C, size=(B,)), rng.integers(0, C, size=(B,)).astype(np.float32)


def _case(name, kwargs, data, weights=True, tol=TOL):
    return pytest.param((name, kwargs, data, weights, tol), id=name + "".join(f"-{k}={v}" for k, v in kwargs.items()))


CASES = [
    _case("Precision", {}, _binary),
    _case("Precision", {"thresholds": [0.3, 0.5, 0.7]}, _binary),
    _case("Precision", {"thresholds": [0.0, 0.5, 1.0]}, _binary),
    _case("Precision", {"top_k": 2}, _binary),
    _case("Precision", {"class_id": 1}, _binary),
    _case("Precision", {"top_k": 2, "class_id": 3, "thresholds": 0.2}, _binary),
    _case("Recall", {}, _binary),
    _case("Recall", {"thresholds": [0.1, 0.25, 0.9]}, _binary),
    _case("Recall", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, _binary),
    _case("Recall", {"top_k": 1}, _onehot),
    _case("Recall", {"class_id": 0}, _binary),
    _case("TruePositives", {}, _binary),
    _case("FalsePositives", {"thresholds": [0.2, 0.6]}, _binary),
    _case("TrueNegatives", {}, _binary),
    _case("FalseNegatives", {}, _binary),
    _case("AUC", {}, _binary),
    _case("AUC", {"curve": "PR"}, _binary),
    _case("AUC", {"summation_method": "minoring"}, _binary),
    _case("AUC", {"summation_method": "majoring", "curve": "PR"}, _binary),
    _case("AUC", {"curve": "PRGAIN"}, _binary),
    _case("AUC", {"num_thresholds": 11}, _binary),
    _case("AUC", {"num_thresholds": 7, "curve": "PR"}, _binary),
    _case("AUC", {"thresholds": [0.2, 0.45, 0.6]}, _binary),
    _case("AUC", {"multi_label": True}, _binary),
    _case("AUC", {"multi_label": True, "num_labels": C, "label_weights": [1.0, 0.5, 2.0, 0.0, 1.0]}, _binary),
    _case("AUC", {"label_weights": [1.0, 0.5, 2.0, 0.0, 1.0]}, _binary),
    _case("AUC", {"from_logits": True}, _logits),
    _case("F1Score", {}, _onehot),
    _case("F1Score", {"average": "micro"}, _onehot),
    _case("F1Score", {"average": "macro", "threshold": 0.3}, _binary),
    _case("F1Score", {"average": "weighted"}, _onehot),
    _case("FBetaScore", {"beta": 2.0, "average": "macro"}, _binary),
    _case("FBetaScore", {"beta": 0.5, "threshold": 0.6}, _binary),
    _case("TopKCategoricalAccuracy", {"k": 2}, _onehot),
    _case("SparseTopKCategoricalAccuracy", {"k": 3}, _sparse),
    _case("SparseTopKCategoricalAccuracy", {}, _sparse),
    _case("RootMeanSquaredError", {}, _regression),
    _case("MeanAbsolutePercentageError", {}, _regression),
    _case("MeanSquaredLogarithmicError", {}, _positive),
    _case("R2Score", {}, _regression),
    _case("R2Score", {"class_aggregation": "variance_weighted_average"}, _regression),
    _case("R2Score", {"class_aggregation": None}, _regression),
    _case("R2Score", {"num_regressors": 3}, _regression),
    _case("MeanIoU", {"num_classes": C}, _ids_pairs, weights=False),
    _case("MeanIoU", {"num_classes": C, "sparse_y_pred": False}, _sparse, weights=False),
    _case("MeanIoU", {"num_classes": C, "ignore_class": 2}, _ids_pairs, weights=False),
    _case("OneHotMeanIoU", {"num_classes": C}, _onehot, weights=False),
    _case("KLDivergence", {}, _onehot),
    _case("Poisson", {}, _positive),
    _case("Hinge", {}, _binary),
    _case("SquaredHinge", {}, _binary),
    _case("CategoricalHinge", {}, _onehot),
    _case("CosineSimilarity", {}, _regression),
    _case("LogCoshError", {}, _regression),
    _case("BinaryCrossentropy", {"label_smoothing": 0.1}, _binary),
    _case("CategoricalCrossentropy", {"from_logits": True}, _logits),
    _case("SparseCategoricalCrossentropy", {}, _sparse),
    _case("BinaryAccuracy", {"threshold": 0.3}, _binary),
]


def _as_array(v):
    return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float64)


@pytest.mark.parametrize("case", CASES)
def test_results_after_each_batch_match_keras(keras, case, rng, seed):
    name, kwargs, data, weighted, tol = case
    km = getattr(keras.metrics, name)(**kwargs)
    om = getattr(metrics, name)(**kwargs)
    for step in range(3):
        t, p = data(rng)
        sw = rng.uniform(0, 2, size=B).astype(np.float32) if weighted and step != 1 else None
        km.update_state(t, p, sample_weight=sw)
        if not om.built:
            om.build(np.shape(t), np.shape(p))
        om.update_state(t, p, sample_weight=sw)
        want, got = _as_array(km.result()), _as_array(om.result())
        assert got.shape == want.shape, f"{name}: result shape {got.shape} vs Keras {want.shape}"
        err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))) if want.size else 0.0
        assert err <= tol, f"seed={seed} batch {step}: {name}{kwargs} keras {want} vs ours {got} (rel {err:.3g})"
    km.reset_state()
    om.reset_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R2Score's adjusted score warns on no data, in both libraries
        assert np.allclose(_as_array(om.result()), _as_array(km.result()), equal_nan=True)


@pytest.mark.parametrize("name, kwargs", [
    ("AUC", {"curve": "PR", "num_thresholds": 50, "multi_label": True}), ("Precision", {"thresholds": [0.2, 0.6]}),
    ("F1Score", {"average": "weighted"}), ("R2Score", {"num_regressors": 1}), ("MeanIoU", {"num_classes": 4}),
    ("TopKCategoricalAccuracy", {"k": 3}), ("BinaryCrossentropy", {"from_logits": True}),
    ("FBetaScore", {"beta": 2.0}),
])
def test_configs_match_keras(keras, name, kwargs):
    k = getattr(keras.metrics, name)(**kwargs).get_config()
    o = getattr(metrics, name)(**kwargs).get_config()
    for key, value in k.items():
        if key in ("dtype", "name"):  # Keras numbers unnamed metrics ('auc_12')
            continue
        assert key in o, f"{name}: {key} missing from our config"
        same = o[key] == value or (not isinstance(value, str) and np.allclose(o[key], value))
        assert same, f"{name}.{key}: {o[key]!r} vs Keras {value!r}"
    back = metrics.deserialize({"class_name": name, "config": o})
    assert back.get_config() == o
