"""Writing one startup kit: certificate, (encrypted) private key, manifest and node template.

Shared by provisioning, enrolment and renewal, so every kit is laid out and protected alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import ConfigError
from sovereign_ai.pki._kit_files import (
    CA_CERTIFICATE,
    CERTIFICATE_FILES,
    KEY_FILES,
    MANIFEST_FILE,
    NODE_CONFIG_FILE,
    make_private_folder,
    write_private_file,
    write_public_file,
)
from sovereign_ai.pki.certificates import Role, certificate_to_pem, private_key_to_pem
from sovereign_ai.pki.passphrase import KeyEncryption
from sovereign_ai.pki.roster import KitManifest, Roster, RosterEntry

__all__ = [
    "check_key_protection",
    "node_manifest",
    "roster_entry",
    "write_kit",
    "write_kit_into_place",
    "write_kit_key",
]

logger = logging.getLogger("sovereign_ai.pki")

_NODE_CONFIG_TEMPLATE = """\
# Node configuration for {name!r} in federation {federation!r}.
#
# This file stays on your site and nothing in it is sent to the coordinator. The certificate,
# key and coordinator address come from the other files of this startup kit (kit.json).
# Keep node.key private: it proves to the coordinator that this site is {name!r}.

[node]
# Your local dataset (CSV, Parquet or NPZ). It is read on this machine only; raw records never
# leave it, only model updates do.
data = "path/to/your/data.csv"
# The column that holds the value to predict.
label = "label"
# The federation's class names in the agreed order, so every site numbers labels alike (a site
# may hold only some of them). Without it, the sorted labels found in your file are used.
# classes = ["benign", "malignant"]
"""


def check_key_protection(
    key_encryption: KeyEncryption | None, *, allow_unencrypted_keys: bool, caller: str
) -> None:
    """Refuse to write unencrypted keys unless explicitly allowed, and warn when it is.

    Raises
    ------
    ConfigError
        If ``key_encryption`` is ``None`` and ``allow_unencrypted_keys`` is false.
    """
    if key_encryption is not None:
        return
    if not allow_unencrypted_keys:
        raise ConfigError(
            f"The 'key_encryption' parameter of {caller} must be a KeyEncryption: private keys "
            "in kits are encrypted at rest; got None instead. Pass allow_unencrypted_keys=True "
            "to write unencrypted keys (tests and demos only)."
        )
    logger.warning(
        "INSECURE: %s writes private keys UNENCRYPTED (protected by file mode 0600 only). "
        "Use allow_unencrypted_keys=True only in tests and demos.",
        caller,
    )


def roster_entry(name: str, certificate: x509.Certificate) -> RosterEntry:
    """The roster entry that pins ``certificate`` as ``name``'s."""
    return RosterEntry(
        name=name,
        serial_number=certificate.serial_number,
        not_after=certificate.not_valid_after_utc,
    )


def node_manifest(
    roster: Roster, *, name: str, issued_at: dt.datetime, key_encryption: KeyEncryption | None
) -> KitManifest:
    """The ``kit.json`` of node ``name``."""
    return KitManifest(
        role=Role.NODE,
        federation=roster.federation,
        name=name,
        coordinator_address=roster.coordinator_address,
        issued_at=issued_at,
        key_passphrase=key_encryption.source if key_encryption else None,
    )


def write_kit_key(
    folder: Path,
    role: Role,
    key: ec.EllipticCurvePrivateKey,
    *,
    key_encryption: KeyEncryption | None,
) -> None:
    """Write the kit's private key, encrypted if ``key_encryption`` is given, mode ``0600``."""
    passphrase = key_encryption.passphrase if key_encryption else None
    write_private_file(folder / KEY_FILES[role], private_key_to_pem(key, passphrase=passphrase))


def write_kit(
    folder: Path,
    *,
    ca_certificate: x509.Certificate,
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey,
    manifest: KitManifest,
    key_encryption: KeyEncryption | None,
) -> None:
    """Write a whole kit into ``folder`` (created ``0700``); the manifest last."""
    make_private_folder(folder)
    write_public_file(folder / CA_CERTIFICATE, certificate_to_pem(ca_certificate))
    write_public_file(folder / CERTIFICATE_FILES[manifest.role], certificate_to_pem(certificate))
    write_kit_key(folder, manifest.role, private_key, key_encryption=key_encryption)
    if manifest.role is Role.NODE and not (folder / NODE_CONFIG_FILE).exists():
        config = _NODE_CONFIG_TEMPLATE.format(name=manifest.name, federation=manifest.federation)
        write_public_file(folder / NODE_CONFIG_FILE, config.encode())
    write_public_file(folder / MANIFEST_FILE, manifest.to_json())


def write_kit_into_place(
    folder: Path,
    *,
    ca_certificate: x509.Certificate,
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey,
    manifest: KitManifest,
    key_encryption: KeyEncryption | None,
) -> None:
    """As :func:`write_kit`, into a staging folder renamed to ``folder`` once complete.

    ``folder`` must not exist; on failure nothing is left behind.
    """
    make_private_folder(folder.parent)
    staging = Path(
        tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial")
    )
    try:
        write_kit(
            staging,
            ca_certificate=ca_certificate,
            certificate=certificate,
            private_key=private_key,
            manifest=manifest,
            key_encryption=key_encryption,
        )
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
