"""Certificates the provisioning tool would never issue, signed with a test federation's CA key.

Expired certificates, nodes missing from the roster, node certificates that can serve TLS, and a
coordinator certificate that may also act as a TLS client: the transport's refusals are tested
against these.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
NOW = dt.datetime.now(dt.UTC)


def _ca(out_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    certificate = x509.load_pem_x509_certificate((out_dir / "ca" / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((out_dir / "ca" / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return certificate, key


def issue(
    out_dir: Path,
    *,
    role: str,
    name: str,
    usages: Sequence[x509.ObjectIdentifier],
    hosts: Sequence[str] = (),
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=30),
) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA in ``out_dir``; returns (certificate PEM, key PEM)."""
    ca, ca_key = _ca(out_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"sovereign://{role}/{name}")]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    federation = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(federation)),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def kit_with(
    out_dir: Path, base: str, *, name: str, certificate: bytes, key: bytes, into: Path
) -> Path:
    """A copy of the kit ``out_dir/base`` holding another certificate (and name in kit.json)."""
    folder = into / f"kit-{uuid.uuid4().hex[:8]}"
    shutil.copytree(out_dir / base, folder)
    role = json.loads((folder / "kit.json").read_text())["role"]
    (folder / f"{role}.pem").write_bytes(certificate)
    key_path = folder / f"{role}.key"
    key_path.unlink()
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    manifest = json.loads((folder / "kit.json").read_text())
    manifest["name"] = name
    (folder / "kit.json").write_text(json.dumps(manifest))
    return folder
