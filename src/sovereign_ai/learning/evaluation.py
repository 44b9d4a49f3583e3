"""Evaluating a classifier on a node's examples: loss, accuracy and per-class precision/recall/F1.

The per-class scores follow scikit-learn's ``precision_recall_fscore_support`` with
``zero_division=0``: a score whose denominator is zero (no example predicted, or none present, for a
class) is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812  # torch's conventional alias
from torch import nn

from sovereign_ai.core import Metrics
from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.learning._examples import as_tensors, check_model_fits, logits_in_batches

__all__ = ["ClassMetrics", "EvaluationReport", "evaluate"]


@dataclass(frozen=True)
class ClassMetrics:
    """Scores of one class.

    Parameters
    ----------
    precision
        Of the examples predicted as this class, the fraction that are.
    recall
        Of the examples of this class, the fraction predicted as it.
    f1
        Harmonic mean of precision and recall.
    support
        Number of examples of this class.
    """

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of a classifier on a set of examples.

    Parameters
    ----------
    num_examples
        Examples evaluated.
    loss
        Mean cross-entropy.
    accuracy
        Fraction of examples whose top logit is the true class.
    per_class
        One :class:`ClassMetrics` per class the model predicts, by class index.
    macro_f1
        Unweighted mean F1 over the classes present among the labels or the predictions (the
        classes scikit-learn's ``f1_score(average="macro")`` averages over). Classes absent from a
        node's data are left out, so a node holding few classes is not scored down for them.

    Raises
    ------
    ConfigError
        If a count is negative, a score is outside [0, 1], or the loss is negative or not finite.
    """

    num_examples: int
    loss: float
    accuracy: float
    per_class: tuple[ClassMetrics, ...]
    macro_f1: float

    def __post_init__(self) -> None:
        if self.num_examples < 1:
            raise ConfigError(
                "The 'num_examples' parameter of EvaluationReport must be >= 1; "
                f"got {self.num_examples!r} instead."
            )
        if not (math.isfinite(self.loss) and self.loss >= 0):
            raise ConfigError(
                "The 'loss' parameter of EvaluationReport must be finite and >= 0; "
                f"got {self.loss!r} instead."
            )
        scores = [self.accuracy, self.macro_f1]
        scores += [s for c in self.per_class for s in (c.precision, c.recall, c.f1)]
        if not all(0.0 <= s <= 1.0 for s in scores):
            raise ConfigError("The scores of an EvaluationReport must lie in [0, 1].")

    @classmethod
    def from_predictions(
        cls,
        labels: npt.ArrayLike,
        predictions: npt.ArrayLike,
        *,
        num_classes: int,
        loss: float,
    ) -> EvaluationReport:
        """Score predicted class indices against true ones.

        Parameters
        ----------
        labels
            True classes, shape ``(n,)``.
        predictions
            Predicted classes, shape ``(n,)``.
        num_classes
            Classes to report in ``per_class``; every label and prediction must be below it.
        loss
            Mean loss, computed by the caller from the logits.

        Raises
        ------
        DataError
            If the arrays are empty, of unequal length, or hold indices outside
            ``[0, num_classes)``.
        """
        truth = np.asarray(labels)
        guess = np.asarray(predictions)
        if truth.ndim != 1 or truth.shape != guess.shape or truth.size == 0:
            raise DataError(
                "The 'labels' and 'predictions' of EvaluationReport.from_predictions must be "
                "non-empty 1-D arrays of equal length; "
                f"got {truth.shape} and {guess.shape} instead."
            )
        for name, array in (("labels", truth), ("predictions", guess)):
            if not np.issubdtype(array.dtype, np.integer) or not (
                int(array.min()) >= 0 and int(array.max()) < num_classes
            ):
                raise DataError(
                    f"The {name!r} of EvaluationReport.from_predictions must be integers in "
                    f"[0, {num_classes}); got values in [{array.min()}, {array.max()}] instead."
                )
        correct = truth == guess
        true_positive = np.bincount(truth[correct], minlength=num_classes)  # (C,)
        support = np.bincount(truth, minlength=num_classes)  # (C,)
        predicted = np.bincount(guess, minlength=num_classes)  # (C,)
        precision = _ratio(true_positive, predicted)
        recall = _ratio(true_positive, support)
        f1 = _ratio(2 * true_positive, predicted + support)  # 2PR/(P+R) = 2TP/(2TP+FP+FN)
        present = (support + predicted) > 0  # (C,)
        per_class = tuple(
            ClassMetrics(
                precision=float(precision[k]),
                recall=float(recall[k]),
                f1=float(f1[k]),
                support=int(support[k]),
            )
            for k in range(num_classes)
        )
        return cls(
            num_examples=int(truth.size),
            loss=float(loss),
            accuracy=float(correct.mean()),
            per_class=per_class,
            macro_f1=float(f1[present].mean()),
        )

    def to_metrics(self) -> Metrics:
        """Flat scalar metrics.

        Names are ``loss``, ``accuracy``, ``macro_f1`` and, for each class ``k``,
        ``precision_class_k``, ``recall_class_k`` and ``f1_class_k``.

        Notes
        -----
        Per-class support is left out on purpose: it is the node's label histogram, which a node
        may not want to reveal. It stays available on :attr:`per_class` for local use.
        """
        metrics: dict[str, float] = {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
        }
        for k, scores in enumerate(self.per_class):
            metrics[f"precision_class_{k}"] = scores.precision
            metrics[f"recall_class_{k}"] = scores.recall
            metrics[f"f1_class_{k}"] = scores.f1
        return metrics


def _ratio(
    numerator: npt.NDArray[np.int64], denominator: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Element-wise ``numerator / denominator``, 0 where the denominator is 0."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)


def evaluate(
    model: nn.Module,
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    batch_size: int = 1024,
) -> EvaluationReport:
    """Score ``model`` on examples without changing it.

    Parameters
    ----------
    model
        Maps float32 ``(n, d)`` features to ``(n, num_classes)`` logits.
    features
        Shape ``(n, d)``; converted to float32.
    labels
        Shape ``(n,)``, integer class indices in ``[0, num_classes)``.
    batch_size
        Examples per forward pass; bounds memory, does not change the result.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    DataError
        If the examples are empty, misshapen, non-finite, or do not fit the model.
    ConfigError
        If ``batch_size`` is not a positive integer.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(
            "The 'batch_size' parameter of evaluate must be an integer >= 1; "
            f"got {batch_size!r} instead."
        )
    x, y = as_tensors(features, labels, caller="evaluate")  # (n, d) float32, (n,) int64
    num_classes = check_model_fits(model, x, y)
    logits = logits_in_batches(model, x, batch_size=batch_size)  # (n, num_classes)
    with torch.no_grad():
        loss = float(F.cross_entropy(logits, y))
    if not math.isfinite(loss):
        raise DataError(f"The model's loss on these examples is {loss}; its logits are not finite.")
    return EvaluationReport.from_predictions(
        y.numpy(),
        logits.argmax(dim=1).numpy(),
        num_classes=num_classes,
        loss=loss,
    )
