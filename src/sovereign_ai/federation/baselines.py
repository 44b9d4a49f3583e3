"""Baselines a federated run is judged against, on the same held-out test set.

* **centralised** — every node's training rows pooled in one place (what federation avoids);
* **alone** — each node trains only on its own rows (what a site can do without partners).

Both train the job's model with the job's settings for as many epochs as one node trains over the
whole federated run (``rounds * local_epochs``), starting from the same initial parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import Parameters
from sovereign_ai.federation.assembly import initial_parameters
from sovereign_ai.federation.simulation import SimulationSetup
from sovereign_ai.learning import TrainConfig, create_model, evaluate, set_parameters, train

__all__ = ["BaselineScore", "train_alone", "train_centralised"]


@dataclass(frozen=True)
class BaselineScore:
    """Held-out accuracy and loss of one baseline model."""

    name: str
    accuracy: float
    loss: float
    num_train_examples: int


def _scaled(parameters: Parameters, features: npt.NDArray[np.float32]) -> Parameters:
    """Set the model's input scaling from ``features`` (as a single site would)."""
    if "input_mean" not in parameters:
        return parameters
    std = features.std(axis=0, dtype=np.float64)
    tensors = dict(parameters)
    tensors["input_mean"] = features.mean(axis=0, dtype=np.float64).astype(np.float32)
    tensors["input_std"] = np.where(std > 1e-12, std, 1.0).astype(np.float32)
    return Parameters(tensors)


def _fit_and_score(
    setup: SimulationSetup,
    name: str,
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
) -> BaselineScore:
    spec = setup.spec
    model = create_model(
        spec.model.name,
        num_features=setup.num_features,
        num_classes=setup.num_classes,
        seed=spec.job.seed,
        **spec.model.options,
    )
    start = initial_parameters(spec, num_features=setup.num_features, num_classes=setup.num_classes)
    scale = spec.coordinator.standardize_features
    set_parameters(model, _scaled(start, features) if scale else start)
    settings = spec.train.model_dump()
    settings["local_epochs"] = spec.job.rounds * spec.train.local_epochs
    train(model, features, labels, config=TrainConfig(**settings), seed=spec.job.seed)
    report = evaluate(model, setup.test_features, setup.test_labels)
    return BaselineScore(
        name=name, accuracy=report.accuracy, loss=report.loss, num_train_examples=len(labels)
    )


def train_centralised(setup: SimulationSetup) -> BaselineScore:
    """Train on all nodes' training rows pooled together."""
    features = np.concatenate([node.data.train_features for node in setup.nodes])
    labels = np.concatenate([node.data.train_labels for node in setup.nodes])
    return _fit_and_score(setup, "centralised", features, labels)


def train_alone(setup: SimulationSetup) -> list[BaselineScore]:
    """Train one model per node on that node's rows only."""
    return [
        _fit_and_score(setup, node.node_id, node.data.train_features, node.data.train_labels)
        for node in setup.nodes
    ]
