"""StrategyWrapper forwards every member of the Strategy protocol; subclasses override little."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from sovereign_ai.core import NodeInstruction, Parameters, Result, Strategy
from sovereign_ai.errors import CheckpointError, ConfigError
from sovereign_ai.strategies import (
    FedAvg,
    FedAvgM,
    FedMedian,
    StrategyWrapper,
    create_strategy,
    strategy_names,
)
from sovereign_ai.testing import StrategyConformanceError, check_strategy
from sovereign_ai.testing._strategy_inputs import (
    evaluate_results,
    global_parameters,
    instruction_summary,
    node_names,
    train_results,
)

NODES = node_names(12)


def _assert_same_parameters(left: Parameters, right: Parameters) -> None:
    assert left.spec == right.spec
    np.testing.assert_array_equal(left.flatten(), right.flatten())


def _assert_same_state(left: Strategy, right: Strategy) -> None:
    left_state, right_state = left.state_dict(), right.state_dict()
    assert sorted(left_state) == sorted(right_state)
    for key in left_state:
        assert left_state[key].dtype == right_state[key].dtype
        np.testing.assert_array_equal(left_state[key], right_state[key])


def _run_rounds(strategy: Strategy, *, rounds: range) -> list[object]:
    """What a coordinator sees of ``strategy`` over ``rounds``: instructions, models, metrics."""
    parameters = global_parameters(seed=0)
    seen: list[object] = []
    for round_number in rounds:
        rng = np.random.default_rng(round_number)
        chosen = strategy.configure_train(
            round_number=round_number, parameters=parameters, nodes=NODES, rng=rng
        )
        seen.append(instruction_summary(chosen))
        results = train_results(
            parameters=parameters, count=len(chosen), round_number=round_number, seed=round_number
        )
        parameters = strategy.aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )
        seen.append(parameters.flatten().tobytes())
        evaluating = strategy.configure_evaluate(
            round_number=round_number, parameters=parameters, nodes=NODES, rng=rng
        )
        seen.append(instruction_summary(evaluating))
        metrics = strategy.aggregate_evaluate(
            round_number=round_number,
            results=evaluate_results(count=len(evaluating), round_number=round_number, seed=9),
        )
        seen.append(sorted(metrics.items()))
    return seen


@pytest.mark.parametrize("name", strategy_names())
def test_a_wrapper_that_overrides_nothing_behaves_exactly_like_its_inner_strategy(
    name: str,
) -> None:
    options = {"fraction_train": 0.75, "fraction_evaluate": 0.5, "min_train_nodes": 3}
    plain = create_strategy(name, **options)
    wrapped = StrategyWrapper(create_strategy(name, **options))
    assert wrapped.needs_individual_updates is plain.needs_individual_updates
    assert (wrapped.min_train_nodes, wrapped.min_evaluate_nodes) == (
        plain.min_train_nodes,
        plain.min_evaluate_nodes,
    )
    assert _run_rounds(wrapped, rounds=range(1, 4)) == _run_rounds(plain, rounds=range(1, 4))
    _assert_same_state(wrapped, plain)


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "krum"])
def test_state_goes_through_the_wrapper_to_the_inner_strategy(name: str) -> None:
    original = StrategyWrapper(create_strategy(name))
    _run_rounds(original, rounds=range(1, 3))
    resumed = StrategyWrapper(create_strategy(name))
    resumed.load_state_dict(original.state_dict())
    _assert_same_state(resumed.inner, original.inner)
    assert _run_rounds(resumed, rounds=range(3, 5)) == _run_rounds(original, rounds=range(3, 5))


def test_the_inner_strategys_state_errors_reach_the_caller() -> None:
    with pytest.raises(CheckpointError, match=r"FedAvgM\.load_state_dict must hold exactly"):
        StrategyWrapper(FedAvgM()).load_state_dict({"other": np.zeros(1, np.float32)})


def test_it_forwards_every_member_of_the_protocol_itself() -> None:
    members = [name for name in vars(Strategy) if not name.startswith("_")]
    assert "needs_individual_updates" in members and "load_state_dict" in members
    assert [name for name in members if name not in vars(StrategyWrapper)] == []


def test_it_conforms_around_a_stateful_strategy() -> None:
    check_strategy(lambda: StrategyWrapper(FedAvgM(server_momentum=0.5)))


def test_repr_shows_the_inner_strategy() -> None:
    assert repr(StrategyWrapper(FedMedian(min_train_nodes=3))) == (
        "StrategyWrapper(inner=FedMedian(fraction_train=1.0, fraction_evaluate=1.0, "
        "min_train_nodes=3, min_evaluate_nodes=1))"
    )


@pytest.mark.parametrize(
    ("inner", "got"), [(None, "NoneType"), ("fedavg", "str"), (FedAvg, "the class FedAvg")]
)
def test_inner_must_be_a_strategy_instance(inner: object, got: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StrategyWrapper(inner)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "The 'inner' parameter of StrategyWrapper must be a Strategy instance (see "
        f"sovereign_ai.core.Strategy); got {got} instead."
    )


class _Tagged(StrategyWrapper):
    """Overrides one hook: every train instruction carries ``tag``."""

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        return [
            NodeInstruction(node_id=i.node_id, config={**i.config, "tag": "x"})
            for i in self.inner.configure_train(
                round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
            )
        ]


class _Unweighted(StrategyWrapper):
    """Every update weighs one in the inner strategy's aggregation: needs each update."""

    @property
    def needs_individual_updates(self) -> bool:
        return True  # re-weighting needs each update; the sum under secure aggregation is fixed

    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        equal = [dataclasses.replace(r, num_examples=1) for r in results]
        return self.inner.aggregate_train(
            round_number=round_number, parameters=parameters, results=equal
        )


def test_a_subclass_changes_only_the_hooks_it_overrides() -> None:
    parameters = global_parameters(seed=0)
    rng_seed = 5
    tagged, plain = _Tagged(FedAvg(fraction_train=0.5)), FedAvg(fraction_train=0.5)
    got = tagged.configure_train(
        round_number=1, parameters=parameters, nodes=NODES, rng=np.random.default_rng(rng_seed)
    )
    expected = plain.configure_train(
        round_number=1, parameters=parameters, nodes=NODES, rng=np.random.default_rng(rng_seed)
    )
    assert [i.node_id for i in got] == [i.node_id for i in expected]
    assert all(dict(i.config) == {"tag": "x"} for i in got)

    results = train_results(parameters=parameters, count=4, round_number=1, seed=2)
    unweighted = _Unweighted(FedAvg()).aggregate_train(
        round_number=1, parameters=parameters, results=results
    )
    mean = np.mean([r.parameters.flatten().astype(np.float64) for r in results], axis=0)
    expected_vector = (parameters.flatten().astype(np.float64) + mean).astype(np.float32)
    np.testing.assert_array_equal(unweighted.flatten(), expected_vector)
    check_strategy(lambda: _Unweighted(FedAvgM()))


def test_a_wrapper_that_reweights_but_keeps_the_inner_flag_fails_conformance() -> None:
    class Careless(StrategyWrapper):
        aggregate_train = _Unweighted.aggregate_train

    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(lambda: Careless(FedAvg()))
    assert set(caught.value.failures) == {"uses_only_the_sum"}
