"""create_strategy / strategy_names: every built-in by name, and clear errors for the rest."""

from __future__ import annotations

import pytest

from sovereign_ai.core import Strategy
from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.strategies import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    create_strategy,
    strategy_names,
)

EXPECTED = {
    "bulyan": Bulyan,
    "fedadagrad": FedAdagrad,
    "fedadam": FedAdam,
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedmedian": FedMedian,
    "fedprox": FedProx,
    "fedtrimmedavg": FedTrimmedAvg,
    "fedyogi": FedYogi,
    "krum": Krum,
    "multikrum": MultiKrum,
}


def test_names_are_the_documented_ones_sorted() -> None:
    assert strategy_names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_name_builds_its_class_with_options(name: str) -> None:
    strategy = create_strategy(name, min_evaluate_nodes=2)
    assert type(strategy) is EXPECTED[name]
    assert isinstance(strategy, Strategy)
    assert strategy.min_evaluate_nodes == 2


def test_options_reach_the_constructor() -> None:
    strategy = create_strategy("fedavgm", server_momentum=0.5, server_learning_rate=2.0)
    assert isinstance(strategy, FedAvgM)
    assert (strategy.server_momentum, strategy.server_learning_rate) == (0.5, 2.0)


@pytest.mark.parametrize("name", ["fedsgd", "FedAvg", "", 3])
def test_unknown_name_lists_the_known_ones(name: object) -> None:
    with pytest.raises(UnknownNameError) as caught:
        create_strategy(name)  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, KeyError)
    assert error.kind == "strategy"
    assert error.known == tuple(sorted(EXPECTED))
    assert str(error) == (
        f"Unknown strategy {str(name)!r}; expected one of: {', '.join(sorted(EXPECTED))}."
    )


def test_unknown_option_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        create_strategy("krum", num_byzantine=1, fraction=0.5)
    assert str(caught.value) == (
        "The option(s) 'fraction', 'num_byzantine' of strategy 'krum' are not accepted; expected "
        "some of: num_malicious, fraction_train, fraction_evaluate, min_train_nodes, "
        "min_evaluate_nodes."
    )


@pytest.mark.parametrize(
    ("name", "options", "parameter"),
    [
        ("fedavg", {"fraction_train": 2.0}, "fraction_train"),
        ("fedtrimmedavg", {"beta": 0.7}, "beta"),
        ("fedprox", {"proximal_mu": "high"}, "proximal_mu"),
        ("multikrum", {"num_selected": 0}, "num_selected"),
    ],
)
def test_bad_values_raise_config_error(
    name: str, options: dict[str, object], parameter: str
) -> None:
    with pytest.raises(ConfigError, match=f"The '{parameter}' parameter of "):
        create_strategy(name, **options)
