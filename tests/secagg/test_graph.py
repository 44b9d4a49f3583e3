"""SecAgg+'s communication graph: a symmetric k-regular Harary graph, and how k and t are chosen."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg.graph import Neighbourhood, choose_neighbourhood, communication_graph


def ids(count: int) -> list[str]:
    return [f"node-{i:03d}" for i in range(count)]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], int, dict[str, tuple[str, ...]]]:
    count = draw(st.integers(min_value=2, max_value=60))
    valid = [*range(2, count - 1, 2), count - 1]
    degree = draw(st.sampled_from(valid))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    nodes = ids(count)
    return nodes, degree, communication_graph(nodes, degree=degree, rng=rng)


@settings(max_examples=80, deadline=None)
@given(case=graphs())
def test_the_graph_is_symmetric_regular_and_loop_free(
    case: tuple[list[str], int, dict[str, tuple[str, ...]]],
) -> None:
    nodes, degree, graph = case
    assert sorted(graph) == nodes
    for node, peers in graph.items():
        assert len(peers) == degree
        assert len(set(peers)) == degree
        assert node not in peers
        assert list(peers) == sorted(peers)
        assert set(peers) <= set(nodes)
        for peer in peers:
            assert node in graph[peer]


@pytest.mark.parametrize("count", [2, 3, 4, 7, 12])
def test_degree_n_minus_one_is_the_complete_graph(count: int) -> None:
    nodes = ids(count)
    graph = communication_graph(nodes, degree=count - 1, rng=np.random.default_rng(0))
    assert graph == {node: tuple(p for p in nodes if p != node) for node in nodes}


def test_a_sparse_graph_is_a_ring_of_the_permuted_nodes() -> None:
    nodes = ids(9)
    graph = communication_graph(nodes, degree=2, rng=np.random.default_rng(3))
    # Degree 2: one cycle through all nine nodes.
    seen, previous, current = [nodes[0]], None, nodes[0]
    while True:
        following = next(p for p in graph[current] if p != previous)
        if following == nodes[0]:
            break
        seen.append(following)
        previous, current = current, following
    assert sorted(seen) == nodes


def test_the_permutation_follows_the_generator() -> None:
    nodes = ids(20)
    first = communication_graph(nodes, degree=4, rng=np.random.default_rng(7))
    again = communication_graph(list(reversed(nodes)), degree=4, rng=np.random.default_rng(7))
    assert first == again  # the ids' order does not matter, only the generator's
    others = [
        communication_graph(nodes, degree=4, rng=np.random.default_rng(seed)) for seed in range(5)
    ]
    assert any(other != first for other in others)


@pytest.mark.parametrize(
    ("count", "degree"),
    [(6, 0), (6, 1), (6, 3), (6, 6), (6, 7), (6, -2), (5, 5), (5, 3), (2, 0), (2, 2)],
)
def test_invalid_degrees_are_refused(count: int, degree: int) -> None:
    with pytest.raises(ConfigError, match="'degree' parameter of communication_graph"):
        communication_graph(ids(count), degree=degree, rng=np.random.default_rng(0))


def test_repeated_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="must not repeat ids"):
        communication_graph(["a", "b", "a", "c"], degree=2, rng=np.random.default_rng(0))


# choose_neighbourhood --------------------------------------------------------------------------


@functools.cache
def tails(trials: int, probability: float) -> tuple[Fraction, ...]:
    """``P[Binomial(trials, p) >= j]`` for ``j = 0 .. trials + 1``, exactly in rationals."""
    p = Fraction(probability)
    pmf = [math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(trials + 1)]
    out = [Fraction(0)] * (trials + 2)
    for j in range(trials, -1, -1):
        out[j] = out[j + 1] + pmf[j]
    return tuple(out)


def meets_conditions(nodes: int, degree: int, threshold: int, delta: float, gamma: float) -> bool:
    """The module's three conditions, computed independently of it."""
    if not (degree + 1) / 2 < threshold <= degree + 1:
        return False
    security = nodes * tails(degree, gamma)[threshold] <= Fraction(2) ** -40
    # Fewer than t of the k neighbours survive: more than k - t of them drop out.
    correctness = nodes * tails(degree, delta)[degree - threshold + 1] <= Fraction(2) ** -20
    return security and correctness


