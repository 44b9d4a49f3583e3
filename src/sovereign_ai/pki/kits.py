"""Provisioning: create a federation's CA and startup kits, and enrol nodes later.

A provisioning folder (``--out``) holds the CA (which stays with the administrator) and one startup
kit per party, ready to be copied to the machine that runs it::

    out/ca/                ca.pem  ca.key  roster.json  crl.pem
    out/coordinator/       ca.pem  coordinator.pem  coordinator.key  roster.json  crl.pem  kit.json
    out/nodes/<name>/      ca.pem  node.pem  node.key  kit.json  node.toml

:func:`provision` builds the whole folder next to its destination and renames it into place, so an
interrupted run leaves nothing behind. :func:`add_node` writes only the new node's kit and the
roster; no other certificate is re-issued. Revocation lives in :mod:`sovereign_ai.pki.revocation`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki._ca_folder import (
    crl_to_pem,
    load_authority,
    provisioning_folder,
    refresh_coordinator_copies,
    write_trust_lists,
)
from sovereign_ai.pki._kit_files import (
    CA_CERTIFICATE,
    CA_FOLDER,
    CA_KEY,
    COORDINATOR_FOLDER,
    NODES_FOLDER,
    ROSTER_FILE,
    make_private_folder,
    write_private_file,
    write_public_file,
)
from sovereign_ai.pki._kit_writer import (
    check_key_protection,
    node_manifest,
    roster_entry,
    write_kit,
    write_kit_into_place,
)
from sovereign_ai.pki.ca import CertificateAuthority, IssuedCertificate, resolve_now
from sovereign_ai.pki.certificates import Role, certificate_to_pem, private_key_to_pem
from sovereign_ai.pki.federation_file import FederationSpec, check_name
from sovereign_ai.pki.passphrase import KeyEncryption
from sovereign_ai.pki.roster import KitManifest, Roster

__all__ = ["IssuedKit", "ProvisionReport", "add_node", "provision"]


@dataclass(frozen=True)
class IssuedKit:
    """A startup kit that provisioning wrote.

    Parameters
    ----------
    role
        Whose kit it is.
    name
        The coordinator's or node's name.
    folder
        Where the kit was written.
    serial_number
        Serial number of the kit's certificate.
    not_after
        When the kit's certificate expires (UTC).
    """

    role: Role
    name: str
    folder: Path
    serial_number: int
    not_after: dt.datetime


@dataclass(frozen=True)
class ProvisionReport:
    """What :func:`provision` created.

    Parameters
    ----------
    federation
        The federation's name.
    out_dir
        The provisioning folder.
    ca_folder
        The CA folder; it holds the CA key and must stay with the administrator.
    ca_not_after
        When the CA expires (UTC); no certificate outlives it.
    kits
        The coordinator's kit first, then one kit per node in the order of the federation file.
    """

    federation: str
    out_dir: Path
    ca_folder: Path
    ca_not_after: dt.datetime
    kits: tuple[IssuedKit, ...]


def provision(
    spec: FederationSpec,
    out_dir: Path,
    *,
    key_encryption: KeyEncryption | None = None,
    allow_unencrypted_keys: bool = False,
    now: dt.datetime | None = None,
) -> ProvisionReport:
    """Create a federation's CA, the coordinator's kit and one kit per node in ``out_dir``.

    Parameters
    ----------
    spec
        The validated federation file.
    out_dir
        Destination; must not exist yet or be empty. Keys are never overwritten.
    key_encryption
        The passphrase that encrypts every kit's private key, and where the parties will find it
        (recorded in each ``kit.json``). Required unless ``allow_unencrypted_keys``.
    allow_unencrypted_keys
        Write unencrypted keys (file mode 0600 only); logs a warning. Tests and demos only.
    now
        Issuance time; defaults to the current time.

    Returns
    -------
    ProvisionReport
        The folders and certificates created.

    Raises
    ------
    ConfigError
        If neither ``key_encryption`` nor ``allow_unencrypted_keys`` is given.
    ProvisioningError
        If ``out_dir`` is not empty, or anything cannot be written (then nothing is left behind).
    """
    check_key_protection(
        key_encryption, allow_unencrypted_keys=allow_unencrypted_keys, caller="provision"
    )
    issued_at = resolve_now(now)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ProvisioningError(
            f"{out_dir} already exists and is not empty; provisioning never overwrites a "
            "federation's keys. Choose a new --out folder, or enrol more nodes into this one "
            f"with `sovereign provision add-node NAME --out {out_dir}`."
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial")
    )
    try:
        report = _provision_into(spec, staging, issued_at=issued_at, key_encryption=key_encryption)
        staging.replace(out_dir)  # atomic; also replaces an empty out_dir
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    kits = tuple(
        IssuedKit(
            role=kit.role,
            name=kit.name,
            folder=out_dir / kit.folder.relative_to(staging),
            serial_number=kit.serial_number,
            not_after=kit.not_after,
        )
        for kit in report.kits
    )
    return ProvisionReport(
        federation=report.federation,
        out_dir=out_dir,
        ca_folder=out_dir / CA_FOLDER,
        ca_not_after=report.ca_not_after,
        kits=kits,
    )


def _provision_into(
    spec: FederationSpec,
    root: Path,
    *,
    issued_at: dt.datetime,
    key_encryption: KeyEncryption | None,
) -> ProvisionReport:
    federation = spec.federation.name
    ca = CertificateAuthority.create(
        federation, validity_days=spec.federation.ca_validity_days, now=issued_at
    )
    validity_days = spec.federation.validity_days
    coordinator = ca.issue(
        Role.COORDINATOR,
        spec.coordinator.name,
        validity_days=validity_days,
        hosts=spec.coordinator.hosts,
        jurisdiction=spec.coordinator.jurisdiction,
        now=issued_at,
    )
    nodes = {
        node.name: ca.issue(Role.NODE, node.name, validity_days=validity_days, now=issued_at)
        for node in spec.nodes
    }
    roster = Roster(
        federation=federation,
        coordinator_address=spec.coordinator.address,
        validity_days=validity_days,
        coordinator=roster_entry(spec.coordinator.name, coordinator.certificate),
        nodes=tuple(roster_entry(name, issued.certificate) for name, issued in nodes.items()),
    )
    crl = ca.sign_crl((), crl_number=1, now=issued_at)

    make_private_folder(root / CA_FOLDER)
    write_public_file(root / CA_FOLDER / CA_CERTIFICATE, certificate_to_pem(ca.certificate))
    write_private_file(root / CA_FOLDER / CA_KEY, private_key_to_pem(ca.private_key))
    write_trust_lists(root / CA_FOLDER, roster=roster.to_json(), crl=crl_to_pem(crl))
    manifest = KitManifest(
        role=Role.COORDINATOR,
        federation=federation,
        name=spec.coordinator.name,
        coordinator_address=spec.coordinator.address,
        issued_at=issued_at,
        hosts=spec.coordinator.hosts,
        key_passphrase=key_encryption.source if key_encryption else None,
    )
    folder = root / COORDINATOR_FOLDER
    _write(folder, ca=ca, issued=coordinator, manifest=manifest, key_encryption=key_encryption)
    kits = [_issued_kit(folder, manifest=manifest, issued=coordinator)]
    write_trust_lists(folder, roster=roster.to_json(), crl=crl_to_pem(crl))
    make_private_folder(root / NODES_FOLDER)
    for name, issued in nodes.items():
        manifest = node_manifest(
            roster, name=name, issued_at=issued_at, key_encryption=key_encryption
        )
        folder = root / NODES_FOLDER / name
        _write(folder, ca=ca, issued=issued, manifest=manifest, key_encryption=key_encryption)
        kits.append(_issued_kit(folder, manifest=manifest, issued=issued))
    return ProvisionReport(
        federation=federation,
        out_dir=root,
        ca_folder=root / CA_FOLDER,
        ca_not_after=ca.not_after,
        kits=tuple(kits),
    )


def add_node(
    out_dir: Path,
    name: str,
    *,
    key_encryption: KeyEncryption | None = None,
    allow_unencrypted_keys: bool = False,
    validity_days: int | None = None,
    now: dt.datetime | None = None,
) -> IssuedKit:
    """Enrol one more node into an existing federation, re-issuing nobody else.

    Writes ``out_dir/nodes/<name>/`` and adds the node to the roster (``ca/roster.json`` and the
    coordinator kit's copy). Copy the updated ``roster.json`` to the coordinator's machine if its
    kit lives there, or the coordinator will refuse the new node.

    Parameters
    ----------
    out_dir
        The provisioning folder (or its ``ca/`` subfolder).
    name
        The new node's name, a lowercase DNS label not yet enrolled.
    key_encryption
        Encrypts the new node's private key; see :func:`provision`.
    allow_unencrypted_keys
        Write the key unencrypted (tests and demos only); see :func:`provision`.
    validity_days
        Lifetime of the new certificate; defaults to the federation's.
    now
        Issuance time; defaults to the current time.

    Raises
    ------
    ConfigError
        If ``name`` is not a valid node name, or the key would be unencrypted without
        ``allow_unencrypted_keys``.
    ProvisioningError
        If the node is already enrolled, or the CA folder cannot be read or written.
    """
    check_key_protection(
        key_encryption, allow_unencrypted_keys=allow_unencrypted_keys, caller="add_node"
    )
    out_dir = provisioning_folder(out_dir)
    try:
        check_name(name)
    except ValueError as exc:
        raise ConfigError(f"The node name {exc}.") from None
    if validity_days is not None and validity_days < 1:
        raise ConfigError(f"'validity_days' must be >= 1; got {validity_days!r} instead.")
    ca, roster = load_authority(out_dir / CA_FOLDER)
    existing = roster.node(name)
    if existing is not None or name == roster.coordinator.name:
        status = existing.status.value if existing else "the coordinator"
        raise ProvisioningError(
            f"{name!r} is already enrolled in federation {roster.federation!r} ({status}); "
            "choose another name for the new node."
        )
    kit_folder = out_dir / NODES_FOLDER / name
    if kit_folder.exists():
        raise ProvisioningError(
            f"{kit_folder} exists but {name!r} is not on the roster (left over from an "
            "interrupted run?); remove that folder and try again."
        )
    issued_at = resolve_now(now)
    issued = ca.issue(
        Role.NODE, name, validity_days=validity_days or roster.validity_days, now=issued_at
    )
    manifest = node_manifest(roster, name=name, issued_at=issued_at, key_encryption=key_encryption)
    _write(
        kit_folder,
        ca=ca,
        issued=issued,
        manifest=manifest,
        key_encryption=key_encryption,
        is_staged=True,
    )
    new_roster = roster.with_node(roster_entry(name, issued.certificate))
    write_public_file(out_dir / CA_FOLDER / ROSTER_FILE, new_roster.to_json())
    refresh_coordinator_copies(out_dir)
    return _issued_kit(kit_folder, manifest=manifest, issued=issued)


def _write(
    folder: Path,
    *,
    ca: CertificateAuthority,
    issued: IssuedCertificate,
    manifest: KitManifest,
    key_encryption: KeyEncryption | None,
    is_staged: bool = False,
) -> None:
    write = write_kit_into_place if is_staged else write_kit
    write(
        folder,
        ca_certificate=ca.certificate,
        certificate=issued.certificate,
        private_key=issued.private_key,
        manifest=manifest,
        key_encryption=key_encryption,
    )


def _issued_kit(folder: Path, *, manifest: KitManifest, issued: IssuedCertificate) -> IssuedKit:
    return IssuedKit(
        role=manifest.role,
        name=manifest.name,
        folder=folder,
        serial_number=issued.certificate.serial_number,
        not_after=issued.certificate.not_valid_after_utc,
    )
