"""The lineage of a job's model: nodes' verified certificates, (ε, δ) per node, secure
aggregation, input scaling; registering twice returns the version already there.

Deployment is tested here with a fake participant list (certificates from a throw-away CA, as the
gRPC transport's ``node_certificates()`` would return them), not with coordinator processes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import FederationHistory, JobSpec, RoundReport, parse_job_spec
from sovereign_ai.federation.registration import (
    CoordinatorIdentity,
    DataDescription,
    job_lineage,
    register_job_model,
)
from sovereign_ai.pki import certificate_fingerprint
from sovereign_ai.pki.signing import ephemeral_federation
from sovereign_ai.privacy import Accounting, PrivacyEvent, Sampler, epsilon_spent
from sovereign_ai.registry import ModelRegistry, verify_version

from ..registry.conftest import SIGNER

JOB = """
[job]
name = "deployed"
rounds = 3
[model]
name = "mlp"
num_features = 2
num_classes = 2
input_mean = [0.0, 1.0]
input_std = [1.0, 2.0]
[strategy]
name = "fedavg"
fraction_train = 0.5
[coordinator]
standardize_features = false
"""


def spec(**privacy: object) -> JobSpec:
    document = tomllib.loads(JOB)
    if privacy:
        document["privacy"] = privacy
    return parse_job_spec(document)


def history() -> FederationHistory:
    parameters = Parameters(
        {
            "w": np.ones((2, 2), np.float32),
            "input_mean": np.array([0.0, 1.0], np.float32),
            "input_std": np.array([1.0, 2.0], np.float32),
        }
    )
    rounds = [
        RoundReport(r, cohort=["a", "b"], answered=["a", "b"] if r < 3 else ["a"], failures={},
                    metrics={"central_accuracy": 0.5 + r / 10, "central_loss": float("nan")})
        for r in (1, 2, 3)
    ]  # fmt: skip
    return FederationHistory(rounds=rounds, parameters=parameters)


def test_deployment_lineage_records_verified_certificates_and_the_coordinator() -> None:
    identities = ephemeral_federation("fed", ["a", "b"])
    certificates = {name: signer.certificate for name, signer in identities.signers.items()}
    job = spec()
    lineage = job_lineage(
        job,
        history(),
        mode="deployment",
        data=DataDescription(num_features=2, num_classes=2, class_names=("no", "yes")),
        node_certificates=certificates,
        coordinator=CoordinatorIdentity("coordinator", "fed", SIGNER.certificate),
    )
    assert [(n.node_id, n.rounds_answered) for n in lineage.nodes] == [("a", 3), ("b", 2)]
    assert lineage.nodes[0].certificate_fingerprint == certificate_fingerprint(certificates["a"])
    assert lineage.coordinator is not None and lineage.coordinator.jurisdiction == "DE"
    assert lineage.job_spec_digest == job.digest and lineage.job_id == job.job_id
    assert lineage.data.class_names == ("no", "yes") and lineage.data.feature_names is None
    scaling = lineage.data.input_scaling
    assert scaling is not None and (scaling.source, scaling.std) == ("given", (1.0, 2.0))
    assert lineage.metrics[0].metrics == {"central_accuracy": 0.6}  # NaN left out
    assert lineage.privacy.mode == "none" and lineage.nodes[0].epsilon is None


def test_client_level_dp_gives_every_node_the_job_epsilon() -> None:
    job = spec(mode="central", noise_multiplier=1.2, clip=1.0)
    lineage = job_lineage(job, history(), mode="deployment", node_ids=["c"])
    expected = epsilon_spent(
        [PrivacyEvent(1.2, 0.5, 3, Sampler.for_rate(0.5))], delta=1e-5, method=Accounting.RDP
    )
    assert [n.node_id for n in lineage.nodes] == ["a", "b", "c"]
    assert all(n.epsilon == pytest.approx(expected) and n.delta == 1e-5 for n in lineage.nodes)
    assert lineage.privacy.unit == "node" and lineage.privacy.sampling_rate == 0.5


def test_dpsgd_epsilon_is_the_target_or_needs_the_row_count() -> None:
    targeted = job_lineage(spec(mode="dpsgd", target_epsilon=4.0), history(), mode="deployment")
    assert {n.epsilon for n in targeted.nodes} == {4.0}
    fixed = spec(mode="dpsgd", noise_multiplier=1.0)
    unknown = job_lineage(fixed, history(), mode="deployment")
    assert {n.epsilon for n in unknown.nodes} == {None}
    known = job_lineage(
        fixed, history(), mode="simulation", data=DataDescription(num_examples={"a": 100})
    )
    assert known.nodes[0].epsilon is not None and known.nodes[0].epsilon > 0
    assert known.nodes[1].epsilon is None  # b's rows were not given


def test_registering_the_same_job_model_twice_returns_the_existing_version(tmp_path: Path) -> None:
    job, past = spec(), history()
    assert past.parameters is not None
    lineage = job_lineage(job, past, mode="deployment")
    first = register_job_model(tmp_path, job, lineage, past.parameters, signer=SIGNER)
    again = register_job_model(tmp_path, job, lineage, past.parameters, signer=SIGNER)
    assert first == again
    with ModelRegistry(tmp_path) as registry:
        assert len(registry.versions("deployed")) == 1
        assert verify_version(registry.resolve("deployed")).is_ok()


def test_a_job_without_a_final_model_is_not_registered() -> None:
    with pytest.raises(ConfigError, match="no final model"):
        job_lineage(spec(), FederationHistory(), mode="simulation")
