"""needs_individual_updates on every strategy, and the refusal of secure aggregation it drives."""

from __future__ import annotations

import pytest

from sovereign_ai.core import Strategy
from sovereign_ai.errors import ConfigError
from sovereign_ai.strategies import (
    FedAvg,
    FedMedian,
    Krum,
    StrategyWrapper,
    check_secure_aggregation_compatible,
    create_strategy,
    strategy_names,
)
from sovereign_ai.strategies._registry import BUILT_IN_STRATEGIES
from sovereign_ai.strategies._secure_aggregation import summable_strategy_names

SUMMABLE = ["fedadagrad", "fedadam", "fedavg", "fedavgm", "fedprox", "fedyogi"]
NEEDS_EACH_UPDATE = ["bulyan", "fedmedian", "fedtrimmedavg", "krum", "multikrum"]


def test_every_built_in_is_classified() -> None:
    assert sorted(SUMMABLE + NEEDS_EACH_UPDATE) == sorted(BUILT_IN_STRATEGIES)
    assert set(BUILT_IN_STRATEGIES) <= set(strategy_names())


@pytest.mark.parametrize("name", SUMMABLE)
def test_weighted_mean_strategies_work_on_the_sum(name: str) -> None:
    strategy = create_strategy(name)
    assert strategy.needs_individual_updates is False
    check_secure_aggregation_compatible(strategy, name=name)  # no error


@pytest.mark.parametrize("name", NEEDS_EACH_UPDATE)
def test_robust_strategies_need_each_update_and_are_refused(name: str) -> None:
    strategy = create_strategy(name)
    assert strategy.needs_individual_updates is True
    with pytest.raises(
        ConfigError, match=f"must use only the sum of the nodes' updates; got '{name}'"
    ):
        check_secure_aggregation_compatible(strategy, name=name)


@pytest.mark.parametrize(
    ("name", "options"),
    [("krum", {"num_malicious": 0}), ("fedtrimmedavg", {"beta": 0.0}), ("fedavgm", {})],
)
def test_the_flag_does_not_depend_on_options(name: str, options: dict[str, object]) -> None:
    assert create_strategy(name, **options).needs_individual_updates is (name != "fedavgm")


def test_the_refusal_says_why_and_which_strategies_can() -> None:
    with pytest.raises(ConfigError) as caught:
        check_secure_aggregation_compatible(Krum(num_malicious=2), name="krum")
    assert str(caught.value) == (
        "The strategy of a job with secure aggregation must use only the sum of the nodes' "
        "updates; got 'krum' instead, which needs each node's update "
        "(Krum.needs_individual_updates is True). Secure aggregation only ever gives the "
        "coordinator the sum of a round's updates, never one node's, so a rule that compares, "
        "sorts or selects individual updates (median, trimmed mean, Krum, Bulyan) cannot run "
        "under it. Choose one of fedadagrad, fedadam, fedavg, fedavgm, fedprox, fedyogi, or turn "
        "secure aggregation off."
    )
    assert isinstance(caught.value, ValueError)


def test_without_a_name_the_refusal_quotes_the_strategy() -> None:
    with pytest.raises(ConfigError, match=r"got FedMedian\(fraction_train=1.0, .*\) instead"):
        check_secure_aggregation_compatible(FedMedian())


def test_the_summable_names_are_read_from_the_strategies() -> None:
    assert summable_strategy_names() == SUMMABLE


def test_a_wrapper_takes_the_flag_of_what_it_wraps() -> None:
    check_secure_aggregation_compatible(StrategyWrapper(FedAvg()))
    with pytest.raises(ConfigError, match=r"StrategyWrapper.needs_individual_updates is True"):
        check_secure_aggregation_compatible(StrategyWrapper(FedMedian()))


class _Undeclared:
    """Has every member of the protocol but the flag."""

    def __init__(self) -> None:
        self.min_train_nodes = 1


@pytest.mark.parametrize(("flag", "got"), [(None, "nothing"), ("no", "'no'"), (1, "1")])
def test_a_strategy_that_does_not_declare_a_bool_is_refused(flag: object, got: str) -> None:
    strategy = _Undeclared()
    if flag is not None:
        strategy.needs_individual_updates = flag  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        check_secure_aggregation_compatible(strategy)
    assert str(caught.value).startswith(
        "The 'needs_individual_updates' attribute of _Undeclared must be a bool (True if "
        "aggregate_train needs each node's update, False if the example-weighted sum of the "
        f"updates is enough); got {got} instead. Declare it on the strategy"
    )
    assert not isinstance(strategy, Strategy)
