"""check_strategy: every built-in passes, and deliberately broken strategies are caught."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

import sovereign_ai.testing as testing
from sovereign_ai.core import FloatArray, NodeInstruction, Parameters, Result, Strategy
from sovereign_ai.errors import ConfigError, SovereignError
from sovereign_ai.strategies import FedAvg, FedAvgM, FedMedian, create_strategy, strategy_names
from sovereign_ai.testing import CONFORMANCE_CHECKS, StrategyConformanceError, check_strategy


def test_public_api() -> None:
    assert set(testing.__all__) == {
        "CONFORMANCE_CHECKS",
        "StrategyConformanceError",
        "check_strategy",
    }


@pytest.mark.parametrize("name", strategy_names())
def test_every_built_in_strategy_conforms(name: str) -> None:
    check_strategy(lambda: create_strategy(name))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fedavg", {"fraction_train": 0.5, "fraction_evaluate": 0.0, "min_evaluate_nodes": 0}),
        ("fedavgm", {"server_momentum": 0.5, "server_learning_rate": 0.3}),
        ("fedprox", {"proximal_mu": 1.0, "min_train_nodes": 5}),
        ("fedadam", {"beta_1": 0.0, "tau": 1e-9}),
        ("fedyogi", {"fraction_train": 0.3}),
        ("fedadagrad", {"min_train_nodes": 1}),
        ("fedtrimmedavg", {"beta": 0.0}),
        ("krum", {"num_malicious": 0}),
        ("multikrum", {"num_malicious": 2, "num_selected": 3}),
        ("bulyan", {"num_malicious": 0}),
        ("bulyan", {"num_malicious": 2}),
    ],
)
def test_built_ins_conform_with_other_options(name: str, options: dict[str, object]) -> None:
    check_strategy(lambda: create_strategy(name, **options))


# Deliberately broken strategies ----------------------------------------------------------------
class _ReversesResults(FedAvg):
    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        if isinstance(results, list):
            results.reverse()  # the caller's list!
        return super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )


class _Noisy(FedAvg):
    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        new = super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )
        noise = np.random.default_rng().normal(scale=1e-3, size=new.num_scalars)  # unseeded
        return new.with_vector(new.flatten() + noise)


class _ForgetsMomentum(FedAvgM):
    def state_dict(self) -> dict[str, FloatArray]:
        return {}


class _AliasesMomentum(FedAvgM):
    def state_dict(self) -> dict[str, FloatArray]:
        return {} if self._momentum is None else {"momentum": self._momentum}  # no copy


class _UnweightedEvaluate(FedAvg):
    def aggregate_evaluate(
        self, *, round_number: int, results: Sequence[Result]
    ) -> dict[str, float]:
        names = {name for r in results for name in r.metrics}
        return {n: float(np.mean([r.metrics[n] for r in results])) for n in names}


class _IgnoresRng(FedAvg):
    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        return super().configure_train(
            round_number=round_number,
            parameters=parameters,
            nodes=nodes,
            rng=np.random.default_rng(),  # fresh entropy: not reproducible
        )


class _AcceptsNoResults(FedAvg):
    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        if not results:
            return parameters
        return super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )


class _AddsATensor(FedAvg):
    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        new = super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )
        return Parameters({**new, "extra": np.zeros(1)})


class _ScalesGlobalInPlace(FedAvg):
    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        new = super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )
        for array in parameters.values():
            array.setflags(write=True)
            np.multiply(array, 2.0, out=array)
        return new


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (_ReversesResults, {"no_mutation"}),
        (
            _Noisy,
            {"deterministic", "zero_update_fixed_point", "state_round_trip", "uses_only_the_sum"},
        ),
        (_ForgetsMomentum, {"state_round_trip"}),
        (_AliasesMomentum, {"state_round_trip"}),
        # it also answers no results with {} instead of raising
        (_UnweightedEvaluate, {"aggregate_evaluate", "insufficient_results"}),
        (lambda: _IgnoresRng(fraction_train=0.5, min_train_nodes=5), {"configure_train"}),
        (_AcceptsNoResults, {"insufficient_results"}),
    ],
)
def test_broken_strategies_fail_exactly_the_checks_they_break(factory, expected) -> None:
    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(factory)
    assert set(caught.value.failures) == expected
    for name in expected:
        assert f"  - {name}: " in str(caught.value)


@pytest.mark.parametrize(
    ("factory", "check"),
    [(_AddsATensor, "aggregate_output"), (_ScalesGlobalInPlace, "no_mutation")],
)
def test_broken_strategies_fail_at_least_the_check_they_break(factory, check) -> None:
    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(factory)
    assert check in caught.value.failures


def test_failure_is_an_assertion_and_sovereign_error_with_a_readable_message() -> None:
    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(_ForgetsMomentum)
    error = caught.value
    assert isinstance(error, AssertionError) and isinstance(error, SovereignError)
    assert error.strategy_name == "_ForgetsMomentum"
    assert str(error) == (
        f"Strategy _ForgetsMomentum failed 1 of {len(CONFORMANCE_CHECKS)} conformance check(s):\n"
        "  - state_round_trip: round 2 outputs of the original and of a copy resumed from it "
        "differ (they must be bit-for-bit equal)"
    )


def test_an_object_that_is_no_strategy_fails_every_check_but_the_sum_claim() -> None:
    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(object)  # type: ignore[arg-type]
    # uses_only_the_sum verifies a claim (needs_individual_updates = False) that object never makes
    assert set(caught.value.failures) == set(CONFORMANCE_CHECKS) - {"uses_only_the_sum"}
    assert "lacks some methods" in caught.value.failures["protocol"]
    assert caught.value.failures["deterministic"].startswith("raised AttributeError")


def test_skip_leaves_out_the_named_checks() -> None:
    check_strategy(
        _Noisy,
        skip={"deterministic", "zero_update_fixed_point", "state_round_trip", "uses_only_the_sum"},
    )
    with pytest.raises(ConfigError, match="The 'skip' parameter of check_strategy"):
        check_strategy(FedAvg, skip=["determinism"])


def test_factory_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="The 'factory' parameter of check_strategy"):
        check_strategy(FedAvg())  # type: ignore[arg-type]


class _FromScratch:
    """A from-scratch strategy delegating to FedAvg: conformance is structural."""

    def __init__(self) -> None:
        self._inner = FedAvg()
        self.needs_individual_updates = False
        self.min_train_nodes = 2
        self.min_evaluate_nodes = 1

    def configure_train(self, **kwargs: object) -> list[NodeInstruction]:
        return self._inner.configure_train(**kwargs)  # type: ignore[arg-type]

    def aggregate_train(self, **kwargs: object) -> Parameters:
        return self._inner.aggregate_train(**kwargs)  # type: ignore[arg-type]

    def configure_evaluate(self, **kwargs: object) -> list[NodeInstruction]:
        return self._inner.configure_evaluate(**kwargs)  # type: ignore[arg-type]

    def aggregate_evaluate(self, **kwargs: object) -> dict[str, float]:
        return self._inner.aggregate_evaluate(**kwargs)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, FloatArray]:
        return {}

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        self._inner.load_state_dict(state)


def test_a_strategy_without_the_base_class_can_conform() -> None:
    assert isinstance(_FromScratch(), Strategy)
    check_strategy(_FromScratch)


def test_a_strategy_that_does_not_declare_whether_it_needs_individual_updates_fails() -> None:
    def undeclared() -> _FromScratch:
        strategy = _FromScratch()
        del strategy.needs_individual_updates
        return strategy

    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(undeclared)
    assert set(caught.value.failures) == {"protocol"}
    assert caught.value.failures["protocol"] == (
        "_FromScratch lacks some methods or properties of Strategy: declare "
        "needs_individual_updates (True if aggregate_train needs each node's update, False if "
        "their example-weighted sum is enough: secure aggregation only gives the coordinator the "
        "sum); missing: needs_individual_updates"
    )


@pytest.mark.parametrize("flag", ["no", 0, None, np.bool_(True)])
def test_a_flag_that_is_not_a_bool_fails_the_protocol_check(flag: object) -> None:
    def odd() -> _FromScratch:
        strategy = _FromScratch()
        strategy.needs_individual_updates = flag  # type: ignore[assignment]
        return strategy

    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(odd)
    assert set(caught.value.failures) == {"protocol"}
    assert caught.value.failures["protocol"].startswith("needs_individual_updates must be a bool")
    assert caught.value.failures["protocol"].endswith(f"; got {flag!r}")


class _MedianClaimingTheSum(FedMedian):
    needs_individual_updates = False  # wrong: a median needs each update


class _UnweightedClaimingTheSum(FedAvg):
    """The plain mean of the updates: depends on more than their example-weighted sum."""

    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        equal = [dataclasses.replace(r, num_examples=1) for r in results]
        return super().aggregate_train(
            round_number=round_number, parameters=parameters, results=equal
        )


@pytest.mark.parametrize("factory", [_MedianClaimingTheSum, _UnweightedClaimingTheSum])
def test_a_strategy_wrongly_claiming_to_need_only_the_sum_is_caught(factory) -> None:
    with pytest.raises(StrategyConformanceError) as caught:
        check_strategy(factory)
    assert set(caught.value.failures) == {"uses_only_the_sum"}
    assert caught.value.failures["uses_only_the_sum"].startswith(
        "needs_individual_updates is False, yet two sets of updates with the same "
        "example-weighted sum and example counts gave models differing by up to "
    )


@pytest.mark.parametrize("name", strategy_names())
def test_built_ins_claiming_the_sum_are_checked_on_it(name: str) -> None:
    from sovereign_ai.testing.strategy_conformance import _check_uses_only_the_sum

    strategy = create_strategy(name)
    if strategy.needs_individual_updates:
        class_ = type(strategy)
        with pytest.raises(StrategyConformanceError, match="uses_only_the_sum"):
            check_strategy(type(class_.__name__, (class_,), {"needs_individual_updates": False}))
    else:
        _check_uses_only_the_sum(lambda: create_strategy(name))
