"""Bulyan (El Mhamdi et al. 2018): one aggregation by hand, quorum and robustness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.errors import ConfigError, InsufficientNodesError
from sovereign_ai.strategies import Bulyan

# f = 1, n = 7: theta = n - 2f = 5 updates are selected by repeated Krum, each step scoring the
# remaining r updates with max(1, r - f - 2) neighbours (squared distances, ties to lower ids):
#   r = 7, k = 4: scores 0:30 1:15 2:10 3:10 4:15 5:30 1000:huge -> select 2
#   r = 6, k = 3: scores 0:26 1:14 3:9 4:11 5:21 -> select 3
#   r = 5, k = 2: scores 0:17 1:10 4:10 5:17 -> select 1
#   r = 4, k = 1: scores 0:16 4:1 5:1 -> select 4
#   r = 3, k = 1: scores 0:25 5:25 -> select 0
# selected {0, 1, 2, 3, 4}: median 2; the beta = theta - 2f = 3 values nearest it are 1, 2, 3,
# whose mean is 2. The outlier 1000 and the far-ish 5 are both out.
UPDATES = [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [1000.0]]


def test_hand_computed_aggregate(results, params) -> None:
    batch = results(UPDATES)
    for order in (batch, batch[::-1]):
        new = Bulyan(num_malicious=1).aggregate_train(
            round_number=1, parameters=params([0.5]), results=order
        )
        assert new["w"].tolist() == [2.5]


def test_without_malicious_nodes_it_is_the_mean(results, params) -> None:
    # f = 0, n = 3: every update is selected and all 3 are kept: mean(0, 3, 9) = 4
    new = Bulyan(num_malicious=0).aggregate_train(
        round_number=1, parameters=params([0.0]), results=results([[0.0], [3.0], [9.0]])
    )
    assert new["w"].tolist() == [4.0]


def test_quorum_is_4f_plus_3(results, params) -> None:
    assert Bulyan(num_malicious=2).min_train_nodes == 11
    with pytest.raises(InsufficientNodesError) as caught:
        Bulyan(num_malicious=1).aggregate_train(
            round_number=1, parameters=params([0.0]), results=results(UPDATES[:6])
        )
    assert caught.value.minimum == 7
    assert "4 * 1 + 3 = 7" in str(caught.value)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="The 'num_malicious' parameter of Bulyan"):
        Bulyan(num_malicious=-1)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    num_malicious=st.integers(min_value=0, max_value=2),
    distance=st.floats(min_value=100.0, max_value=1e4),
)
def test_far_outliers_do_not_leave_the_honest_range(
    results, params, data, num_malicious, distance
) -> None:
    bounded = st.floats(min_value=-1.0, max_value=1.0, width=32)
    honest = [
        data.draw(hnp.arrays(np.float32, 3, elements=bounded)) for _ in range(3 * num_malicious + 3)
    ]  # n = 4f + 3
    outliers = [np.full(3, distance * (-1) ** i) for i in range(num_malicious)]
    order = data.draw(st.permutations(range(len(honest) + num_malicious)))
    updates = honest + outliers
    new = Bulyan(num_malicious=num_malicious).aggregate_train(
        round_number=1, parameters=params(np.zeros(3)), results=results([updates[i] for i in order])
    )
    stacked = np.stack(honest)  # (n - f, d)
    assert np.all(new["w"] >= stacked.min(axis=0) - 1e-6)
    assert np.all(new["w"] <= stacked.max(axis=0) + 1e-6)
