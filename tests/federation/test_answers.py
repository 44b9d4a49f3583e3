"""Each stage refuses answers that fit the wire but not the stage, naming node and problem."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.errors import ConfigError, InvalidAnswerError
from sovereign_ai.federation.answers import (
    AnswerRules,
    ReportedTensor,
    check_evaluation,
    check_statistics,
    check_update,
    train_reports,
    with_reports,
)
from sovereign_ai.federation.node import EVALUATE_METRICS, TRAIN_METRICS

RULES = AnswerRules(
    max_examples_per_node=1_000, train_metrics=TRAIN_METRICS, evaluate_metrics=EVALUATE_METRICS
)
MODEL = Parameters({"w": np.ones((2, 3)), "b": np.zeros(3), "input_mean": np.zeros(2)})


def answer(
    stage: Stage,
    tensors: Mapping[str, np.ndarray] | Parameters,
    *,
    examples: int = 10,
    metrics: Mapping[str, float] | None = None,
) -> Result:
    parameters = tensors if isinstance(tensors, Parameters) else Parameters(tensors)
    return Result("job", 1, stage, "mallory", examples, parameters, dict(metrics or {}))


def update(**changes: np.ndarray | None) -> dict[str, np.ndarray]:
    tensors = {name: np.full(array.shape, 0.1, np.float32) for name, array in MODEL.items()}
    for name, value in changes.items():
        if value is None:
            tensors.pop(name)
        else:
            tensors[name] = value
    return tensors


# Train ------------------------------------------------------------------------------------------
def test_a_conforming_update_is_accepted_unchanged() -> None:
    result = answer(Stage.TRAIN, update(), metrics={"train_loss": 0.5})
    accepted = check_update(result, model=MODEL, rules=RULES)
    assert accepted.parameters == result.parameters
    assert accepted.num_examples == 10


@pytest.mark.parametrize(
    ("tensors", "problem"),
    [
        (update(extra=np.zeros(1)), "unexpected tensor(s) 'extra'"),
        (update(b=None), "missing tensor(s) 'b'"),
        (update(w=np.zeros((3, 2), np.float32)), "tensor 'w' has shape [3, 2]; expected [2, 3]"),
        ({}, "missing tensor(s) 'w', 'b', 'input_mean'"),
        (update(b=np.zeros((2**40, 0), np.float32)), "tensor 'b' has shape [1099511627776, 0]"),
    ],
    ids=["extra", "missing", "transposed", "empty", "zero-size-huge"],
)
def test_an_update_that_does_not_fit_the_model_is_refused_naming_the_node(
    tensors: dict[str, np.ndarray], problem: str
) -> None:
    with pytest.raises(InvalidAnswerError, match="node 'mallory'") as caught:
        check_update(answer(Stage.TRAIN, tensors), model=MODEL, rules=RULES)
    assert problem in caught.value.problem
    assert caught.value.node_id == "mallory"


def test_an_update_written_by_the_reference_library_is_matched_by_name() -> None:
    """The library orders tensors its own way and records no order: names decide, not position."""
    payload = save(update(w=np.arange(6, dtype=np.float32).reshape(2, 3)))
    wire = Parameters.from_bytes(bytes(payload))
    assert list(wire) != list(MODEL)  # the premise: another order on the wire
    accepted = check_update(answer(Stage.TRAIN, wire), model=MODEL, rules=RULES)
    assert list(accepted.parameters) == list(MODEL)
    expected = Parameters(update(w=np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.testing.assert_array_equal(accepted.parameters.flatten(), expected.flatten())


@pytest.mark.parametrize(
    ("examples", "problem"),
    [(0, "at least 1"), (2**63 - 1, "above the job's cap of 1000")],
)
def test_update_example_counts_must_be_positive_and_within_the_cap(
    examples: int, problem: str
) -> None:
    with pytest.raises(InvalidAnswerError, match=problem):
        check_update(answer(Stage.TRAIN, update(), examples=examples), model=MODEL, rules=RULES)


def test_an_update_with_an_unknown_metric_is_refused() -> None:
    with pytest.raises(InvalidAnswerError, match="'train_lossy'"):
        check_update(
            answer(Stage.TRAIN, update(), metrics={"train_lossy": 0.1}), model=MODEL, rules=RULES
        )


BIT = ReportedTensor("bit", (1,), low=-0.5, high=0.5)


@pytest.mark.parametrize("value", [-0.5, 0.0, 0.5])
def test_a_report_within_its_range_is_accepted_after_the_model(value: float) -> None:
    tensors = {"bit": np.array([value], np.float32), **update()}  # any order on the wire
    accepted = check_update(answer(Stage.TRAIN, tensors), model=MODEL, rules=RULES, reports=[BIT])
    assert list(accepted.parameters) == [*MODEL, "bit"]
    assert float(accepted.parameters["bit"][0]) == value


@pytest.mark.parametrize(
    ("bit", "problem"),
    [
        (
            np.array([1e9], np.float32),
            "reports 'bit' = 1e\\+09; an honest node's lies in \\[-0.5, 0.5\\]",
        ),
        (np.array([-0.51], np.float32), "reports 'bit' = -0.51"),
        (np.array([np.nan], np.float32), "reports 'bit' = nan"),
        (np.array([0.5, 0.5], np.float32), "tensor 'bit' has shape \\[2\\]"),
        (None, "missing tensor\\(s\\) 'bit'"),
    ],
)
def test_a_report_out_of_range_or_missing_is_refused(bit: np.ndarray | None, problem: str) -> None:
    tensors = update() if bit is None else {**update(), "bit": bit}
    with pytest.raises(InvalidAnswerError, match=problem):
        check_update(answer(Stage.TRAIN, tensors), model=MODEL, rules=RULES, reports=[BIT])


def test_a_report_the_strategy_did_not_ask_for_is_refused() -> None:
    tensors = {**update(), "bit": np.array([0.5], np.float32)}
    with pytest.raises(InvalidAnswerError, match="unexpected tensor\\(s\\) 'bit'"):
        check_update(answer(Stage.TRAIN, tensors), model=MODEL, rules=RULES)


def test_reports_come_from_the_strategy_and_may_not_shadow_the_model() -> None:
    class Reporting:
        train_reports = (BIT,)

    assert train_reports(Reporting()) == (BIT,)
    assert train_reports(object()) == ()
    Reporting.train_reports = [BIT]  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="tuple of ReportedTensor"):
        train_reports(Reporting())
    with pytest.raises(ConfigError, match="name of a model tensor"):
        with_reports(MODEL, [ReportedTensor("w", (1,), low=0.0, high=1.0)])
    with pytest.raises(ConfigError, match="finite range"):
        ReportedTensor("x", (1,), low=1.0, high=0.0)


# Statistics -------------------------------------------------------------------------------------
def statistics(rows: np.ndarray, **changes: np.ndarray | None) -> tuple[dict[str, np.ndarray], int]:
    tensors = {
        "count": np.array([len(rows)], np.float32),
        "sum": rows.sum(axis=0),
        "sum_sq": np.square(rows).sum(axis=0),
    }
    for name, value in changes.items():
        if value is None:
            tensors.pop(name)
        else:
            tensors[name] = value
    return tensors, len(rows)


ROWS = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])


def test_conforming_statistics_are_accepted() -> None:
    tensors, count = statistics(ROWS)
    check_statistics(answer(Stage.STATISTICS, tensors, examples=count), width=2, rules=RULES)


@pytest.mark.parametrize(
    ("changes", "examples", "problem"),
    [
        ({"count": None}, 3, "missing tensor(s) 'count'"),
        ({"sum": np.zeros(3)}, 3, "tensor 'sum' has shape [3]; expected [2]"),
        ({"sum_sq": np.zeros(5)}, 3, "tensor 'sum_sq' has shape [5]; expected [2]"),
        ({"count": np.array([-3.0])}, 3, "holds -3 rows but the answer reports 3"),
        ({"count": np.array([-3.0])}, -3, "reports -3 examples"),
        ({"count": np.array([2.5])}, 3, "holds 2.5 rows"),
        ({"sum_sq": np.array([-1.0, 5.0])}, 3, "negative sums of squares"),
        ({"sum": np.array([100.0, 0.0])}, 3, "inconsistent for feature(s) 0"),
        ({"extra": np.zeros(1)}, 3, "unexpected tensor(s) 'extra'"),
    ],
    ids=[
        "no-count",
        "sum-width",
        "sum_sq-width",
        "negative-count-tensor",
        "negative-count",
        "fractional-count",
        "negative-sum_sq",
        "impossible-sums",
        "extra",
    ],
)
def test_statistics_that_do_not_fit_are_refused(
    changes: dict[str, np.ndarray | None], examples: int, problem: str
) -> None:
    tensors, _ = statistics(ROWS, **changes)
    with pytest.raises(InvalidAnswerError, match="node 'mallory'") as caught:
        check_statistics(answer(Stage.STATISTICS, tensors, examples=examples), width=2, rules=RULES)
    assert problem in caught.value.problem


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=1,
        max_size=40,
    )
)
def test_statistics_of_any_real_rows_pass_the_consistency_check(rows: list[list[float]]) -> None:
    """Cauchy-Schwarz holds for every real column, so an honest node is never refused."""
    values = np.array(rows, dtype=np.float64)
    tensors, count = statistics(values)
    check_statistics(answer(Stage.STATISTICS, tensors, examples=count), width=3, rules=RULES)


# Evaluate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("examples", "metrics", "problem"),
    [
        (5, {"num_examples": 1e9}, "'num_examples'"),
        (0, {"loss": 0.3}, "metrics over 0 examples"),
        (5, {"accuracz": 0.9}, "'accuracz'"),
        (5000, {"accuracy": 0.9}, "above the job's cap"),
    ],
    ids=["reserved-name", "zero-examples-with-metric", "bit-flipped-name", "over-cap"],
)
def test_evaluations_that_do_not_fit_are_refused(
    examples: int, metrics: dict[str, float], problem: str
) -> None:
    with pytest.raises(InvalidAnswerError, match=problem):
        result = answer(Stage.EVALUATE, {}, examples=examples, metrics=metrics)
        check_evaluation(result, rules=RULES)


def test_an_evaluation_with_tensors_is_refused_and_one_without_rows_is_accepted() -> None:
    with pytest.raises(InvalidAnswerError, match="expected none"):
        check_evaluation(answer(Stage.EVALUATE, {"w": np.zeros(2)}), rules=RULES)
    check_evaluation(answer(Stage.EVALUATE, {}, examples=0), rules=RULES)


def test_the_cap_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="max_examples_per_node"):
        AnswerRules(max_examples_per_node=0)


def test_refusals_render_names_safely() -> None:
    long_name = "x" * 500
    with pytest.raises(InvalidAnswerError) as caught:
        check_evaluation(answer(Stage.EVALUATE, {}, metrics={long_name: 1.0}), rules=RULES)
    assert len(caught.value.problem) < 200
    json.dumps(caught.value.problem)  # a plain string, safe for status.json


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [({"accuracy": 1e30}, "accuracy = 1e+30"), ({"loss": -2.0}, "loss = -2")],
)
def test_metrics_outside_their_range_are_refused(metrics: dict[str, float], problem: str) -> None:
    with pytest.raises(InvalidAnswerError, match="it must lie in"):
        check_evaluation(answer(Stage.EVALUATE, {}, metrics=metrics), rules=RULES)
    with pytest.raises(InvalidAnswerError, match=problem.replace("+", r"\+")):
        check_evaluation(answer(Stage.EVALUATE, {}, metrics=metrics), rules=RULES)
    train_metrics = {f"train_{name}": value for name, value in metrics.items()}
    with pytest.raises(InvalidAnswerError, match="it must lie in"):
        check_update(answer(Stage.TRAIN, update(), metrics=train_metrics), model=MODEL, rules=RULES)


def test_an_update_of_the_right_shape_but_another_dtype_is_refused() -> None:
    """A typed payload (e.g. uint64) cannot be averaged: refused at receipt, not in aggregation."""
    tensors = {name: np.zeros(array.shape, np.uint64) for name, array in MODEL.items()}
    with pytest.raises(InvalidAnswerError, match="has dtype uint64; expected float32"):
        check_update(answer(Stage.TRAIN, Parameters.typed(tensors)), model=MODEL, rules=RULES)
    stats, count = statistics(ROWS)
    stats["sum"] = stats["sum"].astype(np.int64)
    with pytest.raises(InvalidAnswerError, match="tensor 'sum' has dtype int64"):
        result = answer(Stage.STATISTICS, Parameters.typed(stats), examples=count)
        check_statistics(result, width=2, rules=RULES)
