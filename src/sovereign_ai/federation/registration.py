"""Register a job's final model with its passport, in simulation and deployment alike.

:func:`job_lineage` builds the passport's :class:`~sovereign_ai.registry.Lineage` from the job
spec, the job's history and what the coordinator knows of its participants (their verified
certificates in deployment); :func:`register_job_model` stores the model under the job's name.
Registering the same job's same model twice (a finished job started again with ``--resume``)
returns the version already there.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from sovereign_ai.core import Parameters
from sovereign_ai.core.signatures import Signer
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.deployment import deployed_dimensions
from sovereign_ai.federation.job import JobSpec
from sovereign_ai.federation.passport_privacy import node_epsilons, privacy_record
from sovereign_ai.federation.rounds import FederationHistory
from sovereign_ai.federation.secure_steps import summarise
from sovereign_ai.pki import certificate_fingerprint, certificate_jurisdiction
from sovereign_ai.pki.signing import IdentitySigner
from sovereign_ai.registry import (
    CoordinatorRecord,
    DataSchema,
    InputScaling,
    Lineage,
    ModelRegistry,
    NodeRecord,
    RegisteredVersion,
    RoundRecord,
    SecureAggregationRecord,
    software_versions,
)

if TYPE_CHECKING:
    from sovereign_ai.federation.simulation import SimulationSetup
    from sovereign_ai.pki import CoordinatorKit

__all__ = [
    "CoordinatorIdentity",
    "DataDescription",
    "job_lineage",
    "register_deployed_model",
    "register_job_model",
    "register_simulated_model",
]


@dataclass(frozen=True)
class CoordinatorIdentity:
    """A deployed coordinator: its kit's name, federation and certificate (PEM)."""

    name: str
    federation: str
    certificate_pem: bytes


@dataclass(frozen=True)
class DataDescription:
    """What the coordinator knows of the job's data (simulation: the whole dataset)."""

    dataset: str | None = None
    num_features: int | None = None
    num_classes: int | None = None
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    num_examples: Mapping[str, int] | None = None
    """Each node's training rows, where known (for DP-SGD's ε with a fixed noise multiplier)."""


def _input_scaling(spec: JobSpec, parameters: Parameters) -> InputScaling | None:
    if "input_mean" not in parameters or "input_std" not in parameters:
        return None
    source: Literal["given", "pooled", "none"] = (
        "given"
        if spec.model.given_scaling
        else "pooled"
        if spec.coordinator.standardize_features
        else "none"
    )
    mean = np.asarray(parameters["input_mean"], dtype=np.float64).ravel()  # (num_features,)
    std = np.asarray(parameters["input_std"], dtype=np.float64).ravel()  # (num_features,)
    return InputScaling(source=source, mean=tuple(mean.tolist()), std=tuple(std.tolist()))


def job_lineage(
    spec: JobSpec,
    history: FederationHistory,
    *,
    mode: Literal["simulation", "deployment"],
    data: DataDescription | None = None,
    node_certificates: Mapping[str, bytes] | None = None,
    node_ids: Sequence[str] = (),
    coordinator: CoordinatorIdentity | None = None,
) -> Lineage:
    """The lineage of the job's final model (``history.parameters``).

    Parameters
    ----------
    spec
        The job.
    history
        Every round of the job (after a resume, the rounds of earlier processes too).
    mode
        ``simulation`` or ``deployment``.
    data
        What the coordinator knows of the data.
    node_certificates
        Each node's certificate (PEM) as pki verified it when the node called (deployment).
    node_ids
        Nodes that took part besides those the history shows answering (simulation: all).
    coordinator
        The coordinator, when it signs (deployment).

    Raises
    ------
    ConfigError
        If the history holds no final model.
    """
    if history.parameters is None:
        raise ConfigError("The job has no final model to register: no round completed.")
    data = data or DataDescription()
    certificates = node_certificates or {}
    answered = Counter(node for report in history.rounds for node in set(report.answered))
    nodes = sorted(set(answered) | set(node_ids))
    epsilons = node_epsilons(spec, nodes, num_examples=data.num_examples)
    delta = spec.privacy.delta if spec.privacy.enabled else None
    records = []
    for node in nodes:
        pem = certificates.get(node)
        records.append(
            NodeRecord(
                node_id=node,
                rounds_answered=answered.get(node, 0),
                certificate_fingerprint=certificate_fingerprint(pem) if pem else None,
                jurisdiction=certificate_jurisdiction(pem) if pem else None,
                epsilon=epsilons[node],
                delta=delta if epsilons[node] is not None else None,
            )
        )
    secure = None
    if spec.secure_aggregation.enabled:
        section = spec.secure_aggregation
        cohort = max((len(r.answered) for r in history.rounds), default=len(nodes))
        summary = summarise(section, max(cohort, 2))
        secure = SecureAggregationRecord(
            nodes=summary.nodes,
            neighbours=summary.neighbours,
            threshold=summary.threshold,
            modulus_bits=summary.modulus_bits,
            quantisation_bits=section.quantisation_bits,
            clipping_range=section.clipping_range,
            dropout_rate=section.dropout_rate,
            corruption_rate=section.corruption_rate,
        )
    return Lineage(
        mode=mode,
        job_id=spec.job_id,
        job_name=spec.job.name,
        job_spec_digest=spec.digest,
        architecture=spec.model.name,
        architecture_options=dict(spec.model.options),
        strategy=spec.strategy.name,
        strategy_options=dict(spec.strategy.options),
        rounds=spec.job.rounds,
        rounds_completed=max((r.round_number for r in history.rounds), default=0),
        coordinator=_coordinator_record(coordinator),
        nodes=tuple(records),
        secure_aggregation=secure,
        privacy=privacy_record(spec),
        data=DataSchema(
            dataset=data.dataset,
            num_features=data.num_features or spec.model.num_features,
            num_classes=data.num_classes or spec.model.num_classes,
            feature_names=data.feature_names,
            class_names=data.class_names,
            input_scaling=_input_scaling(spec, history.parameters),
        ),
        metrics=tuple(
            RoundRecord(
                round_number=r.round_number,
                answered=tuple(r.answered),
                metrics={k: float(v) for k, v in r.metrics.items() if math.isfinite(v)},
            )
            for r in history.rounds
        ),
        software=software_versions(),
    )


