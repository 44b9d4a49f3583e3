"""Authenticated encryption of secret shares between two nodes, relayed by the coordinator.

In the share-keys stage each node sends every neighbour its shares of its own secrets through the
coordinator, encrypted under the pair's share-encryption key so the coordinator can neither read
nor alter them (Bonawitz et al., CCS 2017, §4 "AE.enc"/"AE.dec"; Bell et al., CCS 2020, §3). The
scheme is AES-256-GCM (NIST SP 800-38D) from ``cryptography`` with a fresh random 96-bit nonce
per message. The associated data binds the ciphertext to the job, the round, and the *ordered*
(sender, recipient) pair: a share replayed into another round, or sent back to its sender as if
it came from the recipient, fails authentication.

Wire format: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovereign_ai.errors import ConfigError, ShareAuthenticationError

__all__ = ["NONCE_BYTES", "TAG_BYTES", "ShareBinding", "decrypt_share", "encrypt_share"]

NONCE_BYTES = 12
"""AES-GCM nonce length (the 96 bits SP 800-38D recommends)."""

TAG_BYTES = 16
"""AES-GCM authentication tag length."""

_AD_PREFIX = b"sovereign-ai/secagg/share-encryption/v1"
_KEY_BYTES = 32


@dataclass(frozen=True)
class ShareBinding:
    """What an encrypted share is bound to; the recipient must name the same to decrypt it.

    Parameters
    ----------
    job_id
        The job.
    round_number
        The round.
    sender_id
        The node whose secret the share belongs to.
    recipient_id
        The node meant to hold the share.
    """

    job_id: str
    round_number: int
    sender_id: str
    recipient_id: str

    def associated_data(self) -> bytes:
        """The AES-GCM associated data: length-prefixed fields in a fixed order."""
        fields = (self.job_id, str(self.round_number), self.sender_id, self.recipient_id)
        encoded = [_AD_PREFIX]
        for text in fields:
            raw = text.encode("utf-8")
            encoded.append(len(raw).to_bytes(4, "big") + raw)
        return b"".join(encoded)


def _cipher(key: bytes) -> AESGCM:
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"The 'key' of share encryption must be {_KEY_BYTES} bytes (AES-256); "
            f"got {len(key)} bytes instead."
        )
    return AESGCM(key)


def encrypt_share(key: bytes, plaintext: bytes, *, binding: ShareBinding) -> bytes:
    """Encrypt and authenticate ``plaintext`` for ``binding.recipient_id``.

    Parameters
    ----------
    key
        The pair's 32-byte share-encryption key (:func:`derive_pair_key` with
        ``KeyPurpose.SHARE_ENCRYPTION``).
    plaintext
        The serialised shares.
    binding
        Job, round, sender and recipient.

    Returns
    -------
    bytes
        ``nonce || ciphertext || tag``.
    """
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher(key).encrypt(nonce, plaintext, binding.associated_data())


def decrypt_share(key: bytes, message: bytes, *, binding: ShareBinding) -> bytes:
    """Verify and decrypt a message made by :func:`encrypt_share`.

    Raises
    ------
    ShareAuthenticationError
        If the message was altered, truncated, encrypted under another key, or bound to another
        job, round, sender or recipient. The sender (or the relay) must then be treated as
        faulty; the plaintext is never returned unverified.
    """
    cipher = _cipher(key)
    if len(message) < NONCE_BYTES + TAG_BYTES:
        raise ShareAuthenticationError(
            f"An encrypted share from {binding.sender_id!r} to {binding.recipient_id!r} is "
            f"{len(message)} bytes, shorter than a nonce and tag ({NONCE_BYTES + TAG_BYTES}); "
            "it was truncated."
        )
    nonce, sealed = message[:NONCE_BYTES], message[NONCE_BYTES:]
    try:
        return cipher.decrypt(nonce, sealed, binding.associated_data())
    except InvalidTag as exc:
        raise ShareAuthenticationError(
            f"The encrypted share from {binding.sender_id!r} to {binding.recipient_id!r} "
            f"(job {binding.job_id!r}, round {binding.round_number}) failed authentication: it "
            "was tampered with, replayed from another round or pair, or encrypted under another "
            "key. Treat the sender as faulty."
        ) from exc
