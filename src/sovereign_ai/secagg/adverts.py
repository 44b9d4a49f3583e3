"""What a node advertises in SecAgg+'s first stage, bound to one attempt of one round and signed.

Each node makes two fresh X25519 key pairs per attempt: one to agree share-encryption keys with
its neighbours, one to agree pairwise mask seeds (Bonawitz et al., CCS 2017, §4 round 0
"AdvertiseKeys"). It signs both public keys, together with the job, round, attempt and its own
name, with the private key of its *federation certificate*, and attaches that certificate. Every
neighbour checks the certificate against the federation CA and the signature before it uses the
keys, so a coordinator that relays the advertisements cannot swap in keys of its own (which would
let it decrypt the shares) — the open-source peers trust the server for this.

The signing and the certificate check are not done here: a node is handed an
:class:`AdvertSigner` and an :class:`AdvertVerifier` (the federation builds them from the
node's startup kit, :mod:`sovereign_ai.pki.signing`), so this package does not depend on the PKI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from sovereign_ai.errors import SecureAggregationError
from sovereign_ai.secagg.key_agreement import PUBLIC_KEY_BYTES

__all__ = ["AdvertSigner", "AdvertVerifier", "KeyAdvert", "SessionId", "self_mask_commitment"]

_SIGNED_PREFIX = b"sovereign-ai/secagg/advertise-keys/v1"
MAX_CERTIFICATE_BYTES = 16_384
"""Largest certificate an advertisement may carry (a PEM node certificate is about 800 bytes)."""
MAX_SIGNATURE_BYTES = 512
"""Largest signature an advertisement may carry (ECDSA P-256 in DER is at most 72 bytes)."""


@dataclass(frozen=True)
class SessionId:
    """One attempt of one round of one job: every key, share and mask is bound to it.

    A retried round runs a new session with fresh keys and seeds, so nothing of a failed attempt
    (a share, a masked input) can be combined with the next.

    Parameters
    ----------
    job_id
        The job.
    round_number
        The round (0 for the job's set-up statistics).
    attempt
        The attempt of that round, from 1.
    """

    job_id: str
    round_number: int
    attempt: int

    @property
    def label(self) -> str:
        """The job id with the attempt, used where key derivation and share encryption bind."""
        return f"{self.job_id}/attempt-{self.attempt}"


def self_mask_commitment(session: SessionId, *, node_id: str, seed: bytes) -> bytes:
    """SHA-256 over the session, the node id and its self-mask seed (32 bytes)."""
    fields = (session.label.encode(), str(session.round_number).encode(), node_id.encode(), seed)
    digest = hashlib.sha256(b"sovereign-ai/secagg/self-mask-commitment/v1")
    for item in fields:
        digest.update(len(item).to_bytes(4, "big") + item)
    return digest.digest()


class AdvertSigner(Protocol):
    """Signs a node's advertisement with its federation identity."""

    @property
    def certificate(self) -> bytes:
        """The node's certificate (PEM), which peers check against the federation CA."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A signature of ``message`` with the certificate's private key."""
        ...


class AdvertVerifier(Protocol):
    """Checks that an advertisement was signed by the named node of this federation."""

    def __call__(
        self, *, node_id: str, certificate: bytes, message: bytes, signature: bytes
    ) -> None:
        """Return if ``certificate`` is ``node_id``'s, issued by the federation CA, and signed
        ``message``; raise :class:`~sovereign_ai.errors.SecureAggregationError` otherwise."""
        ...


@dataclass(frozen=True)
class KeyAdvert:
    """One node's two public keys for one session, its certificate and its signature.

    Parameters
    ----------
    node_id
        The advertising node.
    cipher_public_key
        X25519 public key for share encryption (32 bytes).
    mask_public_key
        X25519 public key for pairwise masks (32 bytes).
    self_mask_commitment
        SHA-256 of the session, the node and its self-mask seed ``b``: the coordinator checks the
        seed it rebuilds from revealed shares against it, so a holder that reveals a corrupted
        share cannot make it unmask a wrong sum (a 256-bit seed's hash reveals nothing of it).
    certificate
        The node's certificate, PEM.
    signature
        Over :meth:`signed_message`.
    """

    node_id: str
    cipher_public_key: bytes
    mask_public_key: bytes
    self_mask_commitment: bytes
    certificate: bytes
    signature: bytes

    def __post_init__(self) -> None:
        for name in ("cipher_public_key", "mask_public_key", "self_mask_commitment"):
            if len(getattr(self, name)) != PUBLIC_KEY_BYTES:
                raise SecureAggregationError(
                    f"The {name} advertised by {self.node_id!r} must be {PUBLIC_KEY_BYTES} bytes; "
                    f"got {len(getattr(self, name))} bytes."
                )
        if not 0 < len(self.certificate) <= MAX_CERTIFICATE_BYTES:
            raise SecureAggregationError(
                f"The certificate advertised by {self.node_id!r} must be 1 to "
                f"{MAX_CERTIFICATE_BYTES} bytes; got {len(self.certificate)} bytes."
            )
        if not 0 < len(self.signature) <= MAX_SIGNATURE_BYTES:
            raise SecureAggregationError(
                f"The signature advertised by {self.node_id!r} must be 1 to "
                f"{MAX_SIGNATURE_BYTES} bytes; got {len(self.signature)} bytes."
            )

    @staticmethod
    def signed_message(
        session: SessionId,
        node_id: str,
        cipher_public_key: bytes,
        mask_public_key: bytes,
        self_mask_commitment: bytes,
    ) -> bytes:
        """The bytes a node signs: length-prefixed session, node id, both keys, the commitment."""
        fields = (
            session.job_id.encode(),
            str(session.round_number).encode(),
            str(session.attempt).encode(),
            node_id.encode(),
            cipher_public_key,
            mask_public_key,
            self_mask_commitment,
        )
        return _SIGNED_PREFIX + b"".join(len(f).to_bytes(4, "big") + f for f in fields)

    def verify(self, session: SessionId, verifier: AdvertVerifier) -> None:
        """Check the certificate and signature for ``session``.

        Raises
        ------
        SecureAggregationError
            If the verifier refuses it: the keys were not advertised by this node for this
            session (substituted, replayed from another round, or signed by another identity).
        """
        verifier(
            node_id=self.node_id,
            certificate=self.certificate,
            message=self.signed_message(
                session,
                self.node_id,
                self.cipher_public_key,
                self.mask_public_key,
                self.self_mask_commitment,
            ),
            signature=self.signature,
        )
