"""FedMedian: coordinate-wise median by hand, order invariance and robustness."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.strategies import FedMedian

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


def test_hand_computed_odd_and_even_cohorts(results, params) -> None:
    # coordinate 0: median(1, 2, 100) = 2; coordinate 1: median(10, -5, 0) = 0
    odd = FedMedian().aggregate_train(
        round_number=1,
        parameters=params([0.5, 0.5]),
        results=results([[1.0, 10.0], [2.0, -5.0], [100.0, 0.0]]),
    )
    assert odd["w"].tolist() == [2.5, 0.5]
    # even: median(1, 3, 10, 20) = (3 + 10) / 2 = 6.5
    even = FedMedian().aggregate_train(
        round_number=1, parameters=params([0.0]), results=results([[1.0], [3.0], [10.0], [20.0]])
    )
    assert even["w"].tolist() == [6.5]


def test_example_counts_do_not_weight_the_median(results, params) -> None:
    updates = [[1.0], [2.0], [100.0]]
    light = FedMedian().aggregate_train(
        round_number=1, parameters=params([0.0]), results=results(updates, [1, 1, 1])
    )
    heavy = FedMedian().aggregate_train(
        round_number=1, parameters=params([0.0]), results=results(updates, [1, 1, 10**6])
    )
    assert light["w"].tolist() == heavy["w"].tolist() == [2.0]


@settings(max_examples=50, deadline=None)
@given(data=st.data(), count=st.integers(min_value=2, max_value=9))
def test_median_is_invariant_to_result_order(results, params, data, count) -> None:
    updates = [data.draw(hnp.arrays(np.float32, 4, elements=finite)) for _ in range(count)]
    order = data.draw(st.permutations(range(count)))
    batch = results(updates)
    glob = params(np.zeros(4))
    ordered = FedMedian().aggregate_train(round_number=1, parameters=glob, results=batch)
    shuffled = FedMedian().aggregate_train(
        round_number=1, parameters=glob, results=[batch[i] for i in order]
    )
    np.testing.assert_array_equal(ordered["w"], shuffled["w"])
    np.testing.assert_allclose(ordered["w"], np.median(np.stack(updates), axis=0), rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    honest=st.integers(min_value=3, max_value=7),
    outlier=st.floats(min_value=1e4, max_value=1e6),
)
def test_a_minority_of_outliers_cannot_leave_the_honest_range(
    results, params, data, honest, outlier
) -> None:
    bounded = st.floats(min_value=-1.0, max_value=1.0, width=32)
    updates = [data.draw(hnp.arrays(np.float32, 3, elements=bounded)) for _ in range(honest)]
    attackers = [np.full(3, outlier)] * ((honest - 1) // 2)
    new = FedMedian().aggregate_train(
        round_number=1, parameters=params(np.zeros(3)), results=results(updates + attackers)
    )
    assert np.all(np.abs(new["w"]) <= 1.0)
