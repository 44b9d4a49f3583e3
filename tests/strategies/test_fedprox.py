"""FedProx: FedAvg's aggregation plus ``proximal_mu`` in every train instruction."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Strategy
from sovereign_ai.errors import CheckpointError, ConfigError
from sovereign_ai.strategies import FedAvg, FedProx

NODES = [f"node-{i}" for i in range(8)]


def test_every_train_instruction_carries_proximal_mu() -> None:
    prox = FedProx(proximal_mu=0.5, fraction_train=0.5)
    instructions = prox.configure_train(
        round_number=1, parameters=Parameters({}), nodes=NODES, rng=np.random.default_rng(3)
    )
    reference = FedAvg(fraction_train=0.5).configure_train(
        round_number=1, parameters=Parameters({}), nodes=NODES, rng=np.random.default_rng(3)
    )
    assert [i.node_id for i in instructions] == [i.node_id for i in reference]
    assert [dict(i.config) for i in instructions] == [{"proximal_mu": 0.5}] * 4


def test_evaluation_needs_no_proximal_term() -> None:
    instructions = FedProx(proximal_mu=0.5).configure_evaluate(
        round_number=1, parameters=Parameters({}), nodes=NODES, rng=np.random.default_rng(0)
    )
    assert len(instructions) == len(NODES)
    assert all(dict(i.config) == {} for i in instructions)


def test_aggregates_exactly_like_fedavg(results, params) -> None:
    batch = results([[1.0, -2.0], [0.5, 4.0], [3.0, 0.0]], [5, 1, 2])
    glob = params([0.1, 0.2])
    got = FedProx().aggregate_train(round_number=1, parameters=glob, results=batch)
    expected = FedAvg().aggregate_train(round_number=1, parameters=glob, results=batch)
    np.testing.assert_array_equal(got["w"], expected["w"])


def test_is_a_strategy_with_fedavg_settings() -> None:
    prox = FedProx(proximal_mu=0.0, min_train_nodes=3, min_evaluate_nodes=2, fraction_train=0.5)
    assert isinstance(prox, Strategy)
    assert (prox.min_train_nodes, prox.min_evaluate_nodes, prox.fraction_train) == (3, 2, 0.5)
    assert repr(prox) == (
        "FedProx(proximal_mu=0.0, fraction_train=0.5, fraction_evaluate=1.0, "
        "min_train_nodes=3, min_evaluate_nodes=2)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proximal_mu": -0.1}, "The 'proximal_mu' parameter of FedProx must be a finite number"),
        ({"proximal_mu": float("inf")}, "'proximal_mu' parameter of FedProx"),
        ({"fraction_train": 0.0}, "The 'fraction_train' parameter of FedProx"),
    ],
)
def test_bad_options_name_fedprox(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        FedProx(**options)


def test_state_is_empty() -> None:
    prox = FedProx()
    assert prox.state_dict() == {}
    prox.load_state_dict({})
    with pytest.raises(CheckpointError, match="FedProx keeps no state"):
        prox.load_state_dict({"momentum": np.zeros(1, np.float32)})
