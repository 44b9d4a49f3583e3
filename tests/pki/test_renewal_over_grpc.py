"""Renewal against a running coordinator: real gRPC over mutual TLS on loopback, no restart.

The coordinator serves from the provisioning folder's coordinator kit, as on a machine where the
administrator renews in place; each call below is a full TLS handshake followed by the
coordinator's own admission check (roster and CRL, re-read when the kit folder changes).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sovereign_ai.errors import AuthenticationError
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, fetch_status
from sovereign_ai.pki import (
    KeyEncryption,
    NodeKit,
    PassphraseSource,
    ProvisionReport,
    load_coordinator_kit,
    load_node_kit,
    renew_certificate,
)

from .conftest import write_passphrase_file

pytestmark = pytest.mark.integration


@pytest.fixture
def coordinator(federation: ProvisionReport) -> Iterator[GrpcCoordinatorTransport]:
    kit = load_coordinator_kit(federation.out_dir / "coordinator")
    with GrpcCoordinatorTransport(kit=kit, poll_wait_s=1.0) as transport:
        yield transport


def _site_copy(federation: ProvisionReport, name: str, into: Path) -> NodeKit:
    """The kit as installed at the site before renewal (the administrator's copy changes)."""
    return load_node_kit(shutil.copytree(federation.out_dir / "nodes" / name, into / name))


def _admits(coordinator: GrpcCoordinatorTransport, kit: NodeKit) -> bool:
    status = fetch_status(kit, address=f"127.0.0.1:{coordinator.port}", timeout_s=10.0)
    return status.coordinator == "coordinator"


def test_renewed_node_is_admitted_at_once_and_its_old_certificate_until_it_expires(
    federation: ProvisionReport, coordinator: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    old = _site_copy(federation, "hospital-a", tmp_path / "site")
    assert _admits(coordinator, old)

    report = renew_certificate(federation.out_dir, "hospital-a")

    new = load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    assert new.certificate.serial_number == report.kit.serial_number
    assert new.certificate.serial_number != old.certificate.serial_number
    assert _admits(coordinator, new)
    assert _admits(coordinator, old)


def test_revoke_old_refuses_the_old_certificate_and_admits_the_new_key(
    federation: ProvisionReport,
    coordinator: GrpcCoordinatorTransport,
    key_encryption: KeyEncryption,
    tmp_path: Path,
) -> None:
    leaked = _site_copy(federation, "hospital-b", tmp_path / "site")
    assert _admits(coordinator, leaked)

    renew_certificate(
        federation.out_dir,
        "hospital-b",
        new_key=True,
        revoke_old=True,
        reason="key copied to a USB stick",
        key_encryption=key_encryption,
    )

    with pytest.raises(AuthenticationError, match="revoked"):
        _admits(coordinator, leaked)
    assert _admits(coordinator, load_node_kit(federation.out_dir / "nodes" / "hospital-b"))


def test_coordinator_re_keyed_under_a_new_passphrase_keeps_admitting_nodes(
    federation: ProvisionReport, coordinator: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    node = load_node_kit(federation.out_dir / "nodes" / "hospital-c")
    secret = b"the coordinator's new passphrase"
    source = PassphraseSource.file(write_passphrase_file(tmp_path / "coordinator-pass", secret))

    renew_certificate(
        federation.out_dir,
        "coordinator",
        new_key=True,
        key_encryption=KeyEncryption(passphrase=secret, source=source),
    )

    # The running coordinator re-reads only roster and CRL; it keeps the key it decrypted at
    # start (and serves the old certificate until restarted, which is still valid).
    assert _admits(coordinator, node)
    assert load_coordinator_kit(federation.out_dir / "coordinator").manifest.key_passphrase == (
        source
    )
