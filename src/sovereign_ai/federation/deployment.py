"""Deployment: the same Coordinator and Node as simulation, in separate processes.

A deployed coordinator holds no rows, so the job must state the model's input width and number of
classes (``[model] num_features`` and ``num_classes``). A deployed node loads its own file, keeps a
share of its rows for local evaluation, and answers tasks over whichever transport carries them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sovereign_ai.core import Transport
from sovereign_ai.data import Dataset
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.assembly import build_coordinator, open_store
from sovereign_ai.federation.coordinator import CentralEvaluator
from sovereign_ai.federation.job import JobSpec
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.rounds import FederationHistory, RoundObserver

__all__ = ["deployed_dimensions", "node_from_dataset", "run_coordinator"]


def deployed_dimensions(spec: JobSpec) -> tuple[int, int]:
    """``(num_features, num_classes)`` of a job run without a dataset at the coordinator.

    Raises
    ------
    ConfigError
        If the job does not state them.
    """
    if spec.model.num_features is None or spec.model.num_classes is None:
        raise ConfigError(
            "A deployed coordinator holds no data, so the job must state the model's input width "
            "and classes: add 'num_features = <columns>' and 'num_classes = <labels>' to [model]."
        )
    return spec.model.num_features, spec.model.num_classes


def node_from_dataset(
    node_id: str, dataset: Dataset, *, local_test_fraction: float = 0.2, seed: int = 0
) -> Node:
    """A node holding ``dataset``, with ``local_test_fraction`` of its rows kept for evaluation.

    Parameters
    ----------
    node_id
        The node's name (its certificate's name in deployment).
    dataset
        The node's own rows.
    local_test_fraction
        Share of rows held back for evaluating the global model locally (0 for none).
    seed
        Seeds the split, so a restarted node holds back the same rows.
    """
    if not 0.0 <= local_test_fraction < 1.0:
        raise ConfigError(
            "The 'local_test_fraction' parameter of node_from_dataset must be in [0, 1); "
            f"got {local_test_fraction!r} instead."
        )
    order = np.random.default_rng(seed).permutation(dataset.num_examples)
    n_test = int(len(order) * local_test_fraction) if len(order) > 4 else 0
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    data = LocalData(
        train_features=dataset.features[train_rows],
        train_labels=dataset.labels[train_rows],
        test_features=dataset.features[test_rows],
        test_labels=dataset.labels[test_rows],
    )
    return Node(node_id, data=data)


def run_coordinator(
    spec: JobSpec,
    *,
    transport: Transport,
    state_dir: str | Path,
    resume: bool = False,
    observer: RoundObserver | None = None,
    central_evaluator: CentralEvaluator | None = None,
    max_node_wait_s: float | None = None,
) -> FederationHistory:
    """Run ``spec`` over a deployment transport with durable state in ``state_dir``.

    The caller owns the transport (and closes it); nodes connect to it on their own. Each round
    waits for the strategy's minimum number of nodes for up to ``max_node_wait_s`` (``None``:
    as long as it takes, since sites come online when their operators start them).
    """
    num_features, num_classes = deployed_dimensions(spec)
    with open_store(spec, state_dir) as store:
        coordinator = build_coordinator(
            spec,
            transport=transport,
            num_features=num_features,
            num_classes=num_classes,
            store=store,
            central_evaluator=central_evaluator,
            observer=observer,
            max_node_wait_s=max_node_wait_s,
        )
        return coordinator.run(resume=resume)