def some_threshold_works(nodes: int, degree: int, delta: float, gamma: float) -> bool:
    # Security only improves and correctness only worsens as t grows: the smallest t that is a
    # majority and secure is the one to check.
    corrupt = tails(degree, gamma)
    secure = [
        t
        for t in range((degree + 1) // 2 + 1, degree + 2)
        if nodes * corrupt[t] <= Fraction(2) ** -40
    ]
    return bool(secure) and meets_conditions(nodes, degree, secure[0], delta, gamma)


rates = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 0.3])


@settings(max_examples=40, deadline=None)
@given(nodes=st.integers(2, 150), delta=rates, gamma=rates)
def test_the_neighbourhood_meets_its_conditions_with_the_smallest_degree(
    nodes: int, delta: float, gamma: float
) -> None:
    chosen = choose_neighbourhood(nodes, dropout_rate=delta, corruption_rate=gamma)
    assert chosen.nodes == nodes
    k, t = chosen.degree, chosen.threshold
    assert 2 * t > k + 1, "the threshold must be a majority of the k + 1 holders"
    assert t <= k + 1
    assert chosen.holders == k + 1
    assert chosen.tolerated_dropouts == k + 1 - t
    if chosen.is_complete:
        assert k == nodes - 1
        assert t == max(nodes // 2 + 1, math.floor(gamma * nodes) + 1)
    else:
        assert k % 2 == 0 and 2 <= k < nodes - 1
        assert meets_conditions(nodes, k, t, delta, gamma)
        # The smallest such t for this k (the most dropouts tolerated).
        assert not meets_conditions(nodes, k, t - 1, delta, gamma)
    # No smaller even degree would do with any threshold.
    for smaller in range(2, min(k, nodes - 1), 2):
        assert not some_threshold_works(nodes, smaller, delta, gamma)


def test_the_degree_grows_slowly() -> None:
    degrees = [choose_neighbourhood(n).degree for n in (100, 1_000, 10_000, 100_000)]
    assert degrees == sorted(degrees)
    assert degrees[2] < 80
    assert degrees[3] < 80
    assert choose_neighbourhood(10_000).threshold > (degrees[2] + 1) / 2


@pytest.mark.parametrize("nodes", [2, 3, 4, 5, 8, 12])
def test_small_cohorts_get_the_complete_graph(nodes: int) -> None:
    chosen = choose_neighbourhood(nodes)
    assert chosen == Neighbourhood(nodes=nodes, degree=nodes - 1, threshold=nodes // 2 + 1)
    assert chosen.is_complete


def test_the_docstring_example() -> None:
    assert choose_neighbourhood(3) == Neighbourhood(nodes=3, degree=2, threshold=2)


def test_no_dropouts_or_corruption_give_a_ring() -> None:
    chosen = choose_neighbourhood(50, dropout_rate=0.0, corruption_rate=0.0)
    assert chosen == Neighbourhood(nodes=50, degree=2, threshold=2)


def test_many_colluders_raise_the_complete_graphs_threshold() -> None:
    chosen = choose_neighbourhood(10, corruption_rate=0.75)
    assert chosen.is_complete
    assert chosen.threshold == 8  # more than the 7 colluders


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"nodes": 1}, "'nodes' parameter of choose_neighbourhood"),
        ({"nodes": 0}, "'nodes' parameter"),
        ({"nodes": True}, "'nodes' parameter"),
        ({"nodes": 10.0}, "'nodes' parameter"),
        ({"nodes": 10, "dropout_rate": 1.0}, "'dropout_rate' parameter"),
        ({"nodes": 10, "dropout_rate": -0.1}, "'dropout_rate' parameter"),
        ({"nodes": 10, "dropout_rate": True}, "'dropout_rate' parameter"),
        ({"nodes": 10, "dropout_rate": float("nan")}, "'dropout_rate' parameter"),
        ({"nodes": 10, "corruption_rate": 1.5}, "'corruption_rate' parameter"),
        ({"nodes": 10, "corruption_rate": "0.1"}, "'corruption_rate' parameter"),
        ({"nodes": 10, "security_bits": 0}, "'security_bits' parameter"),
        ({"nodes": 10, "security_bits": 129}, "'security_bits' parameter"),
        ({"nodes": 10, "correctness_bits": 0}, "'correctness_bits' parameter"),
        ({"nodes": 10, "correctness_bits": 20.0}, "'correctness_bits' parameter"),
        ({"nodes": 10, "correctness_bits": False}, "'correctness_bits' parameter"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, object], match: str) -> None:
    nodes = arguments.pop("nodes")
    with pytest.raises(ConfigError, match=match):
        choose_neighbourhood(nodes, **arguments)  # type: ignore[arg-type]