def _coordinator_record(coordinator: CoordinatorIdentity | None) -> CoordinatorRecord | None:
    if coordinator is None:
        return None
    return CoordinatorRecord(
        name=coordinator.name,
        federation=coordinator.federation,
        certificate_fingerprint=certificate_fingerprint(coordinator.certificate_pem),
        jurisdiction=certificate_jurisdiction(coordinator.certificate_pem),
    )


def register_job_model(
    registry: str | Path | ModelRegistry,
    spec: JobSpec,
    lineage: Lineage,
    parameters: Parameters,
    *,
    signer: Signer | None,
) -> RegisteredVersion:
    """Register ``parameters`` as the next version of the model named after the job.

    Parameters
    ----------
    registry
        The registry, or its folder (created if missing).
    spec
        The job (its name names the model).
    lineage
        From :func:`job_lineage`.
    parameters
        The final model.
    signer
        The coordinator's certificate key (deployment); ``None`` registers it unsigned.

    Returns
    -------
    RegisteredVersion
        The new version, or the existing one if this job's same model is already registered.
    """
    if not isinstance(registry, ModelRegistry):
        with ModelRegistry(registry, create=True) as opened:
            return register_job_model(opened, spec, lineage, parameters, signer=signer)
    digest = hashlib.sha256(parameters.to_bytes()).hexdigest()
    existing = registry.find(spec.job.name, job_id=spec.job_id, parameter_digest=digest)
    if existing is not None:
        return existing
    return registry.register(spec.job.name, parameters, lineage, signer=signer)


def register_simulated_model(
    registry: str | Path | ModelRegistry, history: FederationHistory, setup: SimulationSetup
) -> RegisteredVersion:
    """Register a simulation's final model, unsigned (a simulation has no federation identity).

    The passport records the dataset's feature and class names, and each simulated node's ε
    (their row counts are known here).
    """
    dataset = setup.dataset
    data = DataDescription(
        dataset=dataset.name,
        num_features=dataset.num_features,
        num_classes=dataset.num_classes,
        feature_names=tuple(dataset.feature_names),
        class_names=tuple(dataset.class_names),
        num_examples={node.node_id: len(node.data.train_labels) for node in setup.nodes},
    )
    lineage = job_lineage(
        setup.spec,
        history,
        mode="simulation",
        data=data,
        node_ids=[node.node_id for node in setup.nodes],
    )
    if history.parameters is None:  # job_lineage has refused already; for the type checker
        raise ConfigError("The job has no final model to register: no round completed.")
    return register_job_model(registry, setup.spec, lineage, history.parameters, signer=None)


def register_deployed_model(
    registry: str | Path | ModelRegistry,
    spec: JobSpec,
    history: FederationHistory,
    parameters: Parameters,
    *,
    kit: CoordinatorKit,
    node_certificates: Mapping[str, bytes],
    class_names: Sequence[str] | None = None,
) -> RegisteredVersion:
    """Register a deployed job's final model, its passport signed with the coordinator's key.

    Parameters
    ----------
    registry
        The registry or its folder.
    spec
        The job; its ``[model] num_features`` and ``num_classes`` give the data's dimensions.
    history
        Every round of the job.
    parameters
        The final model.
    kit
        The coordinator's kit: its name, federation, certificate and key.
    node_certificates
        Each node's certificate as pki verified it (the gRPC transport's
        ``node_certificates()``).
    class_names
        The class names, where the coordinator knows them (its test set's ``--classes``).
    """
    num_features, num_classes = deployed_dimensions(spec)
    names = tuple(class_names) if class_names and len(class_names) == num_classes else None
    history = FederationHistory(
        rounds=history.rounds, parameters=parameters, resumed_from=history.resumed_from
    )
    lineage = job_lineage(
        spec,
        history,
        mode="deployment",
        data=DataDescription(num_features=num_features, num_classes=num_classes, class_names=names),
        node_certificates=node_certificates,
        coordinator=CoordinatorIdentity(
            name=kit.name, federation=kit.federation, certificate_pem=kit.certificate_pem
        ),
    )
    signer = IdentitySigner.from_kit(kit)
    return register_job_model(registry, spec, lineage, parameters, signer=signer)
