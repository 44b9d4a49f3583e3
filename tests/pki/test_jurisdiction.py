"""The coordinator's jurisdiction: written by the federation file, certified by the CA, kept on
renewal, and read back with the certificate's fingerprint as a node's policy sees them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    CertificateAuthority,
    KeyEncryption,
    Role,
    certificate_fingerprint,
    certificate_identity,
    certificate_jurisdiction,
    load_coordinator_kit,
    parse_federation_spec,
    provision,
    renew_certificate,
)

from .conftest import federation_mapping


def with_jurisdiction(value: object) -> dict[str, object]:
    mapping = federation_mapping()
    coordinator = dict(mapping["coordinator"])  # type: ignore[call-overload]
    coordinator["jurisdiction"] = value
    return {**mapping, "coordinator": coordinator}


def test_the_coordinators_jurisdiction_is_certified_and_kept_on_renewal(
    tmp_path: Path, key_encryption: KeyEncryption
) -> None:
    spec = parse_federation_spec(with_jurisdiction("DE"))
    report = provision(spec, tmp_path / "federation", key_encryption=key_encryption)
    kit = load_coordinator_kit(report.out_dir / "coordinator")
    certificate = x509.load_pem_x509_certificate(kit.certificate_pem)
    assert certificate_jurisdiction(certificate) == "DE"
    assert certificate_identity(certificate).role is Role.COORDINATOR  # still a coordinator's
    node_pem = (report.out_dir / "nodes" / "hospital-a" / "node.pem").read_bytes()
    assert certificate_jurisdiction(node_pem) is None

    renew_certificate(report.out_dir, "coordinator")
    renewed = (report.out_dir / "coordinator" / "coordinator.pem").read_bytes()
    assert renewed != kit.certificate_pem
    assert certificate_jurisdiction(renewed) == "DE"


def test_without_a_jurisdiction_the_certificate_carries_none(
    tmp_path: Path, key_encryption: KeyEncryption
) -> None:
    spec = parse_federation_spec(federation_mapping())
    report = provision(spec, tmp_path / "federation", key_encryption=key_encryption)
    pem = (report.out_dir / "coordinator" / "coordinator.pem").read_bytes()
    assert certificate_jurisdiction(pem) is None


@pytest.mark.parametrize("value", ["de", "DEU", "Germany", "", 49])
def test_a_jurisdiction_that_is_not_two_capitals_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"coordinator\.jurisdiction"):
        parse_federation_spec(with_jurisdiction(value))


def test_the_ca_refuses_to_certify_a_malformed_jurisdiction() -> None:
    ca = CertificateAuthority.create("test", validity_days=10)
    with pytest.raises(ProvisioningError, match="two capital letters"):
        ca.issue(Role.COORDINATOR, "c", validity_days=5, hosts=["localhost"], jurisdiction="de")


def test_the_fingerprint_is_the_sha256_of_the_der_certificate_from_pem_or_der() -> None:
    ca = CertificateAuthority.create("test", validity_days=10)
    certificate = ca.issue(Role.COORDINATOR, "c", validity_days=5, hosts=["localhost"]).certificate
    der = certificate.public_bytes(Encoding.DER)
    expected = hashlib.sha256(der).hexdigest()
    assert certificate_fingerprint(der) == expected
    assert certificate_fingerprint(certificate.public_bytes(Encoding.PEM)) == expected
    assert certificate_fingerprint(certificate) == expected
    with pytest.raises(ValueError):
        certificate_fingerprint(b"not a certificate")
