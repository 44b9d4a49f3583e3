"""Loading kits and admitting peers: the checks a transport runs on every connection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from sovereign_ai.errors import AuthenticationError, ProvisioningError
from sovereign_ai.pki import (
    CertificateAuthority,
    CoordinatorKit,
    FederationSpec,
    NodeKit,
    NodeStatus,
    ProvisionReport,
    Role,
    load_coordinator_kit,
    load_kit,
    load_node_kit,
    provision,
    revoke_node,
    verify_coordinator_certificate,
    verify_node_certificate,
)
from sovereign_ai.pki.certificates import read_private_key

NOW = dt.datetime.now(dt.UTC)


def _kits(report: ProvisionReport) -> tuple[CoordinatorKit, NodeKit]:
    coordinator = load_coordinator_kit(report.out_dir / "coordinator")
    node = load_node_kit(report.out_dir / "nodes" / "hospital-a")
    return coordinator, node


def test_loaded_kits_expose_what_tls_needs(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)

    assert coordinator.name == "coordinator" and node.name == "hospital-a"
    assert node.federation == coordinator.federation == "test-federation"
    assert node.coordinator_address == "localhost:8443"
    assert node.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert node.ca_pem == coordinator.ca_pem
    assert coordinator.private_key_path.name == "coordinator.key"
    assert node.node_config_path.is_file()
    assert coordinator.roster.nodes[0].name == "hospital-a"
    assert isinstance(load_kit(node.folder), NodeKit)
    assert isinstance(load_kit(coordinator.folder), CoordinatorKit)


def test_node_certificate_is_admitted_by_name(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)
    der = node.certificate.public_bytes(Encoding.DER)

    assert coordinator.verify_node(node.certificate_pem) == "hospital-a"
    assert coordinator.verify_node(der) == "hospital-a"
    assert node.verify_coordinator(coordinator.certificate_pem) == "coordinator"


def test_node_certificate_is_refused_as_coordinator(federation: ProvisionReport) -> None:
    _, node = _kits(federation)

    with pytest.raises(AuthenticationError, match=r"coordinator certificate is required.*node"):
        verify_coordinator_certificate(node.certificate_pem, ca=node.ca)


def test_coordinator_certificate_is_refused_as_node(federation: ProvisionReport) -> None:
    coordinator, _ = _kits(federation)

    with pytest.raises(AuthenticationError, match=r"node certificate is required.*coordinator"):
        coordinator.verify_node(coordinator.certificate_pem)


def test_certificate_from_another_ca_is_refused(
    federation: ProvisionReport, spec: FederationSpec, tmp_path: Path
) -> None:
    coordinator, node = _kits(federation)
    other = provision(spec, tmp_path / "impostor", allow_unencrypted_keys=True)  # another CA
    impostor_node, impostor_coordinator = (
        load_node_kit(other.out_dir / "nodes" / "hospital-a"),
        load_coordinator_kit(other.out_dir / "coordinator"),
    )

    with pytest.raises(AuthenticationError, match="not issued by the federation CA"):
        coordinator.verify_node(impostor_node.certificate_pem)
    with pytest.raises(AuthenticationError, match="not issued by the federation CA"):
        node.verify_coordinator(impostor_coordinator.certificate_pem)


def test_expired_certificate_is_refused(spec: FederationSpec, tmp_path: Path) -> None:
    short = spec.model_copy(
        update={"federation": spec.federation.model_copy(update={"validity_days": 30})}
    )
    report = provision(
        short, tmp_path / "federation", allow_unencrypted_keys=True, now=NOW - dt.timedelta(days=40)
    )
    coordinator, node = _kits(report)

    with pytest.raises(AuthenticationError, match="node certificate of 'hospital-a' expired on"):
        coordinator.verify_node(node.certificate_pem)
    with pytest.raises(AuthenticationError, match=r"coordinator certificate.*expired on"):
        node.verify_coordinator(coordinator.certificate_pem)
    # the same certificate was fine while it was valid
    assert coordinator.verify_node(node.certificate_pem, now=NOW - dt.timedelta(days=20))


def test_certificate_not_yet_valid_is_refused(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)

    with pytest.raises(AuthenticationError, match=r"not valid before.*check the clocks"):
        coordinator.verify_node(node.certificate_pem, now=NOW - dt.timedelta(days=1))


def test_revoked_node_is_refused_at_its_next_connection(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)
    assert coordinator.verify_node(node.certificate_pem) == "hospital-a"

    revoke_node(federation.out_dir, "hospital-a", reason="stolen laptop")
    reloaded = load_coordinator_kit(coordinator.folder)

    with pytest.raises(AuthenticationError, match="was revoked on"):
        reloaded.verify_node(node.certificate_pem)
    other = load_node_kit(federation.out_dir / "nodes" / "hospital-b")
    assert reloaded.verify_node(other.certificate_pem) == "hospital-b"


def test_node_revoked_on_the_roster_alone_is_refused(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)
    entry = coordinator.roster.node("hospital-a")
    assert entry is not None
    roster = coordinator.roster.with_node(
        entry.model_copy(
            update={"status": NodeStatus.REVOKED, "revoked_at": NOW, "revocation_reason": "audit"}
        )
    )

    with pytest.raises(AuthenticationError, match=r"revoked on .*: audit"):
        verify_node_certificate(
            node.certificate_pem, ca=coordinator.ca, roster=roster, crl=coordinator.crl
        )


def test_node_missing_from_the_roster_is_refused(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)
    roster = coordinator.roster.model_copy(update={"nodes": coordinator.roster.nodes[1:]})

    with pytest.raises(AuthenticationError, match="'hospital-a' is not on the roster"):
        verify_node_certificate(
            node.certificate_pem, ca=coordinator.ca, roster=roster, crl=coordinator.crl
        )


def test_superseded_certificate_of_an_enrolled_name_is_refused(
    federation: ProvisionReport,
) -> None:
    coordinator, _ = _kits(federation)
    ca_key = read_private_key((federation.ca_folder / "ca.key").read_bytes())
    authority = CertificateAuthority(certificate=coordinator.ca, private_key=ca_key)
    stale = authority.issue(Role.NODE, "hospital-a", validity_days=10).certificate

    with pytest.raises(AuthenticationError, match="superseded"):
        coordinator.verify_node(stale)


def test_crl_signed_by_another_ca_fails_closed(federation: ProvisionReport) -> None:
    coordinator, node = _kits(federation)
    forged = CertificateAuthority.create("test-federation", validity_days=10).sign_crl(
        (), crl_number=9
    )

    with pytest.raises(AuthenticationError, match="revocation list is not signed"):
        verify_node_certificate(
            node.certificate_pem, ca=coordinator.ca, roster=coordinator.roster, crl=forged
        )


def test_unreadable_peer_certificate_is_refused(federation: ProvisionReport) -> None:
    coordinator, _ = _kits(federation)

    with pytest.raises(AuthenticationError, match="cannot be read"):
        coordinator.verify_node(b"\x30\x03garbage")


def test_kit_key_readable_by_others_is_refused_with_the_fix(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    (folder / "node.key").chmod(0o640)

    with pytest.raises(ProvisioningError, match=r"readable by others \(mode 640\).*chmod 600"):
        load_node_kit(folder)


def test_missing_kit_file_is_named(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    (folder / "ca.pem").unlink()

    with pytest.raises(ProvisioningError, match=r"ca\.pem is missing"):
        load_node_kit(folder)


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("node.pem", r"node\.pem is not a PEM certificate"),
        ("node.key", r"node\.key is not a usable private key"),
        ("kit.json", r"kit\.json is corrupt"),
    ],
)
def test_corrupt_kit_file_is_named(federation: ProvisionReport, file: str, expected: str) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    (folder / file).write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")

    with pytest.raises(ProvisioningError, match=expected):
        load_node_kit(folder)


def test_corrupt_crl_and_roster_are_named(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "coordinator"
    (folder / "crl.pem").write_bytes(b"junk")
    with pytest.raises(ProvisioningError, match=r"crl\.pem is not a PEM revocation list"):
        load_coordinator_kit(folder)

    (folder / "roster.json").write_text('{"federation": "x"}')
    with pytest.raises(ProvisioningError, match=r"roster\.json is corrupt.*coordinator"):
        load_coordinator_kit(folder)


def test_mixed_up_kit_files_are_refused(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    other = federation.out_dir / "nodes" / "hospital-b"
    (folder / "node.pem").write_bytes((other / "node.pem").read_bytes())

    with pytest.raises(ProvisioningError, match="is not the key of"):
        load_node_kit(folder)


def test_wrong_role_kit_is_refused(federation: ProvisionReport) -> None:
    with pytest.raises(ProvisioningError, match="node kit of 'hospital-a', not a coordinator kit"):
        load_coordinator_kit(federation.out_dir / "nodes" / "hospital-a")
