"""The public surface of sovereign_ai.strategies: ``__all__`` exact, papers cited."""

from __future__ import annotations

import importlib
import inspect
import re

import sovereign_ai.strategies as strategies
from sovereign_ai.core import Strategy

PUBLIC = {
    "BaseStrategy",
    "Bulyan",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "StrategyWrapper",
    "check_secure_aggregation_compatible",
    "create_strategy",
    "strategy_names",
}

BASES = {"BaseStrategy", "StrategyWrapper"}  # for users' own strategies; not usable alone

ALGORITHM_MODULES = [
    "bulyan",
    "fedadagrad",
    "fedadam",
    "fedavg",
    "fedavgm",
    "fedprox",
    "fedyogi",
    "krum",
    "median",
    "trimmed_mean",
]


def test_all_is_exactly_the_public_names() -> None:
    assert set(strategies.__all__) == PUBLIC
    assert len(strategies.__all__) == len(PUBLIC)
    assert all(hasattr(strategies, name) for name in strategies.__all__)


def test_every_public_class_is_a_strategy_with_keyword_only_options() -> None:
    for name in sorted(set(strategies.__all__) - BASES):
        obj = getattr(strategies, name)
        if inspect.isclass(obj):
            assert isinstance(obj(), Strategy), name
            kinds = {p.kind for p in inspect.signature(obj).parameters.values()}
            assert kinds == {inspect.Parameter.KEYWORD_ONLY}, name
            assert obj.__doc__ and "Parameters\n    ----------" in obj.__doc__, name


def test_every_algorithm_module_cites_its_paper_and_exports_only_its_algorithm() -> None:
    for module_name in ALGORITHM_MODULES:
        module = importlib.import_module(f"sovereign_ai.strategies.{module_name}")
        assert module.__doc__ and re.search(r"\b(19|20)\d\d\b", module.__doc__), module_name
        assert set(module.__all__) <= PUBLIC, module_name


def test_the_bases_are_public_documented_and_used_by_the_built_ins() -> None:
    assert inspect.isabstract(strategies.BaseStrategy)
    for name in BASES:
        obj = getattr(strategies, name)
        assert obj.__doc__ and "Parameters\n    ----------" in obj.__doc__, name
        assert "Notes\n    -----" in obj.__doc__, name
    built_ins = [getattr(strategies, name) for name in sorted(PUBLIC - BASES)]
    built_in_classes = [obj for obj in built_ins if inspect.isclass(obj)]
    bases = {
        obj.__name__: next(b for b in BASES if issubclass(obj, getattr(strategies, b)))
        for obj in built_in_classes
    }
    assert bases == {
        "Bulyan": "BaseStrategy",
        "FedAdagrad": "BaseStrategy",
        "FedAdam": "BaseStrategy",
        "FedAvg": "BaseStrategy",
        "FedAvgM": "BaseStrategy",
        "FedMedian": "BaseStrategy",
        "FedProx": "StrategyWrapper",
        "FedTrimmedAvg": "BaseStrategy",
        "FedYogi": "BaseStrategy",
        "Krum": "BaseStrategy",
        "MultiKrum": "BaseStrategy",
    }


def test_a_user_strategy_built_on_the_public_base_needs_only_aggregate_train() -> None:
    class Halfway(strategies.BaseStrategy):
        """Half the example-weighted mean update: a damped FedAvg."""

        needs_individual_updates = False

        def aggregate_train(self, *, round_number, parameters, results):
            mean = self._weighted_mean_update(
                round_number=round_number, parameters=parameters, results=results
            )
            return self._apply_update(
                round_number=round_number, parameters=parameters, update=0.5 * mean
            )

    from sovereign_ai.testing import check_strategy

    check_strategy(lambda: Halfway(min_train_nodes=3))
    assert repr(Halfway(min_train_nodes=3)) == (
        "Halfway(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=3, "
        "min_evaluate_nodes=1)"
    )
    strategies.check_secure_aggregation_compatible(Halfway())
