"""Simulation: many nodes on one machine, driven by the same Coordinator and Node as deployment.

:func:`prepare_simulation` turns a job spec's ``[data]`` section into nodes holding disjoint
partitions of a dataset plus a held-out test set the coordinator keeps for central evaluation;
:func:`run_simulation` runs the job over an in-memory (threads) or process transport.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import Transport
from sovereign_ai.data import (
    Dataset,
    PartitionSummary,
    load_builtin,
    load_file,
    partition,
    partition_natural,
    summarize_partition,
    train_test_split,
)
from sovereign_ai.data import builtin_names as builtin_dataset_names
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.assembly import (
    build_coordinator,
    build_strategy,
    open_store,
    test_set_evaluator,
)
from sovereign_ai.federation.coordinator import CentralEvaluator
from sovereign_ai.federation.job import DataSection, JobSpec, SimulationBackend
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.private_node import enable_differential_privacy
from sovereign_ai.federation.rounds import FederationHistory, RoundObserver
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.federation.transports.inmemory import InMemoryTransport
from sovereign_ai.pki.signing import FederationIdentities, ephemeral_federation
from sovereign_ai.privacy import Accounting, PrivacyLedger

__all__ = [
    "SimulationSetup",
    "central_evaluator",
    "factory_input",
    "load_dataset",
    "make_transport",
    "prepare_simulation",
    "run_simulation",
]


@dataclass(frozen=True)
class SimulationSetup:
    """Everything a simulated federation needs, derived deterministically from the job spec."""

    spec: JobSpec
    dataset: Dataset
    nodes: list[Node]
    test_features: npt.NDArray[np.float32]
    test_labels: npt.NDArray[np.int64]
    summary: PartitionSummary
    identities: FederationIdentities | None = None
    ledgers: dict[str, PrivacyLedger] = dataclasses.field(default_factory=dict)
    """Each simulated node's privacy ledger (in memory, in the process that runs the node)."""

    @property
    def num_features(self) -> int:
        """Features per row."""
        return self.dataset.num_features

    @property
    def num_classes(self) -> int:
        """Classes of the label."""
        return self.dataset.num_classes


def load_dataset(section: DataSection) -> Dataset:
    """The dataset a ``[data]`` section names: a bundled one, or a user's CSV/Parquet/NPZ file."""
    if section.dataset in builtin_dataset_names():
        return load_builtin(section.dataset)
    path = Path(section.dataset)
    if not path.suffix:
        raise ConfigError(
            f"The 'data.dataset' key must be a bundled dataset "
            f"({', '.join(builtin_dataset_names())}) or a .csv, .parquet or .npz file; "
            f"got {section.dataset!r}."
        )
    if path.suffix.lower() == ".npz":
        return load_file(path)
    if section.label is None:
        raise ConfigError(
            f"The 'data.label' key must name the label column of {section.dataset!r}; "
            "it is missing. Bundled datasets are: " + ", ".join(builtin_dataset_names()) + "."
        )
    return load_file(path, label=section.label, group=section.group)


def prepare_simulation(
    spec: JobSpec,
    *,
    dataset: Dataset | None = None,
    identities: FederationIdentities | None = None,
) -> SimulationSetup:
    """Split a dataset into a held-out test set and one partition per simulated node.

    Parameters
    ----------
    spec
        The job; its ``[data]`` section must be present.
    dataset
        Use this dataset instead of loading ``spec.data.dataset``.
    identities
        The nodes' federation identities when secure aggregation is on; a throw-away CA and
        certificates are made for them otherwise (simulations have no startup kits).
    """
    if spec.data is None:
        raise ConfigError("Simulation needs a [data] section in the job spec; it is missing.")
    section = spec.data
    data = dataset if dataset is not None else load_dataset(section)
    for key, stated, actual in (
        ("num_features", spec.model.num_features, data.num_features),
        ("num_classes", spec.model.num_classes, data.num_classes),
    ):
        if stated is not None and stated != actual:
            raise ConfigError(
                f"The 'model.{key}' key says {stated} but the dataset {data.name!r} has {actual}; "
                "remove the key (simulation reads it from the data) or correct it."
            )
    pool, held_out = train_test_split(data, test_fraction=section.test_fraction, seed=spec.job.seed)
    if section.partition == "natural":
        if pool.groups is None:
            raise ConfigError(
                "The 'data.partition' key is 'natural' but the dataset has no group column; "
                "set 'data.group' to the column that names each row's site."
            )
        shares = partition_natural(pool.groups)
        parts, names = list(shares.values()), section.node_names or list(shares)
    else:
        parts = partition(
            pool,
            scheme=section.partition,
            num_nodes=section.nodes,
            seed=spec.job.seed,
            alpha=section.alpha,
            shards_per_node=section.shards_per_node,
        )
        names = section.node_names or [f"node-{i:03d}" for i in range(len(parts))]
    if len(names) != len(parts):
        raise ConfigError(
            f"The 'data.node_names' key lists {len(names)} names for {len(parts)} nodes."
        )
    quorum = build_strategy(spec).min_train_nodes
    if quorum > len(parts):
        raise ConfigError(
            f"The strategy {spec.strategy.name!r} needs at least {quorum} nodes per round (its "
            f"'min_train_nodes' or quorum) but the simulation has {len(parts)}; raise "
            "'data.nodes' or lower the strategy's requirement."
        )
    rng = np.random.default_rng([spec.job.seed, 1])
    nodes = []
    for name, indices in zip(names, parts, strict=True):
        order = rng.permutation(indices)
        n_test = int(len(order) * section.local_test_fraction) if len(order) > 4 else 0
        test_rows, train_rows = order[:n_test], order[n_test:]
        local = LocalData(
            train_features=pool.features[train_rows],
            train_labels=pool.labels[train_rows],
            test_features=pool.features[test_rows],
            test_labels=pool.labels[test_rows],
        )
        nodes.append(Node(name, data=local))
    if spec.secure_aggregation.enabled:
        identities = identities or ephemeral_federation(spec.job_id, names)
        for node in nodes:
            enable_secure_aggregation(
                node, signer=identities.signers[node.node_id], verifier=identities.verifier
            )
    ledgers = _private_nodes(spec, nodes) if spec.privacy.enabled else {}
    return SimulationSetup(
        spec=spec,
        dataset=data,
        nodes=nodes,
        test_features=held_out.features,
        test_labels=held_out.labels,
        summary=summarize_partition(pool, parts, node_names=names),
        identities=identities,
        ledgers=ledgers,
    )


