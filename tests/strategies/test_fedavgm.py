"""FedAvgM: server momentum by hand, its reduction to FedAvg, and its checkpointed state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.errors import CheckpointError, ConfigError, FederationError
from sovereign_ai.strategies import FedAvg, FedAvgM

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


def test_two_hand_computed_rounds(results, params) -> None:
    # eta = 0.5, beta = 0.5, mean update [2] both rounds:
    # round 1: v = 0.5 * 0 + 2 = 2, w = 0 + 0.5 * 2 = 1
    # round 2: v = 0.5 * 2 + 2 = 3, w = 1 + 0.5 * 3 = 2.5
    strategy = FedAvgM(server_learning_rate=0.5, server_momentum=0.5)
    first = strategy.aggregate_train(
        round_number=1, parameters=params([0.0]), results=results([[1.0], [3.0]])
    )
    assert first["w"].tolist() == [1.0]
    np.testing.assert_array_equal(strategy.state_dict()["momentum"], [2.0])
    second = strategy.aggregate_train(
        round_number=2, parameters=first, results=results([[2.0], [2.0]])
    )
    assert second["w"].tolist() == [2.5]
    np.testing.assert_array_equal(strategy.state_dict()["momentum"], [3.0])


@settings(max_examples=50, deadline=None)
@given(data=st.data(), count=st.integers(min_value=2, max_value=6))
def test_without_momentum_and_unit_rate_it_is_fedavg(results, params, data, count) -> None:
    updates = [data.draw(hnp.arrays(np.float32, 3, elements=finite)) for _ in range(count)]
    examples = data.draw(st.lists(st.integers(1, 1000), min_size=count, max_size=count))
    glob = params(data.draw(hnp.arrays(np.float32, 3, elements=finite)))
    batch = results(updates, examples)
    momentum = FedAvgM(server_learning_rate=1.0, server_momentum=0.0)
    plain = FedAvg()
    for round_number in (1, 2):
        expected = plain.aggregate_train(round_number=round_number, parameters=glob, results=batch)
        got = momentum.aggregate_train(round_number=round_number, parameters=glob, results=batch)
        np.testing.assert_array_equal(got["w"], expected["w"])


def test_state_is_empty_when_fresh_and_restores_exactly(results, params) -> None:
    original = FedAvgM()
    assert original.state_dict() == {}
    after_one = original.aggregate_train(
        round_number=1, parameters=params([0.0, 0.0]), results=results([[1.0, 2.0], [3.0, 0.5]])
    )
    state = original.state_dict()
    assert set(state) == {"momentum"}
    assert state["momentum"].dtype == np.float32 and state["momentum"].shape == (2,)
    resumed = FedAvgM()
    resumed.load_state_dict(state)
    batch = results([[0.5, -1.0], [0.25, 1.0]])
    left = original.aggregate_train(round_number=2, parameters=after_one, results=batch)
    right = resumed.aggregate_train(round_number=2, parameters=after_one, results=batch)
    np.testing.assert_array_equal(left["w"], right["w"])
    resumed.load_state_dict({})
    assert resumed.state_dict() == {}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"velocity": np.zeros(2, np.float32)}, "unexpected"),
        ({"momentum": np.zeros((2, 2), np.float32)}, "1-D"),
        ({"momentum": np.array([np.nan], np.float32)}, "finite"),
        ({"momentum": np.array([1, 2])}, "float array"),
    ],
)
def test_bad_state_is_refused(state, message) -> None:
    with pytest.raises(CheckpointError, match=message):
        FedAvgM().load_state_dict(state)


def test_momentum_of_another_model_size_is_refused(results, params) -> None:
    strategy = FedAvgM()
    strategy.load_state_dict({"momentum": np.zeros(5, np.float32)})
    with pytest.raises(FederationError, match="holds 5 scalars but the model has 1"):
        strategy.aggregate_train(
            round_number=1, parameters=params([0.0]), results=results([[1.0], [1.0]])
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"server_momentum": 1.0}, "'server_momentum' parameter of FedAvgM must be a number in"),
        ({"server_momentum": -0.1}, "'server_momentum'"),
        ({"server_learning_rate": 0.0}, "'server_learning_rate' parameter of FedAvgM"),
    ],
)
def test_bad_options_are_refused(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        FedAvgM(**options)
