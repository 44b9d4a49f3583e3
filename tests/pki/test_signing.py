"""Signing with a federation identity, and checking the signature against the CA."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import SecureAggregationError
from sovereign_ai.pki import ProvisionReport, load_kit
from sovereign_ai.pki.ca import CertificateAuthority
from sovereign_ai.pki.certificates import Role, certificate_to_pem, read_certificate
from sovereign_ai.pki.signing import (
    FederationIdentities,
    IdentitySigner,
    NodeSignatureVerifier,
    certificate_holder,
    ephemeral_federation,
)

NODES = ("hospital-a", "hospital-b")
MESSAGE = b"sovereign-ai/test/message"


@pytest.fixture(scope="module")
def identities() -> FederationIdentities:
    return ephemeral_federation("signing-tests", NODES)


def check(
    verifier: NodeSignatureVerifier, node_id: str, signer: IdentitySigner, **kw: bytes
) -> None:
    message = kw.get("message", MESSAGE)
    verifier(
        node_id=node_id,
        certificate=kw.get("certificate", signer.certificate),
        message=message,
        signature=kw.get("signature", signer.sign(MESSAGE)),
    )


def test_a_signature_verifies_for_its_node(identities: FederationIdentities) -> None:
    assert sorted(identities.signers) == sorted(NODES)
    for node, signer in identities.signers.items():
        assert signer.certificate.startswith(b"-----BEGIN CERTIFICATE-----")
        check(identities.verifier, node, signer)
    assert "private_key" not in repr(identities.signers["hospital-a"])


def test_another_nodes_name_is_refused(identities: FederationIdentities) -> None:
    with pytest.raises(SecureAggregationError, match="signed by node 'hospital-b'"):
        check(identities.verifier, "hospital-a", identities.signers["hospital-b"])


def test_an_altered_message_or_signature_is_refused(identities: FederationIdentities) -> None:
    signer = identities.signers["hospital-a"]
    with pytest.raises(SecureAggregationError, match="does not verify"):
        check(identities.verifier, "hospital-a", signer, message=MESSAGE + b"!")
    other = identities.signers["hospital-b"].sign(MESSAGE)
    with pytest.raises(SecureAggregationError, match="does not verify"):
        check(identities.verifier, "hospital-a", signer, signature=other)
    with pytest.raises(SecureAggregationError, match="does not verify"):
        check(
            identities.verifier, "hospital-a", signer, signature=b"\x30\x06\x02\x01\x01\x02\x01\x01"
        )


def test_a_certificate_from_another_ca_is_refused(identities: FederationIdentities) -> None:
    impostor = ephemeral_federation("signing-tests", NODES)  # same names, another CA
    with pytest.raises(SecureAggregationError, match="certificate that is refused"):
        check(identities.verifier, "hospital-a", impostor.signers["hospital-a"])
    # And the other way round.
    with pytest.raises(SecureAggregationError, match="certificate that is refused"):
        check(impostor.verifier, "hospital-a", identities.signers["hospital-a"])


def test_a_coordinator_certificate_is_refused() -> None:
    ca = CertificateAuthority.create("signing-tests", validity_days=2)
    issued = ca.issue(Role.COORDINATOR, "hospital-a", validity_days=2, hosts=["localhost"])
    signer = IdentitySigner(
        private_key=issued.private_key, certificate=certificate_to_pem(issued.certificate)
    )
    verifier = NodeSignatureVerifier(ca=ca.certificate)
    with pytest.raises(SecureAggregationError, match="A node certificate is required"):
        check(verifier, "hospital-a", signer)


def test_an_unreadable_certificate_is_refused(identities: FederationIdentities) -> None:
    signer = identities.signers["hospital-a"]
    with pytest.raises(SecureAggregationError, match="cannot be read"):
        check(identities.verifier, "hospital-a", signer, certificate=b"not a certificate")


def test_a_certificate_outside_its_validity_is_refused(identities: FederationIdentities) -> None:
    later = NodeSignatureVerifier(
        ca=identities.verifier.ca, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    )
    with pytest.raises(SecureAggregationError, match="certificate that is refused"):
        check(later, "hospital-a", identities.signers["hospital-a"])


def test_identities_survive_a_json_round_trip(identities: FederationIdentities) -> None:
    copy = FederationIdentities.from_json(identities.to_json())
    assert copy.verifier.ca == identities.verifier.ca
    assert sorted(copy.signers) == sorted(NODES)
    for node in NODES:
        assert copy.signers[node].certificate == identities.signers[node].certificate
        check(identities.verifier, node, copy.signers[node])
        check(copy.verifier, node, identities.signers[node])


@pytest.mark.parametrize("holder", ["coordinator", "nodes/hospital-a"])
def test_a_kits_signer_signs_as_its_holder_coordinator_or_node(
    federation: ProvisionReport, holder: str
) -> None:
    """The coordinator signs its audit checkpoints with its kit's key, as a node does."""
    kit = load_kit(federation.out_dir / holder)
    signer = IdentitySigner.from_kit(kit)
    signature = signer.sign(MESSAGE)
    public_key = read_certificate(signer.certificate).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))  # raises if not its key
    at = dt.datetime.now(dt.UTC)
    assert certificate_holder(signer.certificate, ca_pem=kit.ca_pem, at=at) == kit.name
