"""Behaviour every built-in strategy inherits: option checks, sampling, stacking, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.errors import (
    CheckpointError,
    ConfigError,
    FederationError,
    InsufficientNodesError,
    SerializationError,
)
from sovereign_ai.strategies import FedAvg, FedMedian

NODES = [f"node-{i:02d}" for i in range(10)]


def _evaluate_result(node_id: str, count: int, metrics: dict[str, float]) -> Result:
    return Result(
        job_id="job",
        round_number=1,
        stage=Stage.EVALUATE,
        node_id=node_id,
        num_examples=count,
        metrics=metrics,
    )


# Options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("fraction_train", 0.0, "a number in (0, 1]"),
        ("fraction_train", 1.5, "a number in (0, 1]"),
        ("fraction_train", math.nan, "a number in (0, 1]"),
        ("fraction_train", "0.5", "a number in (0, 1]"),
        ("fraction_train", True, "a number in (0, 1]"),
        ("fraction_evaluate", -0.1, "a number in [0, 1]"),
        ("min_train_nodes", 0, "an integer >= 1"),
        ("min_train_nodes", 2.0, "an integer >= 1"),
        ("min_train_nodes", True, "an integer >= 1"),
        ("min_evaluate_nodes", -1, "an integer >= 0"),
    ],
)
def test_bad_cohort_option_raises_config_error_in_house_shape(
    option: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        FedAvg(**{option: value})  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"The {option!r} parameter of FedAvg must be {expected}; got {value!r} instead."
    )
    assert isinstance(caught.value, ValueError)


def test_subclass_name_appears_in_option_errors() -> None:
    with pytest.raises(ConfigError, match="parameter of FedMedian"):
        FedMedian(min_train_nodes=0)


def test_repr_lists_constructor_options() -> None:
    assert repr(FedAvg(min_train_nodes=3)) == (
        "FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=3, min_evaluate_nodes=1)"
    )


# Sampling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "fraction", "minimum", "expected"),
    [
        (10, 1.0, 2, 10),
        (25, 0.28, 2, 7),  # 0.28 * 25 is 7.000000000000001 in floating point: still 7
        (10, 0.25, 2, 3),  # ceil(2.5)
        (10, 0.1, 4, 4),  # the minimum wins over the fraction
        (10, 0.01, 1, 1),
    ],
)
def test_configure_train_samples_the_documented_count(
    count: int, fraction: float, minimum: int, expected: int
) -> None:
    nodes = [f"node-{i:02d}" for i in range(count)]
    strategy = FedAvg(fraction_train=fraction, min_train_nodes=minimum)
    instructions = strategy.configure_train(
        round_number=1, parameters=Parameters({}), nodes=nodes, rng=np.random.default_rng(0)
    )
    chosen = [i.node_id for i in instructions]
    assert len(chosen) == expected
    assert chosen == sorted(set(chosen))
    assert set(chosen) <= set(nodes)
    assert all(dict(i.config) == {} for i in instructions)


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=40),
    fraction=st.floats(min_value=0.01, max_value=1.0),
    minimum=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_configure_train_count_subset_and_determinism(
    count: int, fraction: float, minimum: int, seed: int
) -> None:
    nodes = [f"n{i}" for i in range(count)]
    strategy = FedAvg(fraction_train=fraction, min_train_nodes=minimum)
    if count < minimum:
        with pytest.raises(InsufficientNodesError):
            strategy.configure_train(
                round_number=1, parameters=Parameters({}), nodes=nodes, rng=np.random.default_rng()
            )
        return
    first, second = (
        strategy.configure_train(
            round_number=1,
            parameters=Parameters({}),
            nodes=nodes,
            rng=np.random.default_rng(seed),
        )
        for _ in range(2)
    )
    expected = min(count, max(minimum, math.ceil(round(fraction * count, 9))))
    assert [i.node_id for i in first] == [i.node_id for i in second]
    assert len({i.node_id for i in first}) == expected
    assert {i.node_id for i in first} <= set(nodes)


def test_configure_train_varies_with_the_seed_and_ignores_duplicates() -> None:
    strategy = FedAvg(fraction_train=0.5)
    cohorts = {
        tuple(
            i.node_id
            for i in strategy.configure_train(
                round_number=1,
                parameters=Parameters({}),
                nodes=NODES + NODES,  # a node listed twice is still one node
                rng=np.random.default_rng(seed),
            )
        )
        for seed in range(20)
    }
    assert len(cohorts) > 1
    assert all(len(cohort) == 5 and len(set(cohort)) == 5 for cohort in cohorts)


def test_configure_train_with_too_few_nodes_raises() -> None:
    with pytest.raises(InsufficientNodesError) as caught:
        FedAvg(min_train_nodes=3).configure_train(
            round_number=4, parameters=Parameters({}), nodes=["b", "a"], rng=np.random.default_rng()
        )
    error = caught.value
    assert (error.stage, error.round_number, error.answered, error.minimum) == (
        "train",
        4,
        ["a", "b"],
        3,
    )


def test_configure_evaluate_samples_or_turns_off() -> None:
    rng = np.random.default_rng(0)
    on = FedAvg(fraction_evaluate=0.2, min_evaluate_nodes=1).configure_evaluate(
        round_number=1, parameters=Parameters({}), nodes=NODES, rng=rng
    )
    off = FedAvg(fraction_evaluate=0.0).configure_evaluate(
        round_number=1, parameters=Parameters({}), nodes=NODES, rng=rng
    )
    assert len(on) == 2
    assert off == []
    with pytest.raises(InsufficientNodesError) as caught:
        FedAvg(min_evaluate_nodes=3).configure_evaluate(
            round_number=1, parameters=Parameters({}), nodes=["a"], rng=rng
        )
    assert caught.value.stage == "evaluate"


# Stacking updates -------------------------------------------------------------------------------
def test_update_with_another_spec_is_refused_naming_the_node(results, params) -> None:
    bad = Result(
        job_id="job",
        round_number=1,
        stage=Stage.TRAIN,
        node_id="node-x",
        num_examples=1,
        parameters=Parameters({"w": np.zeros(3)}),
    )
    with pytest.raises(SerializationError, match="node-x"):
        FedAvg().aggregate_train(
            round_number=1, parameters=params([0.0, 0.0]), results=[*results([[1, 1]]), bad]
        )


@pytest.mark.parametrize(
    ("updates", "examples", "node_ids", "message"),
    [
        ([[math.nan, 0.0], [0.0, 0.0]], [1, 1], ["a", "b"], "node 'a'.*non-finite"),
        ([[math.inf, 0.0], [0.0, 0.0]], [1, 1], ["a", "b"], "node 'a'.*non-finite"),
        ([[0.0, 0.0], [1.0, 1.0]], [1, 1], ["a", "a"], "a answered more than once"),
        ([[0.0, 0.0], [1.0, 1.0]], [-1, 1], ["a", "b"], "node 'a' reports -1 examples"),
        ([[0.0, 0.0], [1.0, 1.0]], [0, 0], ["a", "b"], "every update reports 0 examples"),
    ],
)
def test_unusable_updates_raise_federation_error(
    results, params, updates, examples, node_ids, message
) -> None:
    with pytest.raises(FederationError, match=message):
        FedAvg().aggregate_train(
            round_number=1,
            parameters=params([0.0, 0.0]),
            results=results(updates, examples, node_ids=node_ids),
        )


def test_too_few_results_raise_insufficient_nodes(results, params) -> None:
    strategy = FedAvg(min_train_nodes=3)
    for updates in ([], [[1.0], [2.0]]):
        with pytest.raises(InsufficientNodesError) as caught:
            strategy.aggregate_train(
                round_number=2, parameters=params([0.0]), results=results(updates)
            )
        assert caught.value.answered == [f"node-{i}" for i in range(len(updates))]
        assert caught.value.minimum == 3
    with pytest.raises(InsufficientNodesError):
        FedAvg(min_train_nodes=1).aggregate_train(
            round_number=1, parameters=params([0.0]), results=[]
        )


# Evaluation -------------------------------------------------------------------------------------
def test_aggregate_evaluate_weights_by_examples() -> None:
    # loss: (1 * 1.0 + 3 * 3.0) / 4 = 2.5; accuracy only from b and c: (3 * 0.5 + 1 * 0.9) / 4 = 0.6
    metrics = FedAvg().aggregate_evaluate(
        round_number=1,
        results=[
            _evaluate_result("a", 1, {"loss": 1.0}),
            _evaluate_result("b", 3, {"loss": 3.0, "accuracy": 0.5}),
            _evaluate_result("c", 1, {"accuracy": 0.9}),
        ],
    )
    assert metrics == pytest.approx({"loss": 2.5, "accuracy": 0.6, "num_examples": 5.0})
    assert list(metrics) == ["accuracy", "loss", "num_examples"]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([_evaluate_result("a", 1, {"num_examples": 3.0})], "'num_examples', which is reserved"),
        ([_evaluate_result("a", 1, {"loss": math.nan})], "metric 'loss'=nan"),
        (
            [_evaluate_result("a", 0, {"loss": 1.0}), _evaluate_result("b", 0, {"loss": 2.0})],
            "0 examples",
        ),
        ([_evaluate_result("a", -2, {"loss": 1.0})], "reports -2 examples"),
    ],
)
def test_aggregate_evaluate_refuses_unusable_metrics(results: list[Result], message: str) -> None:
    with pytest.raises(FederationError, match=message):
        FedAvg().aggregate_evaluate(round_number=1, results=results)


def test_aggregate_evaluate_needs_its_minimum() -> None:
    with pytest.raises(InsufficientNodesError):
        FedAvg().aggregate_evaluate(round_number=1, results=[])
    optional = FedAvg(min_evaluate_nodes=0).aggregate_evaluate(round_number=1, results=[])
    assert optional == {"num_examples": 0.0}
    with pytest.raises(InsufficientNodesError) as caught:
        FedAvg(min_evaluate_nodes=2).aggregate_evaluate(
            round_number=1, results=[_evaluate_result("a", 1, {"loss": 1.0})]
        )
    assert caught.value.stage == "evaluate"


# State ------------------------------------------------------------------------------------------
def test_stateless_strategy_accepts_only_empty_state() -> None:
    strategy = FedAvg()
    assert strategy.state_dict() == {}
    strategy.load_state_dict({})
    with pytest.raises(CheckpointError, match=r"unexpected \['momentum'\]"):
        strategy.load_state_dict({"momentum": np.zeros(2, dtype=np.float32)})
