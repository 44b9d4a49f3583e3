"""Signing with a party's federation identity, and checking such a signature against the CA.

A node signs what its peers must be able to attribute to it without trusting the coordinator that
relays it — secure aggregation's advertised keys, its audit checkpoints — with the private key of
its certificate (ECDSA P-256 with SHA-256); the coordinator signs its own audit checkpoints the
same way. A peer checks that the attached certificate was
issued by the federation CA to a *node* of the claimed name, is within its validity, and made the
signature.

:func:`ephemeral_federation` makes a throw-away CA and node identities in memory, for simulations
that have no startup kits: the signatures are then as real as in deployment, only the keys are
not kept.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import AuthenticationError, SecureAggregationError
from sovereign_ai.pki.ca import CertificateAuthority, resolve_now
from sovereign_ai.pki.certificates import (
    Role,
    certificate_identity,
    certificate_to_pem,
    private_key_to_pem,
    read_certificate,
    read_private_key,
)
from sovereign_ai.pki.identity import CoordinatorKit, NodeKit, _check_chain, _check_window

__all__ = [
    "FederationIdentities",
    "IdentitySigner",
    "NodeSignatureVerifier",
    "certificate_holder",
    "ephemeral_federation",
]

_EPHEMERAL_VALIDITY_DAYS = 2


@dataclass(frozen=True)
class IdentitySigner:
    """Signs with a party's certificate key.

    Parameters
    ----------
    private_key
        The key of the certificate.
    certificate
        The certificate, PEM; sent along so that peers can check it.
    """

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: bytes

    @classmethod
    def from_kit(cls, kit: NodeKit | CoordinatorKit) -> IdentitySigner:
        """The signer of a loaded node or coordinator kit (its key is already decrypted in
        memory)."""
        return cls(
            private_key=read_private_key(kit.private_key_pem), certificate=kit.certificate_pem
        )

    def sign(self, message: bytes) -> bytes:
        """An ECDSA-SHA256 signature of ``message``, DER-encoded."""
        return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class NodeSignatureVerifier:
    """Checks that a message was signed by the named node of the federation of ``ca``.

    Parameters
    ----------
    ca
        The federation CA certificate.
    now
        The time to check validity at; the current time by default.

    Notes
    -----
    Nodes hold no revocation list: a node revoked since its certificate was issued still passes
    here until the certificate expires. The coordinator refuses revoked nodes at connection, so
    such a node cannot take part in a round to begin with.
    """

    ca: x509.Certificate
    now: dt.datetime | None = None
    _checked: dict[bytes, tuple[x509.Certificate, str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __call__(
        self, *, node_id: str, certificate: bytes, message: bytes, signature: bytes
    ) -> None:
        """Return if ``node_id``'s certificate, issued by the CA, signed ``message``.

        Raises
        ------
        SecureAggregationError
            If the certificate is unreadable, not the CA's, not a node's, of another name, out of
            its validity, or the signature does not verify.
        """
        try:
            peer, name = self._checked_chain(certificate)
        except AuthenticationError as exc:
            raise SecureAggregationError(
                f"The keys advertised as {node_id!r}'s carry a certificate that is refused: {exc}"
            ) from exc
        if name != node_id:
            raise SecureAggregationError(
                f"The keys advertised as {node_id!r}'s are signed by node {name!r}: the relay "
                "substituted them."
            )
        public_key = peer.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SecureAggregationError(f"The certificate of {node_id!r} is not an EC key.")
        try:
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise SecureAggregationError(
                f"The signature on the keys advertised as {node_id!r}'s does not verify: they were "
                "altered, substituted or replayed from another round. Refusing them."
            ) from exc

    def _checked_chain(self, certificate: bytes) -> tuple[x509.Certificate, str]:
        """The certificate and its node name once its chain and role check out.

        Every neighbour sends the same certificate every round, so the chain is checked once per
        certificate (cached in memory); its validity window is checked at every use.
        """
        at = resolve_now(self.now)
        known = self._checked.get(certificate)
        if known is None:
            known = _check_chain(certificate, ca=self.ca, role=Role.NODE, at=at)
            self._checked[certificate] = known
        else:
            _check_window(known[0], label=f"node certificate of {known[1]!r}", at=at)
        return known


@dataclass(frozen=True)
class FederationIdentities:
    """A federation's CA check and its nodes' signers, e.g. from :func:`ephemeral_federation`.

    Parameters
    ----------
    verifier
        Checks node signatures against the CA.
    signers
        Node id to its signer.
    """

    verifier: NodeSignatureVerifier
    signers: dict[str, IdentitySigner]

    def to_json(self) -> str:
        """The CA certificate and every node's key and certificate as JSON text (PEM inside).

        For handing a *simulation's* throw-away identities to its worker processes only: the
        private keys are in the clear.
        """
        return json.dumps(
            {
                "ca": certificate_to_pem(self.verifier.ca).decode(),
                "nodes": {
                    node: [private_key_to_pem(s.private_key).decode(), s.certificate.decode()]
                    for node, s in self.signers.items()
                },
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FederationIdentities:
        """Rebuild :meth:`to_json` output."""
        document = json.loads(text)
        return cls(
            verifier=NodeSignatureVerifier(ca=read_certificate(document["ca"].encode())),
            signers={
                node: IdentitySigner(
                    private_key=read_private_key(key.encode()), certificate=cert.encode()
                )
                for node, (key, cert) in document["nodes"].items()
            },
        )


def ephemeral_federation(federation: str, node_ids: Sequence[str]) -> FederationIdentities:
    """A fresh in-memory CA and one node identity per id, for simulations without kits."""
    ca = CertificateAuthority.create(federation, validity_days=_EPHEMERAL_VALIDITY_DAYS)
    signers = {}
    for node_id in node_ids:
        issued = ca.issue(Role.NODE, node_id, validity_days=_EPHEMERAL_VALIDITY_DAYS)
        signers[node_id] = IdentitySigner(
            private_key=issued.private_key, certificate=certificate_to_pem(issued.certificate)
        )
    return FederationIdentities(NodeSignatureVerifier(ca=ca.certificate), signers)


def certificate_holder(certificate: bytes, *, ca_pem: bytes, at: dt.datetime) -> str:
    """The name of the party (node or coordinator) the federation CA certified in ``certificate``.

    Parameters
    ----------
    certificate
        The party's certificate, PEM.
    ca_pem
        The federation CA's certificate, PEM.
    at
        When the certificate had to be valid (for a signed statement: when it was signed).

    Raises
    ------
    AuthenticationError
        If either certificate is unreadable, the CA did not issue it, or it was not valid then.
    """
    try:
        ca = read_certificate(ca_pem)
        role = certificate_identity(read_certificate(certificate)).role
    except ValueError as exc:
        raise AuthenticationError(f"The certificate or the CA cannot be read: {exc}.") from exc
    return _check_chain(certificate, ca=ca, role=role, at=at)[1]
