"""create_strategy / strategy_names: built-ins and plug-ins by name, clear errors otherwise."""

from __future__ import annotations

import uuid
from pathlib import Path

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
    _registry,
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


# Plug-ins: strategies of installed packages (entry point group sovereign_ai.strategies) ----------

PLUGIN_SOURCE = """
from sovereign_ai.strategies import FedAvg, FedMedian

def cautious(*, min_train_nodes=3):
    return FedMedian(min_train_nodes=min_train_nodes)

def anything(**options):
    return FedAvg(**options)

def not_a_strategy(*, min_train_nodes=2):
    return {"min_train_nodes": min_train_nodes}

ready_made = FedAvg()
"""


def install(root: Path, distribution: str, strategies: dict[str, str]) -> str:
    """A distribution offering ``strategies`` (name -> attribute of its module); the module name."""
    module = f"strategy_plugin_{uuid.uuid4().hex[:12]}"
    (root / f"{module}.py").write_text(PLUGIN_SOURCE)
    info = root / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    entries = "\n".join(f"{name} = {module}:{attribute}" for name, attribute in strategies.items())
    (info / "entry_points.txt").write_text(f"[sovereign_ai.strategies]\n{entries}\n")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path``, and a fresh registry that has not yet searched for plug-ins."""
    monkeypatch.setattr(_registry, "_STRATEGIES", _registry._strategy_registry())
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plugin_strategy_is_listed_and_built_with_its_options(site: Path) -> None:
    install(site, "bank-strategies", {"cautious": "cautious", "anything": "anything"})
    assert strategy_names() == sorted([*EXPECTED, "anything", "cautious"])
    strategy = create_strategy("cautious", min_train_nodes=4)
    assert type(strategy) is FedMedian and strategy.min_train_nodes == 4
    assert create_strategy("anything", min_evaluate_nodes=2).min_evaluate_nodes == 2
    with pytest.raises(ConfigError, match="'beta' of strategy 'cautious' are not accepted"):
        create_strategy("cautious", beta=0.1)


def test_a_plugin_returning_something_else_is_refused_naming_its_package(site: Path) -> None:
    module = install(site, "bank-strategies", {"odd": "not_a_strategy"})
    with pytest.raises(ConfigError) as caught:
        create_strategy("odd")
    assert str(caught.value) == (
        f"The entry point 'odd = {module}:not_a_strategy' of distribution 'bank-strategies' "
        "(group sovereign_ai.strategies) must return a Strategy; got dict instead. It lacks: "
        "needs_individual_updates, min_train_nodes, min_evaluate_nodes, configure_train, "
        "aggregate_train, configure_evaluate, aggregate_evaluate, state_dict, load_state_dict. "
        "Fix the package 'bank-strategies'."
    )


def test_a_plugin_naming_an_instance_instead_of_a_factory_is_refused(site: Path) -> None:
    install(site, "bank-strategies", {"ready": "ready_made"})
    with pytest.raises(ConfigError, match="is not a usable strategy: it must name a callable"):
        create_strategy("ready")


def test_a_broken_plugin_leaves_the_built_ins_alone(site: Path) -> None:
    install(site, "bank-strategies", {"missing": "no_such_attribute", "fedavg": "cautious"})
    with pytest.warns(RuntimeWarning, match="'fedavg = .*'bank-strategies'"):
        assert strategy_names() == sorted([*EXPECTED, "missing"])
    with pytest.raises(ConfigError, match=r"'bank-strategies'.*AttributeError"):
        create_strategy("missing")
    for name, cls in EXPECTED.items():
        assert type(create_strategy(name)) is cls
