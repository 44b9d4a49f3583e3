"""The administrator's provisioning folder: loading its CA and keeping the trust lists in step.

``ca/roster.json`` and ``ca/crl.pem`` are the originals; the coordinator kit holds copies, which
:func:`refresh_coordinator_copies` rewrites after every change (a running coordinator watches its
kit folder and re-reads them, so a change takes effect at a node's next call).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sovereign_ai.errors import ProvisioningError
from sovereign_ai.pki._kit_files import (
    CA_CERTIFICATE,
    CA_FOLDER,
    CA_KEY,
    COORDINATOR_FOLDER,
    CRL_FILE,
    ROSTER_FILE,
    read_kit_file,
    write_public_file,
)
from sovereign_ai.pki.ca import CertificateAuthority
from sovereign_ai.pki.certificates import (
    key_matches_certificate,
    read_certificate,
    read_private_key,
)
from sovereign_ai.pki.roster import Roster, read_json_model

__all__ = [
    "crl_to_pem",
    "load_authority",
    "provisioning_folder",
    "publish_trust_lists",
    "read_crl",
    "refresh_coordinator_copies",
    "write_trust_lists",
]


def provisioning_folder(path: Path) -> Path:
    """Return the provisioning folder for ``path``, which may also be its ``ca/`` subfolder."""
    path = Path(path)
    if path.name == CA_FOLDER and (path / CA_KEY).exists():
        return path.parent
    if not (path / CA_FOLDER / CA_KEY).exists():
        raise ProvisioningError(
            f"{path} is not a provisioning folder (no {CA_FOLDER}/{CA_KEY} in it); pass the "
            "--out folder that `sovereign provision` created."
        )
    return path


def load_authority(ca_folder: Path) -> tuple[CertificateAuthority, Roster]:
    """Load the CA (refusing a key others can read) and the roster from ``ca_folder``."""
    certificate_path, key_path = ca_folder / CA_CERTIFICATE, ca_folder / CA_KEY
    certificate_pem = read_kit_file(certificate_path)
    key_pem = read_kit_file(key_path, is_private=True)
    try:
        certificate = read_certificate(certificate_pem)
    except ValueError as exc:
        raise ProvisioningError(f"{certificate_path} is not a PEM certificate: {exc}") from exc
    try:
        key = read_private_key(key_pem)
    except ValueError as exc:
        raise ProvisioningError(f"{key_path} is not a usable private key: {exc}") from exc
    if not key_matches_certificate(key, certificate):
        raise ProvisioningError(f"{key_path} does not belong to {certificate_path}.")
    roster_path = ca_folder / ROSTER_FILE
    roster = read_json_model(Roster, read_kit_file(roster_path), source=str(roster_path))
    return CertificateAuthority(certificate=certificate, private_key=key), roster


def read_crl(path: Path) -> x509.CertificateRevocationList:
    """Read a PEM revocation list, naming ``path`` if it is not one."""
    try:
        return x509.load_pem_x509_crl(read_kit_file(path))
    except ValueError as exc:
        raise ProvisioningError(f"{path} is not a PEM certificate revocation list: {exc}") from exc


def write_trust_lists(folder: Path, *, roster: bytes, crl: bytes) -> None:
    """Write ``roster.json`` and ``crl.pem`` into ``folder``."""
    write_public_file(folder / ROSTER_FILE, roster)
    write_public_file(folder / CRL_FILE, crl)


def refresh_coordinator_copies(out_dir: Path) -> None:
    """Copy the CA folder's roster and CRL into the coordinator kit, if it is under ``out_dir``."""
    coordinator = out_dir / COORDINATOR_FOLDER
    if coordinator.is_dir():
        ca_folder = out_dir / CA_FOLDER
        write_trust_lists(
            coordinator,
            roster=read_kit_file(ca_folder / ROSTER_FILE),
            crl=read_kit_file(ca_folder / CRL_FILE),
        )


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    """Encode ``crl`` as PEM."""
    return crl.public_bytes(Encoding.PEM)


def publish_trust_lists(
    out_dir: Path,
    *,
    ca: CertificateAuthority,
    roster: Roster,
    is_crl_changed: bool,
    now: dt.datetime,
) -> None:
    """Write ``roster`` (and, if ``is_crl_changed``, a newly signed CRL) everywhere it is kept.

    The CRL is written first: should the run stop between the writes, whatever was revoked is
    already locked out. Then the coordinator kit's copies are refreshed.
    """
    ca_folder = out_dir / CA_FOLDER
    if is_crl_changed:
        previous = read_crl(ca_folder / CRL_FILE)
        number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        crl = ca.sign_crl(roster.revoked_serials(), crl_number=number + 1, now=now)
        write_public_file(ca_folder / CRL_FILE, crl_to_pem(crl))
    write_public_file(ca_folder / ROSTER_FILE, roster.to_json())
    refresh_coordinator_copies(out_dir)
