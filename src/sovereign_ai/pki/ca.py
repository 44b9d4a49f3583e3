"""The federation certificate authority: issues coordinator and node certificates and signs the CRL.

The CA is a self-signed ECDSA P-256 certificate with ``BasicConstraints(ca=True, path_length=0)``:
it signs leaf certificates only, never another CA. Every certificate it issues carries subject and
authority key identifiers, so it also passes OpenSSL's strict X.509 checks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki.certificates import (
    ISSUED_KEY_USAGES,
    Role,
    generate_private_key,
    random_serial_number,
    role_uri,
)

__all__ = ["CertificateAuthority", "IssuedCertificate", "RevokedSerial"]

CLOCK_SKEW = dt.timedelta(minutes=5)
"""Certificates start this long before issuance, so a peer whose clock lags a bit accepts them."""


def resolve_now(now: dt.datetime | None) -> dt.datetime:
    """Return ``now``, or the current time in UTC if it is ``None``.

    Raises
    ------
    ConfigError
        If ``now`` is a naive datetime: certificate times are UTC and cannot be compared with it.
    """
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"'now' must be timezone-aware (e.g. in UTC); got {now!r} instead.")
    return now


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly issued certificate and the private key that goes with it."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class RevokedSerial:
    """One CRL entry: which certificate was revoked, and when."""

    serial_number: int
    revoked_at: dt.datetime


@dataclass(frozen=True)
class CertificateAuthority:
    """A federation CA: its certificate and signing key.

    Parameters
    ----------
    certificate
        The self-signed CA certificate every party trusts.
    private_key
        The CA's signing key. It never leaves the provisioning machine's ``ca/`` folder.
    """

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls, federation: str, *, validity_days: int, now: dt.datetime | None = None
    ) -> CertificateAuthority:
        """Create a new self-signed CA for ``federation``, valid for ``validity_days``."""
        start = resolve_now(now)
        key = generate_private_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} federation CA"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(random_serial_number())
            .not_valid_before(start - CLOCK_SKEW)
            .not_valid_after(start + dt.timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(is_ca=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate=certificate, private_key=key)

    @property
    def federation(self) -> str:
        """The federation name, from the CA subject's ``O``."""
        values = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(values[0].value) if values else ""

    @property
    def not_after(self) -> dt.datetime:
        """When the CA certificate expires (UTC)."""
        return self.certificate.not_valid_after_utc

    def issue(
        self,
        role: Role,
        name: str,
        *,
        validity_days: int,
        hosts: Sequence[str] = (),
        jurisdiction: str | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a certificate for the coordinator or a node, with a fresh private key.

        Parameters
        ----------
        role
            :attr:`Role.COORDINATOR` (``serverAuth``) or :attr:`Role.NODE` (``clientAuth``).
        name
            The holder's name; becomes ``CN`` and part of the ``sovereign://`` URI name.
        validity_days
            Lifetime. It is cut short at the CA's own expiry, since no certificate may outlive it.
        hosts
            DNS names and IP addresses for the subject alternative name. Required for the
            coordinator (nodes check the address they dial against them); unused for nodes.
        jurisdiction
            The jurisdiction the holder operates under, a two-letter code (``"DE"``, ``"EU"``),
            written into the subject as ``jurisdictionCountryName`` (nodes' policies read it).
        now
            Issuance time; defaults to the current time. Tests use it to issue expired certificates.

        Raises
        ------
        ProvisioningError
            If the CA has expired at ``now``, or a coordinator certificate has no hosts.
        """
        key = generate_private_key()
        certificate = self.certify(
            role,
            name,
            public_key=key.public_key(),
            validity_days=validity_days,
            hosts=hosts,
            jurisdiction=jurisdiction,
            now=now,
        )
        return IssuedCertificate(certificate=certificate, private_key=key)

    def certify(
        self,
        role: Role,
        name: str,
        *,
        public_key: ec.EllipticCurvePublicKey,
        validity_days: int,
        hosts: Sequence[str] = (),
        jurisdiction: str | None = None,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a certificate for a key the holder already has (renewal without a new key).

        Parameters are those of :meth:`issue`, plus the ``public_key`` to certify.

        Raises
        ------
        ProvisioningError
            As :meth:`issue`, or if ``jurisdiction`` is not two capital letters.
        """
        start = resolve_now(now)
        if start >= self.not_after:
            raise ProvisioningError(
                f"The federation CA expired on {self.not_after:%Y-%m-%d}; it cannot issue "
                "certificates. Provision a new federation."
            )
        if role is Role.COORDINATOR and not hosts:
            raise ProvisioningError("A coordinator certificate needs at least one host name.")
        alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(role_uri(role, name))]
        for host in hosts:
            alt_names.append(_host_name(host))
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.federation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
        if jurisdiction is not None:
            if not (len(jurisdiction) == 2 and jurisdiction.isascii() and jurisdiction.isupper()):
                raise ProvisioningError(
                    f"A jurisdiction must be two capital letters (e.g. 'DE', 'EU'); got "
                    f"{jurisdiction!r}."
                )
            attributes.append(x509.NameAttribute(NameOID.JURISDICTION_COUNTRY_NAME, jurisdiction))
        subject = x509.Name(attributes)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial_number())
            .not_valid_before(start - CLOCK_SKEW)
            .not_valid_after(min(start + dt.timedelta(days=validity_days), self.not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(is_ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(ISSUED_KEY_USAGES[role]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )

    def sign_crl(
        self,
        revoked: Iterable[RevokedSerial],
        *,
        crl_number: int,
        now: dt.datetime | None = None,
    ) -> x509.CertificateRevocationList:
        """Sign a certificate revocation list naming every serial in ``revoked``.

        The list is valid until the CA itself expires, so an unattended coordinator never finds it
        stale; a newer list (higher ``crl_number``) replaces it whenever a node is revoked.
        """
        issued_at = resolve_now(now)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(issued_at - CLOCK_SKEW)
            .next_update(self.not_after)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial_number)
                .revocation_date(entry.revoked_at)
                .build()
            )
        return builder.sign(self.private_key, hashes.SHA256())


def _key_usage(*, is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
