"""Pairwise key agreement: X25519 Diffie-Hellman stretched with HKDF-SHA256.

Every pair of nodes in a secure-aggregation round derives two 256-bit keys without the coordinator
learning either: one seeds the pairwise mask, the other encrypts the secret shares the two send each
other through the coordinator (Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS 2017, §4 "KA.agree"; Bell et al., "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020, §3). The Diffie-Hellman function is X25519
(RFC 7748) and the key-derivation function HKDF-SHA256 (RFC 5869), both from ``cryptography``.

The raw X25519 output is never used as a key. HKDF's ``info`` binds the derived key to its
context — the job, the round, the two node ids in a canonical (sorted) order, and the purpose — so
a key derived for one round or one purpose is useless for any other, and both ends of a pair
derive the same key whichever of them computes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovereign_ai.errors import ConfigError, SecureAggregationError

__all__ = [
    "KEY_BYTES",
    "PUBLIC_KEY_BYTES",
    "KeyPair",
    "KeyPurpose",
    "PairContext",
    "derive_pair_key",
]

KEY_BYTES = 32
"""Length of every derived key: 256 bits (AES-256 and the mask generator's seed)."""

PUBLIC_KEY_BYTES = 32
"""Length of a raw X25519 public key (RFC 7748 §5)."""

_INFO_PREFIX = b"sovereign-ai/secagg/key-agreement/v1"


class KeyPurpose(StrEnum):
    """What a derived pairwise key is for; keys for different purposes are independent."""

    MASK = "mask"
    SHARE_ENCRYPTION = "share-encryption"


@dataclass(frozen=True)
class PairContext:
    """Everything a pairwise key is bound to.

    Parameters
    ----------
    job_id
        The job the round belongs to.
    round_number
        The round; keys are fresh in every round.
    node_a, node_b
        The two nodes of the pair, in either order (the derivation sorts them).
    purpose
        What the key is for.
    """

    job_id: str
    round_number: int
    node_a: str
    node_b: str
    purpose: KeyPurpose

    def __post_init__(self) -> None:
        if self.node_a == self.node_b:
            raise ConfigError(
                "The 'node_a' and 'node_b' parameters of PairContext must name two different "
                f"nodes; got {self.node_a!r} twice instead."
            )
        if self.round_number < 0:
            raise ConfigError(
                "The 'round_number' parameter of PairContext must be >= 0; "
                f"got {self.round_number!r} instead."
            )

    def info(self) -> bytes:
        """The HKDF ``info`` string: length-prefixed fields, node ids in sorted order."""
        low, high = sorted((self.node_a, self.node_b))
        fields = (str(self.purpose), self.job_id, str(self.round_number), low, high)
        encoded = [_INFO_PREFIX]
        for text in fields:
            raw = text.encode("utf-8")
            # Length prefixes make the encoding injective: ("ab", "c") != ("a", "bc").
            encoded.append(len(raw).to_bytes(4, "big") + raw)
        return b"".join(encoded)


@dataclass(frozen=True)
class KeyPair:
    """One node's X25519 key pair for one round.

    Parameters
    ----------
    private_key
        The secret half; never leaves the node (its seed is secret-shared in SecAgg+'s
        pairwise-key share, which is why keys are fresh per round).
    public_key
        The raw 32-byte public key the node advertises.
    """

    private_key: X25519PrivateKey = field(repr=False)
    public_key: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the operating system's random source."""
        return cls.from_private_bytes(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> KeyPair:
        """Rebuild a key pair from its raw 32-byte private key (e.g. one reconstructed from shares).

        Raises
        ------
        SecureAggregationError
            If ``private_bytes`` is not 32 bytes.
        """
        if len(private_bytes) != KEY_BYTES:
            raise SecureAggregationError(
                f"An X25519 private key is {KEY_BYTES} bytes; got {len(private_bytes)} bytes."
            )
        private_key = X25519PrivateKey.from_private_bytes(private_bytes)
        public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private_key=private_key, public_key=public_key)

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key, to be secret-shared (never sent in the clear)."""
        return self.private_key.private_bytes_raw()


def derive_pair_key(own: KeyPair, peer_public_key: bytes, *, context: PairContext) -> bytes:
    """Derive the 256-bit key this node shares with a peer in ``context``.

    Parameters
    ----------
    own
        This node's key pair.
    peer_public_key
        The peer's advertised raw X25519 public key.
    context
        The job, round, pair and purpose the key is bound to.

    Returns
    -------
    bytes
        ``KEY_BYTES`` bytes; the peer derives the same bytes from its own key pair and this node's
        public key with the same context (node order does not matter).

    Raises
    ------
    SecureAggregationError
        If the peer's public key is not 32 bytes or is a low-order point (the shared secret would
        be all zeros, so the "key" would be public).
    """
    if len(peer_public_key) != PUBLIC_KEY_BYTES:
        raise SecureAggregationError(
            f"A peer's X25519 public key must be {PUBLIC_KEY_BYTES} bytes; "
            f"got {len(peer_public_key)} bytes. The advertised key is malformed."
        )
    try:
        shared = own.private_key.exchange(X25519PublicKey.from_public_bytes(peer_public_key))
    except ValueError as exc:  # cryptography refuses an all-zero shared secret
        raise SecureAggregationError(
            "A peer's X25519 public key is a low-order point: the shared secret would be public. "
            "Refuse this peer's advertised key."
        ) from exc
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=context.info()).derive(
        shared
    )
