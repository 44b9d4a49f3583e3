"""Krum and MultiKrum (Blanchard et al. 2017): scores by hand, quorum, robustness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.errors import ConfigError, InsufficientNodesError
from sovereign_ai.strategies import Krum, MultiKrum
from sovereign_ai.strategies._krum_scores import krum_scores, pairwise_squared_distances

# f = 1, n = 5, each score sums the n - f - 2 = 2 smallest squared distances to the others:
#   update   distances to the others     score
#   0        1, 4, 9, 10000              1 + 4 = 5
#   1        1, 1, 4, 9801               1 + 1 = 2
#   2        4, 1, 1, 9604               1 + 1 = 2
#   3        9, 4, 1, 9409               1 + 4 = 5
#   100      10000, 9801, 9604, 9409     9409 + 9604 = 19013
UPDATES = [[0.0], [1.0], [2.0], [3.0], [100.0]]


def test_scores_by_hand() -> None:
    distances = pairwise_squared_distances(np.array(UPDATES))
    assert distances[4].tolist() == [10000.0, 9801.0, 9604.0, 9409.0, 0.0]
    np.testing.assert_array_equal(distances, distances.T)
    assert krum_scores(distances, num_closest=2).tolist() == [5.0, 2.0, 2.0, 5.0, 19013.0]


def test_krum_picks_the_best_score_and_breaks_ties_by_node_id(results, params) -> None:
    # updates 1 and 2 tie at score 2: node-1 (value 1) wins, whatever the arrival order
    batch = results(UPDATES)
    for order in (batch, batch[::-1]):
        new = Krum(num_malicious=1).aggregate_train(
            round_number=1, parameters=params([10.0]), results=order
        )
        assert new["w"].tolist() == [11.0]


def test_multikrum_averages_the_best_scores(results, params) -> None:
    # m = 2: updates 1 and 2 -> 1.5; default m = n - f = 4: 0, 1, 2, 3 -> 1.5 (the outlier is out)
    # m = 3: 1, 2 and the first of the tie at 5 (node-0, value 0) -> 1.0
    glob = params([0.0])
    for selected, expected in ((2, 1.5), (None, 1.5), (3, 1.0)):
        new = MultiKrum(num_malicious=1, num_selected=selected).aggregate_train(
            round_number=1, parameters=glob, results=results(UPDATES)
        )
        assert new["w"].tolist() == [expected]


def test_example_counts_are_ignored(results, params) -> None:
    light = MultiKrum(num_selected=2).aggregate_train(
        round_number=1, parameters=params([0.0]), results=results(UPDATES, [1, 1, 1000, 1, 1])
    )
    assert light["w"].tolist() == [1.5]


def test_quorum_raises_min_train_nodes_and_explains_itself(results, params) -> None:
    assert Krum(num_malicious=2).min_train_nodes == 7
    assert Krum(num_malicious=0, min_train_nodes=4).min_train_nodes == 4
    assert MultiKrum(num_malicious=1, num_selected=9).min_train_nodes == 9
    with pytest.raises(InsufficientNodesError) as caught:
        Krum(num_malicious=1).aggregate_train(
            round_number=3, parameters=params([0.0]), results=results(UPDATES[:4])
        )
    assert caught.value.minimum == 5
    assert "2 * 1 + 3 = 5" in str(caught.value)
    assert "Blanchard" in str(caught.value)
    with pytest.raises(InsufficientNodesError) as sampled:
        Krum(num_malicious=1).configure_train(
            round_number=1,
            parameters=params([0.0]),
            nodes=list("abcd"),
            rng=np.random.default_rng(),
        )
    assert "2 * 1 + 3 = 5" in str(sampled.value)
    with pytest.raises(InsufficientNodesError) as multi:
        MultiKrum(num_malicious=0, num_selected=6).aggregate_train(
            round_number=1, parameters=params([0.0]), results=results(UPDATES)
        )
    assert "num_selected=6" in str(multi.value)


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (Krum, {"num_malicious": -1}, "The 'num_malicious' parameter of Krum must be an integer"),
        (MultiKrum, {"num_selected": 0}, "The 'num_selected' parameter of MultiKrum"),
        (MultiKrum, {"num_malicious": 1.5}, "The 'num_malicious' parameter of MultiKrum"),
    ],
)
def test_bad_options_are_refused(cls, options, message) -> None:
    with pytest.raises(ConfigError) as caught:
        cls(**options)
    assert str(caught.value).startswith(message)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    num_malicious=st.integers(min_value=0, max_value=3),
    extra_honest=st.integers(min_value=0, max_value=3),
    distance=st.floats(min_value=100.0, max_value=1e4),
)
def test_selects_from_the_honest_cluster_when_outliers_are_far(
    results, params, data, num_malicious, extra_honest, distance
) -> None:
    bounded = st.floats(min_value=-1.0, max_value=1.0, width=32)
    honest_count = num_malicious + 3 + extra_honest  # so n = 2f + 3 + extra
    honest = [data.draw(hnp.arrays(np.float32, 3, elements=bounded)) for _ in range(honest_count)]
    direction = data.draw(
        hnp.arrays(np.float64, 3, elements=st.floats(-1.0, 1.0)).filter(
            lambda v: np.linalg.norm(v) > 0.1
        )
    )
    outliers = [
        distance * direction / np.linalg.norm(direction) + data.draw(st.floats(-1.0, 1.0))
        for _ in range(num_malicious)
    ]
    order = data.draw(st.permutations(range(honest_count + num_malicious)))
    updates = honest + outliers
    batch = results([updates[i] for i in order])
    glob = params(np.zeros(3))
    single = Krum(num_malicious=num_malicious).aggregate_train(
        round_number=1, parameters=glob, results=batch
    )
    assert any(np.array_equal(single["w"], h) for h in honest)
    multi = MultiKrum(num_malicious=num_malicious).aggregate_train(
        round_number=1, parameters=glob, results=batch
    )
    assert np.all(np.abs(multi["w"]) <= 1.0 + 1e-6)
