"""A small lineage, parameters and a coordinator's signer for registry tests."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.core import Parameters
from sovereign_ai.pki import CertificateAuthority, Role
from sovereign_ai.pki.certificates import certificate_to_pem
from sovereign_ai.pki.signing import IdentitySigner
from sovereign_ai.registry import (
    DataSchema,
    Lineage,
    NodeRecord,
    PrivacyRecord,
    RoundRecord,
    software_versions,
)

CA = CertificateAuthority.create("registry-test", validity_days=30)


def coordinator_signer(name: str = "coordinator", ca: CertificateAuthority = CA) -> IdentitySigner:
    """A coordinator identity issued by ``ca``."""
    issued = ca.issue(
        Role.COORDINATOR, name, validity_days=30, hosts=["127.0.0.1"], jurisdiction="DE"
    )
    return IdentitySigner(
        private_key=issued.private_key, certificate=certificate_to_pem(issued.certificate)
    )


SIGNER = coordinator_signer()


def make_lineage(*, job_id: str = "job-0123456789ab", rounds: int = 2) -> Lineage:
    return Lineage(
        mode="simulation",
        job_id=job_id,
        job_name="job",
        job_spec_digest="ab" * 32,
        architecture="mlp",
        architecture_options={"hidden": [8]},
        strategy="fedavg",
        rounds=rounds,
        rounds_completed=rounds,
        nodes=(
            NodeRecord(node_id="north", rounds_answered=rounds, epsilon=1.5, delta=1e-5),
            NodeRecord(node_id="south", rounds_answered=1),
        ),
        privacy=PrivacyRecord(mode="none"),
        data=DataSchema(
            dataset="toy", num_features=3, num_classes=2, feature_names=("a", "b", "c")
        ),
        metrics=tuple(
            RoundRecord(
                round_number=r, answered=("north", "south"), metrics={"central_accuracy": 0.5}
            )
            for r in range(1, rounds + 1)
        ),
        software=software_versions(),
    )


def make_parameters(seed: int = 0) -> Parameters:
    rng = np.random.default_rng(seed)
    return Parameters(
        {
            "w": rng.normal(size=(3, 2)).astype(np.float32),
            "b": rng.normal(size=(2,)).astype(np.float32),
        }
    )


@pytest.fixture
def lineage() -> Lineage:
    return make_lineage()
