"""Tests for :mod:`sovereign_ai.data.dataset` and the package's public surface."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import sovereign_ai.data as data_package
from sovereign_ai.data import Dataset, train_test_split
from sovereign_ai.errors import ConfigError, DataError


def make(**overrides: Any) -> Dataset:
    fields: dict[str, Any] = {
        "name": "d",
        "features": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        "labels": np.array([0, 1, 1]),
        "feature_names": ("f1", "f2"),
        "class_names": ("no", "yes"),
    }
    fields.update(overrides)
    return Dataset(**fields)


def test_public_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(data_package).items()
        if not name.startswith("_") and not isinstance(value, type(data_package))
    }
    assert sorted(data_package.__all__) == data_package.__all__
    assert set(data_package.__all__) == public


def test_construction_stores_read_only_typed_copies() -> None:
    features = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32)
    labels = np.array([0, 1, 1], dtype=np.int8)
    dataset = make(features=features, labels=labels, feature_names=["f1", "f2"])
    features[0, 0] = 99
    assert dataset.features.dtype == np.float32
    assert dataset.labels.dtype == np.int64
    assert dataset.features[0, 0] == 1.0
    assert dataset.feature_names == ("f1", "f2")
    with pytest.raises(ValueError, match="read-only"):
        dataset.features[0, 0] = 5.0
    assert (dataset.num_examples, dataset.num_features, dataset.num_classes) == (3, 2, 2)


def test_a_class_without_rows_is_allowed() -> None:
    dataset = make(class_names=("no", "yes", "maybe"))
    assert dataset.num_classes == 3


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"name": ""}, "'name' parameter of Dataset must be a non-empty string"),
        ({"features": np.zeros((0, 2)), "labels": np.zeros(0, dtype=int)}, "at least one row"),
        ({"features": np.ones(3)}, "2-D array"),
        ({"features": np.array([["a", "b"]] * 3)}, "real numbers"),
        ({"features": np.array([[1.0, np.nan], [0, 0], [0, 0]])}, r"finite.*index \[0, 1\]"),
        ({"features": np.array([[1.0, 0], [0, 1e39], [0, 0]])}, r"finite.*index \[1, 1\]"),
        ({"labels": np.array([0, 1])}, r"must have shape \(3,\)"),
        ({"labels": np.array([0.0, 1.0, 1.0])}, "integer class indices"),
        ({"labels": np.array([0, 2, 1])}, r"lie in \[0, 2\); got 2 at index 1"),
        ({"labels": np.array([0, -1, 1])}, "got -1 at index 1"),
        ({"feature_names": ("f1",)}, "must hold 2 name"),
        ({"feature_names": ("f1", "f1")}, "duplicates \\['f1'\\]"),
        ({"feature_names": ("f1", "")}, "non-empty strings"),
        ({"class_names": ()}, "at least one class"),
        ({"class_names": ("a", "a")}, "unique names"),
        ({"groups": np.array(["a", "b"])}, "'groups' parameter.*shape"),
    ],
)
def test_invalid_datasets_are_refused(overrides: dict[str, Any], pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        make(**overrides)


def test_groups_are_stored_as_text() -> None:
    dataset = make(groups=np.array([3, 3, 4]))
    assert dataset.groups is not None
    assert dataset.groups.tolist() == ["3", "3", "4"]


def test_equality_compares_values() -> None:
    assert make() == make()
    assert make() != make(name="other")
    assert make() != make(labels=np.array([1, 1, 0]))
    assert make(groups=["a", "b", "c"]) != make()
    assert make(groups=["a", "b", "c"]) == make(groups=np.array(["a", "b", "c"]))
    assert "num_examples=3" in repr(make())


def test_subset_keeps_names_and_order(small_dataset: Dataset) -> None:
    part = small_dataset.subset(np.array([4, 1]))
    assert part.labels.tolist() == [1, 1]
    assert part.features.tolist() == [[8.0, 9.0], [2.0, 3.0]]
    assert part.class_names == small_dataset.class_names
    assert part.groups is not None
    assert part.groups.tolist() == ["h2", "h1"]


@pytest.mark.parametrize("indices", [[], [[0, 1]], [0.0, 1.0], [0, 6], [-1]])
def test_subset_refuses_bad_indices(small_dataset: Dataset, indices: Any) -> None:
    with pytest.raises(ConfigError, match=r"'indices' parameter of Dataset\.subset"):
        small_dataset.subset(np.array(indices))


def _dataset(num_examples: int, num_classes: int) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(
        name="split",
        features=rng.normal(size=(num_examples, 3)).astype(np.float32),
        labels=np.arange(num_examples) % num_classes,
        feature_names=("a", "b", "c"),
        class_names=tuple(f"c{k}" for k in range(num_classes)),
    )


def test_train_test_split_sizes_cover_and_stratify() -> None:
    dataset = _dataset(100, 4)
    train, test = train_test_split(dataset, test_fraction=0.2, seed=3)
    assert (train.num_examples, test.num_examples) == (80, 20)
    rows = {tuple(r) for r in np.vstack([train.features, test.features]).tolist()}
    assert len(rows) == 100
    assert np.bincount(test.labels).tolist() == [5, 5, 5, 5]


def test_train_test_split_is_reproducible_and_seed_dependent() -> None:
    dataset = _dataset(100, 4)
    first = train_test_split(dataset, test_fraction=0.3, seed=1)
    assert first == train_test_split(dataset, test_fraction=0.3, seed=1)
    assert first != train_test_split(dataset, test_fraction=0.3, seed=2)


def test_train_test_split_without_stratify_allows_rare_classes() -> None:
    dataset = make()  # class "no" has one row
    with pytest.raises(DataError, match="class 'no' has only 1 row"):
        train_test_split(dataset, test_fraction=0.4, seed=0)
    train, test = train_test_split(dataset, test_fraction=0.4, seed=0, stratify=False)
    assert (train.num_examples, test.num_examples) == (1, 2)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, True, "0.2", float("nan")])
def test_train_test_split_refuses_bad_fractions(fraction: Any) -> None:
    with pytest.raises(ConfigError, match=re.escape("'test_fraction' parameter")):
        train_test_split(_dataset(10, 2), test_fraction=fraction, seed=0)


def test_train_test_split_refuses_empty_training_part_and_bad_seed() -> None:
    with pytest.raises(ConfigError, match="leaves no training rows"):
        train_test_split(_dataset(3, 1), test_fraction=0.9, seed=0)
    with pytest.raises(ConfigError, match="'seed' parameter"):
        train_test_split(_dataset(10, 2), test_fraction=0.5, seed=-1)
    with pytest.raises(DataError, match="cannot each hold all 4 classes"):
        train_test_split(_dataset(40, 4), test_fraction=0.05, seed=0)
