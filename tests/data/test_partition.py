"""Tests for the partitioners and the :func:`partition` registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sovereign_ai.data import (
    Dataset,
    Int64Array,
    PartitionScheme,
    load_builtin,
    node_names,
    partition,
    partition_dirichlet,
    partition_iid,
    partition_natural,
    partition_shards,
)
from sovereign_ai.errors import ConfigError, UnknownNameError

FAST = settings(max_examples=50, deadline=None)


@st.composite
def labels_and_nodes(draw: st.DrawFn, max_rows: int = 300) -> tuple[npt.NDArray[np.int64], int]:
    num_classes = draw(st.integers(1, 6))
    labels = draw(st.lists(st.integers(0, num_classes - 1), min_size=1, max_size=max_rows))
    num_nodes = draw(st.integers(1, len(labels)))
    return np.array(labels, dtype=np.int64), num_nodes


def assert_exact_cover(shares: list[Int64Array], num_examples: int) -> None:
    """Every row in exactly one share, shares non-empty, sorted and int64."""
    assert all(share.dtype == np.int64 and share.size > 0 for share in shares)
    assert all(np.all(np.diff(share) > 0) for share in shares)
    assert np.array_equal(np.sort(np.concatenate(shares)), np.arange(num_examples))


def same(first: list[Int64Array], second: list[Int64Array]) -> bool:
    return len(first) == len(second) and all(map(np.array_equal, first, second))


def entropy_bits(share_labels: Int64Array) -> float:
    counts = np.bincount(share_labels).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


# Properties every scheme has ------------------------------------------------------------------
@FAST
@given(case=labels_and_nodes(), seed=st.integers(0, 2**32 - 1))
def test_iid_covers_every_row_once_in_equal_shares(
    case: tuple[npt.NDArray[np.int64], int], seed: int
) -> None:
    labels, num_nodes = case
    shares = partition_iid(labels, num_nodes=num_nodes, seed=seed)
    assert len(shares) == num_nodes
    assert_exact_cover(shares, labels.size)
    sizes = [share.size for share in shares]
    assert max(sizes) - min(sizes) <= 1
    assert same(shares, partition_iid(labels, num_nodes=num_nodes, seed=seed))


@FAST
@given(
    case=labels_and_nodes(),
    alpha=st.floats(0.05, 1000.0),
    seed=st.integers(0, 2**32 - 1),
    min_examples=st.integers(1, 3),
)
def test_dirichlet_covers_every_row_once_with_min_examples(
    case: tuple[npt.NDArray[np.int64], int], alpha: float, seed: int, min_examples: int
) -> None:
    labels, num_nodes = case
    assume(num_nodes * min_examples <= labels.size)
    try:
        shares = partition_dirichlet(
            labels,
            num_nodes=num_nodes,
            alpha=alpha,
            seed=seed,
            min_examples=min_examples,
            max_attempts=50,
        )
    except ConfigError as exc:  # an honest refusal of an unlikely draw, not a wrong answer
        assert "too small" in str(exc)
        return
    assert len(shares) == num_nodes
    assert_exact_cover(shares, labels.size)
    assert min(share.size for share in shares) >= min_examples
    again = partition_dirichlet(
        labels,
        num_nodes=num_nodes,
        alpha=alpha,
        seed=seed,
        min_examples=min_examples,
        max_attempts=50,
    )
    assert same(shares, again)


@FAST
@given(case=labels_and_nodes(), shards_per_node=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_shards_cover_every_row_once_with_few_labels_per_node(
    case: tuple[npt.NDArray[np.int64], int], shards_per_node: int, seed: int
) -> None:
    labels, num_nodes = case
    num_classes = np.unique(labels).size
    assume(num_classes <= num_nodes * shards_per_node <= labels.size)
    shares = partition_shards(
        labels, num_nodes=num_nodes, shards_per_node=shards_per_node, seed=seed
    )
    assert len(shares) == num_nodes
    assert_exact_cover(shares, labels.size)
    assert max(np.unique(labels[share]).size for share in shares) <= shards_per_node
    again = partition_shards(
        labels, num_nodes=num_nodes, shards_per_node=shards_per_node, seed=seed
    )
    assert same(shares, again)


@FAST
@given(groups=st.lists(st.sampled_from(["a", "b", "c", "7", "h 1"]), min_size=1, max_size=100))
def test_natural_groups_rows_by_value(groups: list[str]) -> None:
    shares = partition_natural(np.array(groups))
    assert list(shares) == sorted(set(groups))
    assert_exact_cover(list(shares.values()), len(groups))
    for name, rows in shares.items():
        assert {groups[i] for i in rows} == {name}


DIGITS = load_builtin("digits").labels

SCHEMES: dict[str, Callable[[int], list[Int64Array]]] = {
    "iid": lambda seed: partition_iid(DIGITS, num_nodes=5, seed=seed),
    "dirichlet": lambda seed: partition_dirichlet(DIGITS, num_nodes=5, alpha=0.5, seed=seed),
    "shards": lambda seed: partition_shards(DIGITS, num_nodes=5, shards_per_node=4, seed=seed),
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@settings(max_examples=20, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=2, unique=True))
def test_different_seeds_give_different_partitions(scheme: str, seeds: list[int]) -> None:
    first, second = (SCHEMES[scheme](seed) for seed in seeds)
    assert not same(first, second)


# What each scheme is for ----------------------------------------------------------------------
def mean_node_entropy(alpha: float) -> float:
    entropies = [
        entropy_bits(DIGITS[share])
        for seed in range(5)
        for share in partition_dirichlet(DIGITS, num_nodes=5, alpha=alpha, seed=seed)
    ]
    return float(np.mean(entropies))


def test_smaller_alpha_gives_more_skewed_nodes() -> None:
    skewed, middle, nearly_iid = (mean_node_entropy(a) for a in (0.05, 1.0, 100.0))
    assert skewed < middle < nearly_iid
    assert skewed < 2.0  # about two of the ten digits per node
    assert nearly_iid > 3.2  # close to log2(10) = 3.32 of the whole dataset


def test_shards_reproduce_mcmahan_two_classes_per_node() -> None:
    labels = np.repeat(np.arange(10), 60)  # 10 classes x 60 rows
    shares = partition_shards(labels, num_nodes=100, shards_per_node=2, seed=0)
    assert {share.size for share in shares} == {6}  # 200 shards of 3 rows, 2 per node
    assert max(np.unique(labels[share]).size for share in shares) <= 2
    assert_exact_cover(shares, labels.size)


def test_shards_are_allotted_in_proportion_to_class_sizes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    shares = partition_shards(labels, num_nodes=5, shards_per_node=2, seed=1)
    assert_exact_cover(shares, 100)
    # D'Hondt gives class 0 nine shards of 10 rows and class 1 one shard of 10 rows.
    assert sorted(share.size for share in shares) == [20] * 5


def test_natural_treats_numbers_and_text_alike() -> None:
    shares = partition_natural([3, 1, 3])
    assert list(shares) == ["1", "3"]
    assert shares["3"].tolist() == [0, 2]
    assert shares["3"].dtype == np.int64


# Refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: partition_iid([0, 1], num_nodes=0, seed=0), "num_nodes"),
        (lambda: partition_iid([0, 1], num_nodes=3, seed=0), "num_nodes"),
        (lambda: partition_iid([0, 1], num_nodes=True, seed=0), "num_nodes"),
        (lambda: partition_iid([0, 1], num_nodes=1.0, seed=0), "num_nodes"),  # type: ignore[arg-type]
        (lambda: partition_iid([0, 1], num_nodes=1, seed=-1), "seed"),
        (lambda: partition_iid([0, 1], num_nodes=1, seed=2**32), "seed"),
        (lambda: partition_iid([], num_nodes=1, seed=0), "labels"),
        (lambda: partition_iid([[0, 1]], num_nodes=1, seed=0), "labels"),
        (lambda: partition_iid([0.0, 1.0], num_nodes=1, seed=0), "labels"),
        (lambda: partition_iid([0, -1], num_nodes=1, seed=0), "labels"),
        (lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=0, seed=0), "alpha"),
        (lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=-1.0, seed=0), "alpha"),
        (lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=float("nan"), seed=0), "alpha"),
        (lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=float("inf"), seed=0), "alpha"),
        (lambda: partition_dirichlet([0, 1], num_nodes=2, alpha="1", seed=0), "alpha"),  # type: ignore[arg-type]
        (
            lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=1.0, seed=0, min_examples=0),
            "min_examples",
        ),
        (
            lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=1.0, seed=0, min_examples=2),
            "min_examples",
        ),
        (
            lambda: partition_dirichlet([0, 1], num_nodes=2, alpha=1.0, seed=0, max_attempts=0),
            "max_attempts",
        ),
        (lambda: partition_shards([0, 1, 2], num_nodes=1, seed=0), "shards_per_node"),
        (lambda: partition_shards([0, 1, 1], num_nodes=2, seed=0), "shards_per_node"),
        (
            lambda: partition_shards([0, 1], num_nodes=1, shards_per_node=0, seed=0),
            "shards_per_node",
        ),
        (lambda: partition_natural([]), "groups"),
        (lambda: partition_natural([["a"]]), "groups"),
    ],
)
def test_bad_arguments_are_config_errors(call: Callable[[], Any], parameter: str) -> None:
    with pytest.raises(ConfigError, match=f"The '{parameter}' parameter of partition_"):
        call()


def test_dirichlet_gives_up_with_a_clear_error_when_nodes_cannot_be_filled() -> None:
    labels = np.repeat(np.arange(2), 50)
    with pytest.raises(ConfigError, match=r"too small for 20 nodes.*in 10 draws.*Raise 'alpha'"):
        partition_dirichlet(labels, num_nodes=20, alpha=0.001, seed=0, max_attempts=10)


# The registry ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris() -> Dataset:
    return load_builtin("iris")


def test_registry_matches_the_functions(iris: Dataset) -> None:
    shares = partition(iris, scheme="iid", num_nodes=3, seed=4)
    assert same(shares, partition_iid(iris.labels, num_nodes=3, seed=4))
    dirichlet = partition(iris, scheme=PartitionScheme.DIRICHLET, num_nodes=2, seed=4, alpha=0.5)
    assert same(dirichlet, partition_dirichlet(iris.labels, num_nodes=2, alpha=0.5, seed=4))
    shards = partition(iris, scheme="shards", num_nodes=3, seed=4, shards_per_node=1)
    assert same(shards, partition_shards(iris.labels, num_nodes=3, shards_per_node=1, seed=4))


def test_registry_ignores_options_a_scheme_does_not_use(iris: Dataset) -> None:
    # A job's data section carries alpha and shards_per_node whatever the scheme.
    plain = partition(iris, scheme="iid", num_nodes=3, seed=4)
    loaded = partition(iris, scheme="iid", num_nodes=3, seed=4, alpha=0.1, shards_per_node=5)
    assert same(plain, loaded)


def test_registry_natural_uses_the_groups_in_sorted_order(small_dataset: Dataset) -> None:
    shares = partition(small_dataset, scheme="natural")
    assert [rows.tolist() for rows in shares] == [[0, 1, 5], [2, 3, 4]]  # h1, h2
    assert same(partition(small_dataset, scheme="natural", num_nodes=2, seed=9), shares)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"scheme": "iid", "seed": 0}, "'num_nodes' parameter of partition is required"),
        ({"scheme": "iid", "num_nodes": 2}, "'seed' parameter of partition is required"),
        ({"scheme": "dirichlet", "num_nodes": 2, "seed": 0}, "'alpha' parameter .* is required"),
        ({"scheme": "dirichlet", "num_nodes": 2, "seed": 0, "alpha": 0.0}, "'alpha' parameter"),
        ({"scheme": "shards", "num_nodes": 2, "seed": 0, "shards_per_node": 0}, "'shards_per"),
        ({"scheme": "natural", "num_nodes": 3}, "equal the 2 groups .* \\(h1, h2\\)"),
        ({"scheme": "iid", "num_nodes": 2, "seed": -3}, "'seed' parameter of partition"),
    ],
)
def test_registry_refuses_missing_and_invalid_options(
    small_dataset: Dataset, kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        partition(small_dataset, **kwargs)


def test_registry_refuses_unknown_schemes_and_natural_without_groups(iris: Dataset) -> None:
    with pytest.raises(UnknownNameError, match="Unknown partition scheme 'random'; expected one"):
        partition(iris, scheme="random", num_nodes=2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dataset 'iris' has none"):
        partition(iris, scheme="natural")


def test_node_names_sort_in_numeric_order() -> None:
    assert node_names(3) == ("node-0", "node-1", "node-2")
    names = node_names(11)
    assert names[0] == "node-00"
    assert names[-1] == "node-10"
    assert list(names) == sorted(names)
    with pytest.raises(ConfigError, match="'num_nodes' parameter of node_names"):
        node_names(0)
