"""Signatures made with a party's certificate key, checked with the certificate alone.

A party signs with the key of the certificate the federation CA issued it (``pki.IdentitySigner``
implements :class:`Signer`). What it signs carries the certificate (PEM), so anyone can check the
signature offline with :func:`check_signature`; whether the CA issued that certificate to the
party named is a separate check (``pki``). The audit log's checkpoints, the registry's passports
and edge bundles are all signed this way.

This module uses ``cryptography`` (a base dependency) besides the standard library.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sovereign_ai.errors import SignatureError

__all__ = ["Signer", "check_signature"]


class Signer(Protocol):
    """Signs with a party's certificate key; carries the certificate (PEM) to check it with."""

    @property
    def certificate(self) -> bytes:
        """The party's certificate, PEM."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A signature of ``message`` with the certificate's key."""
        ...


def check_signature(certificate_pem: bytes, message: bytes, signature: bytes) -> None:
    """Return if the key of ``certificate_pem`` signed ``message``.

    ECDSA with SHA-256 (the federation's certificates) and Ed25519 keys are accepted.

    Raises
    ------
    SignatureError
        If the certificate is unreadable, holds another kind of key, or the signature does not
        verify.
    """
    try:
        public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    except ValueError as exc:
        raise SignatureError(f"The signer's certificate is unreadable: {exc}.") from exc
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            raise SignatureError("The signer's certificate holds neither an EC nor an Ed25519 key.")
    except InvalidSignature as exc:
        raise SignatureError(
            "The signature does not verify with the signer's certificate."
        ) from exc
