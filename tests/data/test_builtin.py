"""Tests for :mod:`sovereign_ai.data.builtin`."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest

from sovereign_ai.data import builtin_names, load_builtin, published_scaling
from sovereign_ai.errors import ConfigError, UnknownNameError

EXPECTED = {
    "breast_cancer": (569, 30, ("malignant", "benign")),
    "digits": (1797, 64, tuple(str(d) for d in range(10))),
    "iris": (150, 4, ("setosa", "versicolor", "virginica")),
    "wine": (178, 13, ("class_0", "class_1", "class_2")),
}


def test_builtin_names_are_sorted_and_complete() -> None:
    assert builtin_names() == tuple(sorted(EXPECTED))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_builtin_loads_without_the_network(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("load_builtin tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    dataset = load_builtin(name)
    num_examples, num_features, class_names = EXPECTED[name]
    assert dataset.name == name
    assert dataset.features.shape == (num_examples, num_features)
    assert dataset.features.dtype == np.float32
    assert len(dataset.feature_names) == num_features
    assert dataset.class_names == class_names
    assert set(np.unique(dataset.labels).tolist()) == set(range(len(class_names)))
    assert dataset.groups is None


def test_loading_twice_gives_equal_datasets() -> None:
    assert load_builtin("iris") == load_builtin("iris")


@pytest.mark.parametrize("name", ["mnist", "Iris", "", 3])
def test_unknown_names_list_the_known_ones(name: Any) -> None:
    with pytest.raises(UnknownNameError) as caught:
        load_builtin(name)
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, KeyError)
    assert caught.value.kind == "dataset"
    assert str(caught.value) == (
        f"Unknown dataset {str(name)!r}; expected one of: breast_cancer, digits, iris, wine."
    )


@pytest.mark.parametrize("name", builtin_names())
def test_published_scaling_brings_every_row_within_about_two_spreads(name: str) -> None:
    means, spreads = published_scaling(name)
    dataset = load_builtin(name)
    assert len(means) == len(spreads) == dataset.num_features
    assert all(s > 0 for s in spreads)
    scaled = (dataset.features - np.asarray(means)) / np.asarray(spreads)  # (n, d)
    assert np.abs(scaled).max() <= 2.1  # the published ranges are rounded to 3-4 digits


def test_published_scaling_refuses_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match="breast_cancer"):
        published_scaling("titanic")