SIMULATED_BUDGET = 1e6
"""The ε budget of a simulated data owner: large, so a simulation reports what it spends."""


def _private_nodes(spec: JobSpec, nodes: list[Node]) -> dict[str, PrivacyLedger]:
    """Give every simulated node a ledger (in memory) and its privacy filter."""
    ledgers = {}
    for node in nodes:
        ledger = PrivacyLedger(":memory:")
        ledger.set_budget(
            node.node_id,
            max_epsilon=SIMULATED_BUDGET,
            delta=spec.privacy.delta,
            accounting=Accounting(spec.privacy.accounting),
        )
        enable_differential_privacy(node, ledger=ledger, dataset=node.node_id)
        ledgers[node.node_id] = ledger
    return ledgers


def factory_input(spec: JobSpec, identities: FederationIdentities | None = None) -> str:
    """What the process transport's workers rebuild their nodes from: the job, the identities."""
    return json.dumps(
        {
            "spec": spec.model_dump_json(),
            "identities": None if identities is None else identities.to_json(),
        }
    )


def _simulated_nodes(factory_input: str) -> list[Node]:
    """The simulated nodes of a job given as JSON: the process transport's node factory.

    Each worker process calls this once; partitioning is deterministic per seed, so every worker
    holds the same partitions as the parent's own :func:`prepare_simulation`, and the parent's
    node identities (one CA for all workers) travel along when secure aggregation is on.
    """
    document = json.loads(factory_input)
    identities = document.get("identities")
    return prepare_simulation(
        JobSpec.model_validate_json(document["spec"]),
        identities=None if identities is None else FederationIdentities.from_json(identities),
    ).nodes


def central_evaluator(setup: SimulationSetup) -> CentralEvaluator:
    """Evaluate global parameters on the simulation's held-out test set."""
    return test_set_evaluator(
        setup.spec, setup.test_features, setup.test_labels, num_classes=setup.num_classes
    )


def make_transport(setup: SimulationSetup) -> Transport:
    """The transport the job's ``[simulation]`` section asks for."""
    section = setup.spec.simulation
    if section.backend is SimulationBackend.PROCESS:
        from sovereign_ai.federation.transports.process import ProcessTransport

        return ProcessTransport(
            _simulated_nodes,
            factory_input=factory_input(setup.spec, setup.identities),
            node_ids=[node.node_id for node in setup.nodes],
            workers=section.workers,
        )
    workers = 1 if section.backend is SimulationBackend.SERIAL else section.workers
    return InMemoryTransport(setup.nodes, max_workers=workers)


def run_simulation(
    spec: JobSpec,
    *,
    state_dir: str | Path | None = None,
    resume: bool = False,
    observer: RoundObserver | None = None,
    setup: SimulationSetup | None = None,
) -> tuple[FederationHistory, SimulationSetup]:
    """Run a whole job in simulation.

    Parameters
    ----------
    spec
        The job.
    state_dir
        Folder for durable coordinator state; required for ``resume``.
    resume
        Continue from the last durable round in ``state_dir``.
    observer
        Progress receiver (the CLI's progress bar).
    setup
        A prepared setup to reuse (benchmarks); prepared from ``spec`` otherwise.
    """
    if resume and state_dir is None:
        raise ConfigError("Resuming needs the state folder of the run to resume (--out).")
    setup = setup or prepare_simulation(spec)
    store = open_store(spec, state_dir) if state_dir is not None else None
    transport = make_transport(setup)
    try:
        coordinator = build_coordinator(
            spec,
            transport=transport,
            num_features=setup.num_features,
            num_classes=setup.num_classes,
            store=store,
            central_evaluator=central_evaluator(setup),
            observer=observer,
        )
        history = coordinator.run(resume=resume)
    finally:
        transport.close()
        if store is not None:
            store.close()
    return history, setup
