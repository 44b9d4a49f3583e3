"""The certificates work in real TLS: mutual authentication on loopback with Python's ``ssl``.

gRPC's BoringSSL applies the same chain, key-usage and host-name rules; OpenSSL's strict X.509 mode
is switched on here so that a certificate only one of the two stacks would accept fails the test.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sovereign_ai.pki import (
    FederationSpec,
    ProvisionReport,
    load_coordinator_kit,
    load_node_kit,
    provision,
)

from .conftest import PASSPHRASE

pytestmark = pytest.mark.integration
TIMEOUT_S = 5.0


@dataclass
class _ServerOutcome:
    peer_der: bytes | None = None
    errors: list[BaseException] = field(default_factory=list)


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _server_context(kit_folder: Path, *, certificate: str, key: str) -> ssl.SSLContext:
    context = _strict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    # The kit key is encrypted PKCS#8: OpenSSL opens it with the same passphrase.
    context.load_cert_chain(kit_folder / certificate, kit_folder / key, password=PASSPHRASE)
    context.load_verify_locations(kit_folder / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _client_context(kit_folder: Path, *, ca_folder: Path | None = None) -> ssl.SSLContext:
    context = _strict(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # CERT_REQUIRED + host names
    context.load_verify_locations((ca_folder or kit_folder) / "ca.pem")
    context.load_cert_chain(kit_folder / "node.pem", kit_folder / "node.key", password=PASSPHRASE)
    return context


def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, *, host: str = "127.0.0.1"
) -> tuple[_ServerOutcome, bytes | BaseException]:
    """Accept one connection on loopback; return what the server saw and what the client read."""
    outcome = _ServerOutcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                connection.settimeout(TIMEOUT_S)
                with server.wrap_socket(connection, server_side=True) as tls:
                    outcome.peer_der = tls.getpeercert(binary_form=True)
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError) as exc:
                outcome.errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        received: bytes | BaseException
        try:
            port = listener.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
                client.wrap_socket(raw, server_hostname=host) as tls,
            ):
                received = tls.recv(2)
        except (OSError, ssl.SSLError) as exc:
            received = exc
        thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "the server thread hung"
    return outcome, received


def test_mutual_tls_between_coordinator_and_node(federation: ProvisionReport) -> None:
    coordinator = load_coordinator_kit(federation.out_dir / "coordinator")
    node_folder = federation.out_dir / "nodes" / "hospital-a"
    server = _server_context(
        coordinator.folder, certificate="coordinator.pem", key="coordinator.key"
    )

    for host in ("127.0.0.1", "localhost"):
        outcome, received = _handshake(server, _client_context(node_folder), host=host)

        assert received == b"ok", received
        assert outcome.errors == []
        assert outcome.peer_der is not None
        assert coordinator.verify_node(outcome.peer_der) == "hospital-a"


def test_node_from_another_ca_is_refused_by_the_handshake(
    federation: ProvisionReport, spec: FederationSpec, tmp_path: Path
) -> None:
    coordinator_folder = federation.out_dir / "coordinator"
    impostor = provision(spec, tmp_path / "impostor", allow_unencrypted_keys=True)
    impostor_folder = impostor.out_dir / "nodes" / "hospital-a"
    server = _server_context(
        coordinator_folder, certificate="coordinator.pem", key="coordinator.key"
    )
    # the impostor trusts the real CA (ca.pem is public) but holds a foreign certificate
    client = _client_context(impostor_folder, ca_folder=coordinator_folder)

    outcome, received = _handshake(server, client)

    assert received != b"ok"
    assert outcome.peer_der is None
    assert any("certificate verify failed" in str(error) for error in outcome.errors)


def test_host_not_on_the_coordinator_certificate_is_refused(federation: ProvisionReport) -> None:
    coordinator_folder = federation.out_dir / "coordinator"
    node_folder = federation.out_dir / "nodes" / "hospital-a"
    server = _server_context(
        coordinator_folder, certificate="coordinator.pem", key="coordinator.key"
    )

    _, received = _handshake(server, _client_context(node_folder), host="elsewhere.example.org")

    assert isinstance(received, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(received)


def test_node_certificate_cannot_serve_as_coordinator(federation: ProvisionReport) -> None:
    node_b = federation.out_dir / "nodes" / "hospital-b"
    node_a = federation.out_dir / "nodes" / "hospital-a"
    server = _server_context(node_b, certificate="node.pem", key="node.key")

    _, received = _handshake(server, _client_context(node_a), host="localhost")

    assert isinstance(received, ssl.SSLCertVerificationError)
    assert load_node_kit(node_b).certificate.subject  # the file itself is a valid node certificate
