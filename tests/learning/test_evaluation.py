"""Tests for evaluation: metrics agree with scikit-learn, the model is left untouched."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support

from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.learning import (
    ClassMetrics,
    EvaluationReport,
    create_model,
    evaluate,
    get_parameters,
)


def _assert_matches_sklearn(
    report: EvaluationReport, labels: Any, predictions: Any, num_classes: int
) -> None:
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=list(range(num_classes)), zero_division=0
    )
    assert [c.precision for c in report.per_class] == pytest.approx(precision, abs=1e-12)
    assert [c.recall for c in report.per_class] == pytest.approx(recall, abs=1e-12)
    assert [c.f1 for c in report.per_class] == pytest.approx(f1, abs=1e-12)
    assert [c.support for c in report.per_class] == list(support)
    assert report.accuracy == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    expected_macro = f1_score(labels, predictions, average="macro", zero_division=0)
    assert report.macro_f1 == pytest.approx(expected_macro, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_from_predictions_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=60)  # class 4 never occurs ...
    predictions = np.where(rng.random(60) < 0.6, labels, rng.integers(0, 3, size=60))  # ... nor 3
    report = EvaluationReport.from_predictions(labels, predictions, num_classes=5, loss=0.5)
    _assert_matches_sklearn(report, labels, predictions, num_classes=5)
    assert report.per_class[4] == ClassMetrics(precision=0.0, recall=0.0, f1=0.0, support=0)


def test_fixed_predictions_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0, 1])
    report = EvaluationReport.from_predictions(labels, predictions, num_classes=3, loss=1.0)
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.per_class[0] == ClassMetrics(precision=0.5, recall=0.5, f1=0.5, support=2)
    assert report.per_class[1].precision == pytest.approx(2 / 4)
    assert report.per_class[1].recall == pytest.approx(2 / 3)
    assert report.per_class[2] == ClassMetrics(precision=0.0, recall=0.0, f1=0.0, support=1)
    _assert_matches_sklearn(report, labels, predictions, num_classes=3)


def test_evaluate_matches_sklearn_on_a_hand_set_model() -> None:
    # logreg with identity weights predicts the index of the largest feature.
    model = create_model("logreg", num_features=3, num_classes=3, seed=0)
    linear = model.get_submodule("body.linear")
    assert isinstance(linear, torch.nn.Linear)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(3))
        linear.bias.zero_()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=50)
    predictions = features.argmax(axis=1)

    report = evaluate(model, features, labels, batch_size=7)

    assert report.num_examples == 50
    _assert_matches_sklearn(report, labels, predictions, num_classes=3)
    probabilities = np.exp(features) / np.exp(features).sum(axis=1, keepdims=True)  # (n, 3)
    assert report.loss == pytest.approx(log_loss(labels, probabilities, labels=[0, 1, 2]), rel=1e-5)


def test_to_metrics_is_flat_and_omits_support() -> None:
    labels = np.array([0, 1, 2, 2])
    report = EvaluationReport.from_predictions(labels, labels, num_classes=3, loss=0.1)
    metrics = report.to_metrics()
    expected = {"loss", "accuracy", "macro_f1"} | {
        f"{kind}_class_{k}" for kind in ("precision", "recall", "f1") for k in range(3)
    }
    assert set(metrics) == expected
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["f1_class_2"] == 1.0


def test_evaluate_leaves_the_model_unchanged(blobs: Any) -> None:
    model = create_model("mlp", num_features=64, num_classes=3, seed=0)
    model.train()
    before = get_parameters(model)
    evaluate(model, *blobs)
    assert get_parameters(model) == before
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_batch_size_does_not_change_the_result(blobs: Any) -> None:
    model = create_model("cnn", num_features=64, num_classes=3, seed=0)
    small, large = evaluate(model, *blobs, batch_size=1), evaluate(model, *blobs)
    assert small.accuracy == large.accuracy
    assert small.per_class == large.per_class
    assert small.loss == pytest.approx(large.loss, rel=1e-6)


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True])
def test_bad_batch_size_is_refused(batch_size: Any, blobs: Any) -> None:
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    with pytest.raises(ConfigError, match="'batch_size' parameter of evaluate"):
        evaluate(model, *blobs, batch_size=batch_size)


def test_unusable_examples_raise_data_error() -> None:
    model = create_model("logreg", num_features=4, num_classes=3, seed=0)
    with pytest.raises(DataError, match="at least one example"):
        evaluate(model, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(DataError, match="label 5"):
        evaluate(model, np.zeros((2, 4), np.float32), np.array([0, 5]))


@pytest.mark.parametrize(
    ("labels", "predictions", "match"),
    [
        (np.array([0, 1]), np.array([0]), "equal length"),
        (np.array([], dtype=np.int64), np.array([], dtype=np.int64), "non-empty"),
        (np.array([0, 3]), np.array([0, 1]), "'labels'"),
        (np.array([0, 1]), np.array([0.0, 1.0]), "'predictions'"),
    ],
)
def test_from_predictions_refuses_bad_arrays(labels: Any, predictions: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        EvaluationReport.from_predictions(labels, predictions, num_classes=3, loss=0.0)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"num_examples": 0}, "'num_examples' parameter of EvaluationReport must be >= 1"),
        ({"loss": -1.0}, "'loss' parameter of EvaluationReport must be finite and >= 0"),
        ({"loss": math.nan}, "'loss' parameter of EvaluationReport must be finite and >= 0"),
        ({"accuracy": 1.5}, r"scores of an EvaluationReport must lie in \[0, 1\]"),
    ],
)
def test_report_is_validated(changes: dict[str, Any], reason: str) -> None:
    fields: dict[str, Any] = {
        "num_examples": 4,
        "loss": 0.2,
        "accuracy": 0.5,
        "per_class": (),
        "macro_f1": 0.5,
    }
    with pytest.raises(ConfigError, match=reason):
        EvaluationReport(**(fields | changes))
