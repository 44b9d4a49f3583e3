"""The public surface of sovereign_ai.strategies: ``__all__`` exact, papers cited."""

from __future__ import annotations

import importlib
import inspect
import re

import sovereign_ai.strategies as strategies
from sovereign_ai.core import Strategy

PUBLIC = {
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
    "create_strategy",
    "strategy_names",
}

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
    for name in strategies.__all__:
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
