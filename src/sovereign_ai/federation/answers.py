"""What each stage accepts from a node: every answer is checked at receipt, before aggregation.

An enrolled node can send anything that fits the wire. The transport has already checked the
binding (job, round, stage, node), the payload's structure and that every value is finite; the
checks here hold an answer to what its *stage* expects, so that a wrong answer is refused as that
node's failure instead of breaking the round for everyone:

==============  ===========================================================================
stage           expected
==============  ===========================================================================
statistics      exactly the tensors ``count`` ``(1,)``, ``sum`` and ``sum_sq`` ``(d,)`` for the
                model's input width ``d``; a whole count of at least one row, equal to the
                answer's example count; non-negative sums of squares that are consistent
                with the sums (Cauchy-Schwarz); no metrics
train           exactly the global model's tensor names, shapes and dtypes, matched *by name*
                (any order on the wire), plus the tensors the strategy asks nodes to report
                beside their update (:class:`ReportedTensor`), each within its range; at
                least one example; only the train metrics
evaluate        no tensors; only the evaluation metrics, and none over zero examples
(metrics)       accuracies in [0, 1], losses >= 0
==============  ===========================================================================

Every stage also caps the self-reported example count (``max_examples_per_node``): counts
weight example-weighted means, so without a cap one node could claim 2^63 rows and own the
model.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sovereign_ai.core import Parameters, Result
from sovereign_ai.errors import ConfigError, InvalidAnswerError

__all__ = [
    "DEFAULT_MAX_EXAMPLES_PER_NODE",
    "AnswerRules",
    "ReportedTensor",
    "check_evaluation",
    "check_statistics",
    "check_update",
    "train_reports",
    "with_reports",
]

DEFAULT_MAX_EXAMPLES_PER_NODE = 10_000_000
_STATISTICS_TENSORS = ("count", "sum", "sum_sq")
_CAUCHY_SCHWARZ_SLACK = 1e-3  # float32 sums of ~1e6 rows round to ~1e-4 relative; leave room
_FLOAT32: np.dtype[Any] = np.dtype(np.float32)
_METRIC_RANGES = {"accuracy": (0.0, 1.0), "loss": (0.0, math.inf)}  # also train_accuracy, ...


@dataclass(frozen=True)
class AnswerRules:
    """Limits every answer is held to.

    Parameters
    ----------
    max_examples_per_node
        The largest example count a node may report in any stage.
    train_metrics
        Metric names a train answer may carry.
    evaluate_metrics
        Metric names an evaluate answer may carry.
    """

    max_examples_per_node: int = DEFAULT_MAX_EXAMPLES_PER_NODE
    train_metrics: Collection[str] = ()
    evaluate_metrics: Collection[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_examples_per_node, bool) or self.max_examples_per_node < 1:
            raise ConfigError(
                "The 'max_examples_per_node' parameter of AnswerRules must be an integer >= 1; "
                f"got {self.max_examples_per_node!r} instead."
            )


@dataclass(frozen=True)
class ReportedTensor:
    """A float32 tensor a strategy asks each node to send beside its update.

    Adaptive clipping's bit is one (:class:`~sovereign_ai.federation.private_strategy.
    DifferentiallyPrivate`). A strategy names its reports in a ``train_reports`` attribute; a
    train answer must then carry them after the model's tensors, and secure aggregation sums them
    with the update.

    Parameters
    ----------
    name
        The tensor's name; it must not be one of the model's.
    shape
        Its shape.
    low, high
        The range every value of an honest node's own answer lies in; an answer seen on its own
        (without secure aggregation) with a value outside it is refused.
    """

    name: str
    shape: tuple[int, ...]
    low: float
    high: float

    def __post_init__(self) -> None:
        finite = math.isfinite(self.low) and math.isfinite(self.high)
        if not (self.name and finite and self.low <= self.high):
            raise ConfigError(
                "A ReportedTensor needs a name and a finite range low <= high; got "
                f"{self.name!r} in [{self.low!r}, {self.high!r}]."
            )


def train_reports(strategy: object) -> tuple[ReportedTensor, ...]:
    """The tensors ``strategy`` asks nodes to report beside their update (none by default).

    Raises
    ------
    ConfigError
        If the strategy's ``train_reports`` is not a tuple of :class:`ReportedTensor`.
    """
    reports = getattr(strategy, "train_reports", ())
    if not isinstance(reports, tuple) or not all(isinstance(r, ReportedTensor) for r in reports):
        raise ConfigError(
            f"The 'train_reports' of {type(strategy).__name__} must be a tuple of "
            f"ReportedTensor; got {reports!r} instead."
        )
    return reports


def with_reports(model: Parameters, reports: Sequence[ReportedTensor]) -> Parameters:
    """The tensors a train answer holds: the model's, then each report's (zeros), in that order.

    Raises
    ------
    ConfigError
        If a report is named like a tensor of the model.
    """
    if not reports:
        return model
    clashing = [r.name for r in reports if r.name in model]
    if clashing:
        raise ConfigError(
            f"The strategy's reported tensor(s) {', '.join(map(repr, clashing))} have the name "
            "of a model tensor; rename the report."
        )
    return Parameters({**model, **{r.name: np.zeros(r.shape, dtype=np.float32) for r in reports}})


def _refuse(result: Result, problem: str) -> InvalidAnswerError:
    return InvalidAnswerError(
        node_id=result.node_id,
        stage=result.stage.value,
        round_number=result.round_number,
        problem=problem,
    )


def _check_count(result: Result, rules: AnswerRules, *, minimum: int) -> None:
    if result.num_examples < minimum:
        raise _refuse(
            result, f"reports {result.num_examples} examples; this stage needs at least {minimum}"
        )
    if result.num_examples > rules.max_examples_per_node:
        raise _refuse(
            result,
            f"reports {result.num_examples} examples, above the job's cap of "
            f"{rules.max_examples_per_node} (max_examples_per_node in [coordinator]; raise it if "
            "a site really holds more rows)",
        )


def _check_metric_names(result: Result, allowed: Collection[str]) -> None:
    unknown = sorted(set(result.metrics) - set(allowed))
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise _refuse(
            result,
            f"reports metric(s) {shown} this stage does not produce; expected only "
            f"{', '.join(sorted(allowed)) or 'none'}",
        )
    for name, value in result.metrics.items():
        low, high = _METRIC_RANGES.get(name.removeprefix("train_"), (-math.inf, math.inf))
        if not low <= value <= high:
            raise _refuse(result, f"reports {name} = {value:g}; it must lie in [{low:g}, {high:g}]")


def _check_tensor_names(result: Result, expected: Sequence[str]) -> None:
    extra = sorted(set(result.parameters) - set(expected))
    missing = [name for name in expected if name not in result.parameters]
    if extra or missing:
        parts = []
        if missing:
            parts.append(f"missing tensor(s) {', '.join(map(repr, missing[:5]))}")
        if extra:
            parts.append(f"unexpected tensor(s) {', '.join(repr(n[:40]) for n in extra[:5])}")
        raise _refuse(result, "; ".join(parts))


def _check_shape(
    result: Result, name: str, expected: tuple[int, ...], dtype: np.dtype[Any] = _FLOAT32
) -> None:
    array = result.parameters[name]
    shape = tuple(int(d) for d in array.shape)
    if shape != expected:
        raise _refuse(result, f"tensor {name!r} has shape {list(shape)}; expected {list(expected)}")
    if array.dtype != dtype:
        raise _refuse(result, f"tensor {name!r} has dtype {array.dtype}; expected {dtype}")


def check_update(
    result: Result,
    *,
    model: Parameters,
    rules: AnswerRules,
    reports: Sequence[ReportedTensor] = (),
) -> Result:
    """Accept a train answer whose update fits ``model``, its tensors in the model's order.

    Parameters
    ----------
    result
        The node's answer.
    model
        The global model the node was sent.
    rules
        The limits of the job.
    reports
        The tensors the strategy asks for beside the update (:func:`train_reports`).

    Returns
    -------
    Result
        ``result`` with its tensors ordered like ``model``, then the reports (the wire may carry
        any order; tensors are matched by name), sharing their memory.

    Raises
    ------
    InvalidAnswerError
        If a tensor is missing, extra or of another shape, a reported value lies outside its
        range, the example count is below 1 or above the cap, or a metric is not a train metric.
    """
    _check_count(result, rules, minimum=1)
    _check_metric_names(result, rules.train_metrics)
    expected = with_reports(model, reports)
    _check_tensor_names(result, list(expected))
    for name, array in expected.items():
        _check_shape(result, name, tuple(int(d) for d in array.shape), array.dtype)
    for report in reports:
        values = result.parameters[report.name]
        if not ((values >= report.low) & (values <= report.high)).all():
            shown = float(values.flat[np.argmax((values < report.low) | (values > report.high))])
            raise _refuse(
                result,
                f"reports {report.name!r} = {shown:g}; an honest node's lies in "
                f"[{report.low:g}, {report.high:g}]",
            )
    ordered = result.parameters.reordered(list(expected))
    return Result(
        job_id=result.job_id,
        round_number=result.round_number,
        stage=result.stage,
        node_id=result.node_id,
        num_examples=result.num_examples,
        parameters=ordered,
        metrics=dict(result.metrics),
    )


def check_statistics(result: Result, *, width: int, rules: AnswerRules) -> None:
    """Accept a feature-statistics answer for a model of input width ``width``.

    Raises
    ------
    InvalidAnswerError
        If the tensors are not exactly ``count``/``sum``/``sum_sq`` of the right shapes, the
        count is not a whole number of rows equal to the example count (at least 1, at most the
        cap), a sum of squares is negative or smaller than the sums allow, or metrics are
        attached.
    """
    _check_count(result, rules, minimum=1)
    _check_metric_names(result, ())
    _check_tensor_names(result, _STATISTICS_TENSORS)
    _check_shape(result, "count", (1,))
    _check_shape(result, "sum", (width,))
    _check_shape(result, "sum_sq", (width,))
    count = float(result.parameters["count"][0])
    if count != result.num_examples:
        raise _refuse(
            result,
            f"tensor 'count' holds {count:g} rows but the answer reports {result.num_examples} "
            "examples",
        )
    total = result.parameters["sum"].astype(np.float64)  # (d,)
    total_sq = result.parameters["sum_sq"].astype(np.float64)  # (d,)
    if (total_sq < 0).any():
        raise _refuse(result, "tensor 'sum_sq' holds negative sums of squares")
    # Cauchy-Schwarz: sum(x)^2 <= n * sum(x^2) for any real column x.
    bound = count * total_sq * (1 + _CAUCHY_SCHWARZ_SLACK) + 1e-6  # (d,)
    impossible = np.flatnonzero(np.square(total) > bound)
    if impossible.size:
        raise _refuse(
            result,
            f"sums and sums of squares are inconsistent for feature(s) "
            f"{', '.join(map(str, impossible[:5].tolist()))} (sum^2 > count * sum_sq)",
        )


def check_evaluation(result: Result, *, rules: AnswerRules) -> None:
    """Accept an evaluate answer: metrics only, and only with examples behind them.

    Raises
    ------
    InvalidAnswerError
        If tensors are attached, a metric is not an evaluation metric, metrics come with zero
        examples, or the example count is above the cap.
    """
    _check_count(result, rules, minimum=0)
    _check_metric_names(result, rules.evaluate_metrics)
    if len(result.parameters):
        raise _refuse(result, f"carries {len(result.parameters)} tensor(s); expected none")
    if result.num_examples == 0 and result.metrics:
        raise _refuse(result, "reports metrics over 0 examples")
