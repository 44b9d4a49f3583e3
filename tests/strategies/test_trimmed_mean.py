"""FedTrimmedAvg: trimming by hand, beta = 0 as the plain mean, and its options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.errors import ConfigError
from sovereign_ai.strategies import FedTrimmedAvg

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


def test_hand_computed_trim_per_coordinate(results, params) -> None:
    # beta = 0.2, n = 5 -> drop 1 value at each end of every coordinate:
    # coordinate 0: [1, 2, 3, 4, 100] -> mean(2, 3, 4) = 3
    # coordinate 1: [-100, 0, 1, 2, 3] -> mean(0, 1, 2) = 1
    new = FedTrimmedAvg(beta=0.2).aggregate_train(
        round_number=1,
        parameters=params([0.0, 0.0]),
        results=results([[1, 0], [2, 1], [3, -100], [4, 3], [100, 2]]),
    )
    assert new["w"].tolist() == [3.0, 1.0]


def test_trim_count_survives_floating_point(results, params) -> None:
    # 0.29 * 100 is 28.999999999999996: 29 values are still trimmed from each end,
    # leaving the 42 middle values 29..70 of 0..99, whose mean is 49.5
    new = FedTrimmedAvg(beta=0.29).aggregate_train(
        round_number=1, parameters=params([0.0]), results=results([[v] for v in range(100)])
    )
    assert new["w"].tolist() == [49.5]


@settings(max_examples=50, deadline=None)
@given(data=st.data(), count=st.integers(min_value=2, max_value=8))
def test_beta_zero_is_the_unweighted_mean(results, params, data, count) -> None:
    updates = [data.draw(hnp.arrays(np.float32, 3, elements=finite)) for _ in range(count)]
    examples = data.draw(st.lists(st.integers(1, 1000), min_size=count, max_size=count))
    new = FedTrimmedAvg(beta=0.0).aggregate_train(
        round_number=1, parameters=params(np.zeros(3)), results=results(updates, examples)
    )
    expected = np.stack(updates).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(new["w"], expected, rtol=1e-5, atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    beta=st.floats(min_value=0.0, max_value=0.49),
    count=st.integers(min_value=2, max_value=12),
)
def test_result_is_invariant_to_order_and_within_range(results, params, data, beta, count) -> None:
    updates = [data.draw(hnp.arrays(np.float32, 2, elements=finite)) for _ in range(count)]
    order = data.draw(st.permutations(range(count)))
    batch = results(updates)
    glob = params(np.zeros(2))
    ordered = FedTrimmedAvg(beta=beta).aggregate_train(
        round_number=1, parameters=glob, results=batch
    )
    shuffled = FedTrimmedAvg(beta=beta).aggregate_train(
        round_number=1, parameters=glob, results=[batch[i] for i in order]
    )
    np.testing.assert_array_equal(ordered["w"], shuffled["w"])
    stacked = np.stack(updates)  # (n, d)
    assert np.all(ordered["w"] >= stacked.min(axis=0)) and np.all(
        ordered["w"] <= stacked.max(axis=0)
    )


@pytest.mark.parametrize("beta", [0.5, -0.1, 1.0])
def test_beta_outside_zero_to_half_is_refused(beta: float) -> None:
    with pytest.raises(ConfigError) as caught:
        FedTrimmedAvg(beta=beta)
    assert str(caught.value) == (
        f"The 'beta' parameter of FedTrimmedAvg must be a number in [0, 0.5); got {beta!r} instead."
    )
