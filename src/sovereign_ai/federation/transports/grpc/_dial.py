"""Dialling the coordinator: check who answers, then open the gRPC channel.

gRPC's Python API does not hand the server's certificate to the client, so the role check runs in
a *pre-flight* TLS handshake made with Python's :mod:`ssl` before every new channel: the same CA,
client certificate and host name as the channel, after which pki's
:func:`~sovereign_ai.pki.verify_coordinator_certificate` must accept the certificate the server
presented (a *coordinator* certificate of this federation, within its validity). The handshake
also surfaces, with a readable reason, a server that refuses this node's own certificate (an
expired or foreign one), which gRPC would only report as "unavailable".

Notes
-----
The pre-flight and the channel are two TLS connections, so in principle a different server could
answer the second. It would still have to pass gRPC's own checks: a certificate from the
federation CA, naming the dialled host in its subject alternative names, with the ``serverAuth``
key usage. The federation CA issues exactly that only to the coordinator (node certificates carry
``clientAuth`` only and no host names), so the pre-flight adds the explicit role check and clear
errors on top of a channel that is already bound to the coordinator's certificate class.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import grpc

from sovereign_ai.errors import AuthenticationError, ConfigError, TransportError
from sovereign_ai.federation.transports.grpc._limits import WireLimits, channel_options
from sovereign_ai.pki import CoordinatorKit, NodeKit, verify_coordinator_certificate

__all__ = ["VerifiedCoordinator", "open_channel", "split_address", "verify_coordinator"]

logger = logging.getLogger(__name__)

Kit = CoordinatorKit | NodeKit
_REFUSAL_PROBE_S = 1.0  # how long to listen for a TLS alert after the handshake


def split_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[v6]:port"``.

    Raises
    ------
    ConfigError
        If the address has no valid port or no host.
    """
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"The coordinator address must be 'host:port' with a port in 1-65535; got "
            f"{address!r} instead."
        )
    return host, int(port_text)


def _context(kit: Kit) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and host-name checks
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=kit.ca_pem.decode("ascii"))
    kit.load_cert_chain_into(context)  # the key decrypted in memory, never on disk
    context.set_alpn_protocols(["h2"])
    return context


@dataclass(frozen=True)
class VerifiedCoordinator:
    """The coordinator a pre-flight handshake verified: its name and certificate (DER)."""

    name: str
    certificate: bytes


def verify_coordinator(kit: Kit, *, address: str, timeout_s: float) -> VerifiedCoordinator:
    """Handshake with ``address`` and check that the coordinator of ``kit``'s federation answers.

    Returns
    -------
    VerifiedCoordinator
        The coordinator's name, from its certificate, and the certificate.

    Raises
    ------
    AuthenticationError
        If the server's certificate fails TLS verification or is not a coordinator certificate of
        this federation, or the server refuses this party's certificate.
    TransportError
        If nothing answers at ``address`` or the connection breaks.
    """
    host, port = split_address(address)
    try:
        context = _context(kit)
    except (ssl.SSLError, OSError) as exc:
        raise AuthenticationError(f"Cannot use the kit in {kit.folder} for TLS: {exc}") from exc
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            _listen_for_refusal(tls, address=address)
    except ssl.SSLCertVerificationError as exc:
        raise AuthenticationError(_verification_failure(exc, kit=kit, address=address)) from exc
    except ssl.SSLError as exc:
        raise _ssl_error(exc, address=address) from exc
    except OSError as exc:
        raise TransportError(f"Cannot reach the coordinator at {address}: {exc}") from exc
    if not der:
        raise AuthenticationError(f"The server at {address} presented no certificate.")
    name = verify_coordinator_certificate(der, ca=kit.ca)
    logger.debug("Coordinator %r verified at %s", name, address)
    return VerifiedCoordinator(name=name, certificate=der)


# OpenSSL's codes for "this certificate does not chain to the CA you trust".
_FOREIGN_CA_CODES = frozenset({2, 19, 20, 21})


def _verification_failure(exc: ssl.SSLCertVerificationError, *, kit: Kit, address: str) -> str:
    """A reason a site's IT team can act on, for a server certificate TLS refused."""
    reason = f"The server at {address} failed TLS verification: {exc.verify_message}."
    if exc.verify_code in _FOREIGN_CA_CODES:
        return (
            f"{reason} Its certificate was not issued by the CA of federation "
            f"{kit.federation!r} that this kit ({kit.folder}) trusts: either this kit is from "
            f"another federation, or {address} is not this federation's coordinator. Check the "
            "address, and use the kit this federation's operator provisioned for you."
        )
    if exc.verify_code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return f"{reason} Ask the federation's operator to renew the coordinator's certificate."
    return reason


def _listen_for_refusal(tls: ssl.SSLSocket, *, address: str) -> None:
    """In TLS 1.3 the server judges the client's certificate after the handshake; hear it out.

    A gRPC server speaks first once it accepts the connection (an HTTP/2 SETTINGS frame). One that
    refused the client's certificate sends an alert or simply closes the connection instead.
    """
    tls.settimeout(_REFUSAL_PROBE_S)
    try:
        first = tls.recv(1)
    except TimeoutError:
        return  # silent but open: not refused; the gRPC channel will tell the rest
    except ssl.SSLError as exc:
        raise _ssl_error(exc, address=address) from exc
    if not first:
        raise AuthenticationError(
            f"The server at {address} closed the connection right after the TLS handshake: it "
            "refused this party's certificate (expired, from another federation, or not allowed "
            "as a client)."
        )


def _ssl_error(exc: ssl.SSLError, *, address: str) -> Exception:
    reason = exc.reason or str(exc)
    if "ALERT" in str(reason).upper() or "CERTIFICATE" in str(reason).upper():
        return AuthenticationError(
            f"The server at {address} refused this party's certificate during the TLS "
            f"handshake ({reason}); is the certificate expired, revoked or from another "
            "federation?"
        )
    return TransportError(f"TLS with {address} failed: {reason}")


def open_channel(
    kit: Kit, *, address: str, limits: WireLimits, allow_insecure: bool = False
) -> Any:
    """A gRPC channel to ``address`` with mutual TLS from ``kit`` (plaintext only if allowed)."""
    split_address(address)
    options = channel_options(limits)
    if allow_insecure:
        return grpc.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=kit.ca_pem,
        private_key=kit.private_key_pem,
        certificate_chain=kit.certificate_pem,
    )
    return grpc.secure_channel(address, credentials, options=options)
