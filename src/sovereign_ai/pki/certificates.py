"""What a federation certificate says about its holder, and how to read one.

Every leaf certificate names its holder's *role* three ways, and :func:`certificate_identity`
requires all three to agree, so a node certificate never passes as the coordinator's or vice versa:

- subject ``OU`` is ``"coordinator"`` or ``"node"`` and ``CN`` is the holder's name;
- a URI subject alternative name ``sovereign://<role>/<name>``;
- the extended key usage: ``serverAuth`` for the coordinator, ``clientAuth`` for nodes (nodes always
  dial out, so a node never acts as a TLS server).

The coordinator's certificate may also carry the *jurisdiction* it operates under, as the
federation file's ``[coordinator] jurisdiction`` states it (subject ``jurisdictionCountryName``,
a two-letter code, e.g. ``DE`` or ``EU``): the CA attests it, so a node's policy can require it
without taking the coordinator's word (:func:`certificate_jurisdiction`).

Keys are ECDSA on P-256 with SHA-256 signatures: the one choice every TLS stack a federation meets
(OpenSSL in Python's ``ssl``, BoringSSL in gRPC) accepts in both the server and the client role.
Ed25519 certificates are still refused by parts of that stack.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateIdentity",
    "Role",
    "certificate_fingerprint",
    "certificate_identity",
    "certificate_jurisdiction",
]

URI_SCHEME = "sovereign"


class Role(StrEnum):
    """Which part a certificate's holder plays in the federation."""

    COORDINATOR = "coordinator"
    NODE = "node"


ROLE_KEY_USAGE = {
    Role.COORDINATOR: ExtendedKeyUsageOID.SERVER_AUTH,
    Role.NODE: ExtendedKeyUsageOID.CLIENT_AUTH,
}
"""The extended key usage a certificate of each role must allow."""

ISSUED_KEY_USAGES = {
    # clientAuth too, so the coordinator's operator can ask it for its status over mTLS with the
    # coordinator's own kit. The role is the OU and URI name, so this does not make it a node.
    Role.COORDINATOR: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    Role.NODE: [ExtendedKeyUsageOID.CLIENT_AUTH],
}
"""The extended key usages issued to each role."""


def role_uri(role: Role, name: str) -> str:
    """Return the URI SAN that marks ``name`` as holding ``role``, e.g. ``sovereign://node/a``."""
    return f"{URI_SCHEME}://{role.value}/{name}"


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """Return a fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def random_serial_number() -> int:
    """Return a random positive 159-bit serial number (RFC 5280 allows at most 20 octets)."""
    return secrets.randbits(159) | 1 << 158  # top bit set: always 20 octets when DER-encoded


def certificate_to_pem(certificate: x509.Certificate) -> bytes:
    """Encode ``certificate`` as PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_to_pem(
    key: ec.EllipticCurvePrivateKey, *, passphrase: bytes | None = None
) -> bytes:
    """Encode ``key`` as PKCS#8 PEM, encrypted with ``passphrase`` if one is given.

    Encryption is ``cryptography``'s ``BestAvailableEncryption``: PBES2 with PBKDF2-HMAC-SHA256
    and AES-256-CBC, which OpenSSL reads too (``openssl pkey -in node.key``). Without a
    passphrase the PEM is unencrypted: that is what a loaded kit hands to the TLS stack, in memory.
    """
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if passphrase is None
        else serialization.BestAvailableEncryption(passphrase)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def is_encrypted_pem(data: bytes) -> bool:
    """Return whether ``data`` is a passphrase-encrypted PEM private key (PKCS#8 or legacy)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def key_matches_certificate(key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> bool:
    """Return whether ``key`` is the private half of ``certificate``'s public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    return mine == certificate.public_key().public_bytes(serialization.Encoding.DER, spki)


def read_certificate(data: bytes | x509.Certificate) -> x509.Certificate:
    """Parse a certificate given as PEM or DER bytes (or pass a parsed one through).

    Raises
    ------
    ValueError
        If ``data`` is neither a PEM nor a DER certificate. Callers translate this into the error
        that fits them (:class:`~sovereign_ai.errors.ProvisioningError` for a kit file,
        :class:`~sovereign_ai.errors.AuthenticationError` for a peer's certificate).
    """
    if isinstance(data, x509.Certificate):
        return data
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def read_private_key(data: bytes, *, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Parse a PEM private key that must be ECDSA, decrypting it with ``passphrase`` if given.

    Raises
    ------
    ValueError
        If ``data`` is not a PEM private key, is encrypted while no passphrase is given (or the
        reverse), the passphrase does not decrypt it, or it is not an elliptic-curve key.
    """
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # a passphrase for a plain key, or none for an encrypted one
        state = "not encrypted" if passphrase is not None else "encrypted"
        raise ValueError(f"the key is {state} ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"expected an ECDSA private key; got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class CertificateIdentity:
    """The role and name a certificate claims, once all markers agree."""

    role: Role
    name: str


def _subject_value(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = certificate.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


def certificate_identity(certificate: x509.Certificate) -> CertificateIdentity:
    """Return the role and name ``certificate`` claims, requiring every marker to agree.

    Raises
    ------
    ValueError
        Saying which marker is missing or disagrees. This inspects the certificate only; it does
        not check who signed it (see :mod:`sovereign_ai.pki.identity`).
    """
    unit = _subject_value(certificate, NameOID.ORGANIZATIONAL_UNIT_NAME)
    name = _subject_value(certificate, NameOID.COMMON_NAME)
    if unit not in {role.value for role in Role} or name is None:
        raise ValueError(
            f"subject {certificate.subject.rfc4514_string()!r} carries no federation role "
            "(expected OU=coordinator or OU=node and one CN)"
        )
    role = Role(unit)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ValueError(f"the {role.value} certificate lacks {exc.oid._name}") from exc
    uris = [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier)]
    role_uris = [uri for uri in uris if uri.startswith(f"{URI_SCHEME}://")]
    if role_uris != [role_uri(role, name)]:
        raise ValueError(
            f"subject says {role.value} {name!r} but the URI names say {role_uris!r}; "
            f"expected exactly [{role_uri(role, name)!r}]"
        )
    if ROLE_KEY_USAGE[role] not in eku:
        raise ValueError(
            f"a {role.value} certificate must allow {ROLE_KEY_USAGE[role]._name}; "
            f"its extended key usage is {[usage._name for usage in eku]}"
        )
    return CertificateIdentity(role=role, name=name)


def certificate_fingerprint(certificate: bytes | x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes (given as PEM or DER), as 64 lowercase hex digits.

    The same digest as ``openssl x509 -noout -fingerprint -sha256`` prints (there in capitals,
    with colons). A renewed certificate has a new one, even for the same key.

    Raises
    ------
    ValueError
        If ``certificate`` is not a PEM or DER certificate.
    """
    der = read_certificate(certificate).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def certificate_jurisdiction(certificate: bytes | x509.Certificate) -> str | None:
    """The jurisdiction the CA certified for the holder (``jurisdictionCountryName``), if any.

    Returns ``None`` when the certificate carries none, or more than one.

    Raises
    ------
    ValueError
        If ``certificate`` is not a PEM or DER certificate.
    """
    return _subject_value(read_certificate(certificate), NameOID.JURISDICTION_COUNTRY_NAME)
