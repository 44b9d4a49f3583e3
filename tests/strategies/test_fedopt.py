"""FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021): hand-computed steps, a reference
implementation over several rounds, and their checkpointed moments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.errors import CheckpointError, ConfigError
from sovereign_ai.strategies import FedAdagrad, FedAdam, FedYogi, create_strategy

finite = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, width=32)


def _step(strategy, results, params, updates, glob=(0.0, 0.0)):
    return strategy.aggregate_train(
        round_number=1, parameters=params(list(glob)), results=results(updates)
    )


def test_fedadam_hand_computed_step(results, params) -> None:
    # mean update d = [1, 4]; m = 0.5 * 0 + 0.5 * d = [0.5, 2]
    # v = 0.8 * tau^2 + 0.2 * d^2 = 0.8 + 0.2 * [1, 16] = [1, 4]
    # step = 1 * m / (sqrt(v) + 1) = [0.5 / 2, 2 / 3]
    strategy = FedAdam(server_learning_rate=1.0, beta_1=0.5, beta_2=0.8, tau=1.0)
    new = _step(strategy, results, params, [[0.0, 4.0], [2.0, 4.0]])
    np.testing.assert_allclose(new["w"], [0.25, 2.0 / 3.0], rtol=1e-6)
    state = strategy.state_dict()
    np.testing.assert_allclose(state["first_moment"], [0.5, 2.0])
    np.testing.assert_allclose(state["second_moment"], [1.0, 4.0])
    assert state["step"].tolist() == [1.0]


def test_fedyogi_hand_computed_step(results, params) -> None:
    # d = [1, 4], d^2 = [1, 16], v_prev = tau^2 = 1; sign(v_prev - d^2) = [0, -1]
    # v = 1 - 0.5 * d^2 * sign = [1, 1 + 8] = [1, 9]; m = [0.5, 2]
    # step = m / (sqrt(v) + 1) = [0.5 / 2, 2 / 4]
    strategy = FedYogi(server_learning_rate=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)
    new = _step(strategy, results, params, [[1.0, 4.0], [1.0, 4.0]])
    np.testing.assert_allclose(new["w"], [0.25, 0.5], rtol=1e-6)
    np.testing.assert_allclose(strategy.state_dict()["second_moment"], [1.0, 9.0])


def test_fedadagrad_hand_computed_step(results, params) -> None:
    # d = [0, 2]; v = tau^2 + d^2 = 2.25 + [0, 4] = [2.25, 6.25]; m = 0.5 * d = [0, 1]
    # step = m / (sqrt(v) + 1.5) = [0, 1 / 4]; global [1, 1] -> [1, 1.25]
    strategy = FedAdagrad(server_learning_rate=1.0, beta_1=0.5, tau=1.5)
    new = _step(strategy, results, params, [[0.0, 2.0], [0.0, 2.0]], glob=(1.0, 1.0))
    np.testing.assert_allclose(new["w"], [1.0, 1.25], rtol=1e-6)


def _reference(kind: str, deltas: list[np.ndarray], *, eta, beta_1, beta_2, tau) -> np.ndarray:
    """Algorithm 2 of Reddi et al., written out directly."""
    w = np.zeros_like(deltas[0], dtype=np.float64)
    m = np.zeros_like(w)
    v = np.full_like(w, tau**2)
    for d in deltas:
        m = beta_1 * m + (1 - beta_1) * d
        if kind == "adam":
            v = beta_2 * v + (1 - beta_2) * d**2
        elif kind == "yogi":
            v = v - (1 - beta_2) * d**2 * np.sign(v - d**2)
        else:
            v = v + d**2
        w = w + eta * m / (np.sqrt(v) + tau)
    return w


@pytest.mark.parametrize("kind", ["adam", "yogi", "adagrad"])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_matches_the_paper_over_several_rounds(results, params, kind, data) -> None:
    deltas = [data.draw(hnp.arrays(np.float32, 3, elements=finite)) for _ in range(4)]
    options = {"server_learning_rate": 0.1, "beta_1": 0.9, "tau": 1e-2}
    strategy = (
        FedAdagrad(**options)
        if kind == "adagrad"
        else create_strategy(f"fed{kind}", beta_2=0.99, **options)
    )
    glob = params(np.zeros(3))
    for round_number, delta in enumerate(deltas, start=1):
        glob = strategy.aggregate_train(
            round_number=round_number, parameters=glob, results=results([delta, delta])
        )
    expected = _reference(
        kind, [d.astype(np.float64) for d in deltas], eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-2
    )
    np.testing.assert_allclose(glob["w"], expected, rtol=1e-4, atol=1e-5)
    assert strategy.state_dict()["step"].tolist() == [4.0]
    assert (strategy.state_dict()["second_moment"] > 0).all()


@pytest.mark.parametrize("cls", [FedAdam, FedYogi, FedAdagrad])
def test_state_round_trip_and_reset(results, params, cls) -> None:
    original = cls()
    assert original.state_dict() == {}
    glob = original.aggregate_train(
        round_number=1, parameters=params([0.0, 0.0]), results=results([[1.0, -1.0], [2.0, 0.0]])
    )
    resumed = cls()
    resumed.load_state_dict(original.state_dict())
    batch = results([[0.5, 0.5], [-1.0, 3.0]])
    left = original.aggregate_train(round_number=2, parameters=glob, results=batch)
    right = resumed.aggregate_train(round_number=2, parameters=glob, results=batch)
    np.testing.assert_array_equal(left["w"], right["w"])
    assert resumed.state_dict()["step"].tolist() == [2.0]
    resumed.load_state_dict({})
    assert resumed.state_dict() == {}


def _state(**overrides: np.ndarray) -> dict[str, np.ndarray]:
    state = {
        "first_moment": np.zeros(2, np.float32),
        "second_moment": np.ones(2, np.float32),
        "step": np.array([3.0], np.float32),
    }
    state.update(overrides)
    return state


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"first_moment": np.zeros(2, np.float32)}, "missing"),
        ({**_state(), "extra": np.zeros(1, np.float32)}, "unexpected"),
        (_state(second_moment=np.ones(3, np.float32)), "one shape"),
        (_state(second_moment=-np.ones(2, np.float32)), ">= 0"),
        (_state(step=np.array([1.5], np.float32)), "whole number"),
        (_state(step=np.array([-1.0], np.float32)), "whole number"),
    ],
)
def test_bad_state_is_refused(state, message) -> None:
    with pytest.raises(CheckpointError, match=message):
        FedAdam().load_state_dict(state)


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (FedAdam, {"beta_1": 1.0}, "The 'beta_1' parameter of FedAdam must be a number in [0, 1)"),
        (FedYogi, {"beta_2": -0.5}, "The 'beta_2' parameter of FedYogi"),
        (FedAdagrad, {"tau": 0.0}, "The 'tau' parameter of FedAdagrad must be a finite number > 0"),
        (
            FedAdam,
            {"server_learning_rate": -1.0},
            "The 'server_learning_rate' parameter of FedAdam",
        ),
    ],
)
def test_bad_options_are_refused(cls, options, message) -> None:
    with pytest.raises(ConfigError) as caught:
        cls(**options)
    assert str(caught.value).startswith(message)


def test_fedadagrad_has_no_beta_2() -> None:
    with pytest.raises(ConfigError, match="'beta_2'"):
        create_strategy("fedadagrad", beta_2=0.9)
