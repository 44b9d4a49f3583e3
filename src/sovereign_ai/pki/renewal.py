"""Renewing one party's certificate (and, on request, its key) under the existing federation CA.

Certificates expire and keys leak. :func:`renew_certificate` issues a fresh certificate for the
coordinator or one node, signed by the same CA, and touches nothing else: not the CA, not any
other party's kit. The roster pins the new serial number at once, so a running coordinator
(which watches its kit folder) admits the renewed party at its next call, without a restart.

The replaced certificate stays honoured until it expires, so a site can install its new kit at
its own pace; with ``revoke_old`` it goes on the revocation list in the same step and is refused
at once (use that when the key may have leaked, together with ``new_key``). A coordinator's
certified jurisdiction is carried over to its new certificate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki._ca_folder import load_authority, provisioning_folder, publish_trust_lists
from sovereign_ai.pki._kit_files import (
    CA_FOLDER,
    CERTIFICATE_FILES,
    COORDINATOR_FOLDER,
    MANIFEST_FILE,
    NODES_FOLDER,
    read_kit_file,
    write_public_file,
)
from sovereign_ai.pki._kit_writer import (
    check_key_protection,
    node_manifest,
    write_kit_into_place,
    write_kit_key,
)
from sovereign_ai.pki.ca import resolve_now
from sovereign_ai.pki.certificates import (
    Role,
    certificate_jurisdiction,
    certificate_to_pem,
    generate_private_key,
    read_certificate,
)
from sovereign_ai.pki.kits import IssuedKit
from sovereign_ai.pki.passphrase import KeyEncryption, PassphraseSource
from sovereign_ai.pki.roster import (
    KitManifest,
    NodeStatus,
    ReplacedCertificate,
    Roster,
    RosterEntry,
    read_json_model,
)

__all__ = ["RenewalReport", "recorded_passphrase_source", "renew_certificate"]


@dataclass(frozen=True)
class RenewalReport:
    """What :func:`renew_certificate` did.

    Parameters
    ----------
    kit
        The renewed kit: its folder and the new certificate's serial number and expiry.
    replaced_serial_number
        Serial number of the certificate the new one replaces.
    has_new_key
        Whether a new private key was issued too (then ``node.key`` or ``coordinator.key``
        must be installed along with the certificate).
    is_replaced_revoked
        Whether the replaced certificate was revoked (refused from now on) rather than left to
        expire.
    """

    kit: IssuedKit
    replaced_serial_number: int
    has_new_key: bool
    is_replaced_revoked: bool


def renew_certificate(
    out_dir: Path,
    name: str,
    *,
    new_key: bool = False,
    revoke_old: bool = False,
    reason: str = "replaced by a renewed certificate",
    key_encryption: KeyEncryption | None = None,
    allow_unencrypted_keys: bool = False,
    validity_days: int | None = None,
    now: dt.datetime | None = None,
) -> RenewalReport:
    """Issue a fresh certificate for the coordinator or node ``name``, before or after expiry.

    Rewrites that party's certificate (and key, with ``new_key``) in its kit folder under
    ``out_dir``, pins the new serial number on the roster and refreshes the coordinator kit's
    ``roster.json`` and ``crl.pem``. The CA and every other kit stay untouched.

    Parameters
    ----------
    out_dir
        The provisioning folder (or its ``ca/`` subfolder).
    name
        The coordinator's or a node's name.
    new_key
        Also issue a new private key. Without it the party keeps its key and only the certificate
        changes (the key never has to leave the site).
    revoke_old
        Revoke the replaced certificate in the same step; otherwise it is honoured until it
        expires.
    reason
        Why the replaced certificate is revoked (``revoke_old`` only); kept on the roster.
    key_encryption
        Encrypts the new key (``new_key`` only); required then unless ``allow_unencrypted_keys``.
    allow_unencrypted_keys
        Write the new key unencrypted (tests and demos only).
    validity_days
        Lifetime of the new certificate; defaults to the federation's.
    now
        Renewal time; defaults to the current time.

    Returns
    -------
    RenewalReport
        The renewed kit and what happened to the replaced certificate.

    Raises
    ------
    ConfigError
        If the options contradict each other (a passphrase without a new key, a new key without
        one and without ``allow_unencrypted_keys``) or ``validity_days`` < 1.
    ProvisioningError
        If ``name`` is not enrolled or was revoked, its kit folder is missing or out of date
        (without ``new_key`` the existing certificate's public key is re-certified), or the CA
        cannot issue (expired).
    """
    if new_key:
        check_key_protection(
            key_encryption, allow_unencrypted_keys=allow_unencrypted_keys, caller="renew"
        )
    elif key_encryption is not None:
        raise ConfigError(
            "The 'key_encryption' parameter of renew_certificate applies to a new key only; "
            "pass new_key=True, or leave it out to keep the current (already encrypted) key."
        )
    if validity_days is not None and validity_days < 1:
        raise ConfigError(f"'validity_days' must be >= 1; got {validity_days!r} instead.")
    if revoke_old and not reason.strip():
        raise ConfigError("'reason' must say why the old certificate is revoked; got ''.")
    out_dir = provisioning_folder(out_dir)
    ca, roster = load_authority(out_dir / CA_FOLDER)
    entry, role = _enrolled(roster, name)
    is_coordinator = role is Role.COORDINATOR
    folder = out_dir / COORDINATOR_FOLDER if is_coordinator else out_dir / NODES_FOLDER / name
    issued_at = resolve_now(now)
    manifest = _current_manifest(folder, role=role, roster=roster, entry=entry, new_key=new_key)
    update: dict[str, object] = {"issued_at": issued_at}
    if new_key:
        update["key_passphrase"] = key_encryption.source if key_encryption else None
    manifest = manifest.model_copy(update=update)
    key = generate_private_key() if new_key else None
    public_key = key.public_key() if key else _enrolled_public_key(folder, role, entry)
    certificate = ca.certify(
        role,
        name,
        public_key=public_key,
        validity_days=validity_days or roster.validity_days,
        hosts=manifest.hosts,
        jurisdiction=_certified_jurisdiction(folder, role),
        now=issued_at,
    )
    if (folder / MANIFEST_FILE).exists():
        if key is not None:
            write_kit_key(folder, role, key, key_encryption=key_encryption)
        write_public_file(folder / CERTIFICATE_FILES[role], certificate_to_pem(certificate))
        write_public_file(folder / MANIFEST_FILE, manifest.to_json())
    elif key is not None:  # a node kit no longer kept on this machine: write it afresh
        write_kit_into_place(
            folder,
            ca_certificate=ca.certificate,
            certificate=certificate,
            private_key=key,
            manifest=manifest,
            key_encryption=key_encryption,
        )
    replaced = ReplacedCertificate(
        serial_number=entry.serial_number,
        not_after=entry.not_after,
        replaced_at=issued_at,
        revoked_at=issued_at if revoke_old else None,
        revocation_reason=reason if revoke_old else None,
    )
    renewed = entry.model_copy(
        update={
            "serial_number": certificate.serial_number,
            "not_after": certificate.not_valid_after_utc,
            "replaced": (*entry.replaced, replaced),
        }
    )
    publish_trust_lists(
        out_dir,
        ca=ca,
        roster=roster.with_entry(renewed),
        is_crl_changed=revoke_old,
        now=issued_at,
    )
    kit = IssuedKit(
        role=role,
        name=name,
        folder=folder,
        serial_number=certificate.serial_number,
        not_after=certificate.not_valid_after_utc,
    )
    return RenewalReport(
        kit=kit,
        replaced_serial_number=entry.serial_number,
        has_new_key=new_key,
        is_replaced_revoked=revoke_old,
    )


def recorded_passphrase_source(out_dir: Path, name: str) -> PassphraseSource | None:
    """Where the kit of ``name`` under ``out_dir`` says its party reads the key's passphrase.

    Renewal with a new key keeps that source unless told otherwise. ``None`` if the kit's key is
    not encrypted or the kit is not kept under ``out_dir``.

    Raises
    ------
    ProvisioningError
        If ``out_dir`` is not a provisioning folder, or the kit's ``kit.json`` is corrupt.
    """
    out_dir = provisioning_folder(out_dir)
    for folder in (out_dir / COORDINATOR_FOLDER, out_dir / NODES_FOLDER / name):
        path = folder / MANIFEST_FILE
        if path.is_file():
            manifest = read_json_model(KitManifest, read_kit_file(path), source=str(path))
            if manifest.name == name:
                return manifest.key_passphrase
    return None


def _enrolled(roster: Roster, name: str) -> tuple[RosterEntry, Role]:
    entry = roster.entry(name)
    if entry is None:
        enrolled = ", ".join([roster.coordinator.name, *(node.name for node in roster.nodes)])
        raise ProvisioningError(
            f"{name!r} is not enrolled in federation {roster.federation!r}; enrolled: "
            f"{enrolled}. Enrol a new node with `sovereign provision add-node {name}`."
        )
    if entry.status is NodeStatus.REVOKED:
        raise ProvisioningError(
            f"Node {name!r} was revoked on {entry.revoked_at:%Y-%m-%d} "
            f"({entry.revocation_reason}); a revoked node is not renewed. Enrol it again under "
            "a new name with `sovereign provision add-node NAME`."
        )
    role = Role.COORDINATOR if entry is roster.coordinator else Role.NODE
    return entry, role


def _current_manifest(
    folder: Path, *, role: Role, roster: Roster, entry: RosterEntry, new_key: bool
) -> KitManifest:
    path = folder / MANIFEST_FILE
    if path.exists():
        manifest = read_json_model(KitManifest, read_kit_file(path), source=str(path))
        if (manifest.role, manifest.name) != (role, entry.name):
            raise ProvisioningError(
                f"{path} names {manifest.role.value} {manifest.name!r}, not {role.value} "
                f"{entry.name!r}; the provisioning folder is mixed up."
            )
        return manifest
    if folder.exists():
        raise ProvisioningError(
            f"{folder} exists but holds no {MANIFEST_FILE} (left over from an interrupted run?); "
            f"remove that folder and renew again with `sovereign provision renew {entry.name} "
            "--new-key`."
        )
    if role is Role.COORDINATOR or not new_key:
        raise ProvisioningError(
            f"{folder} holds no kit ({MANIFEST_FILE} is missing), so there is no key to "
            "re-certify. "
            + (
                "Restore the coordinator kit from a backup."
                if role is Role.COORDINATOR
                else f"Renew with a new key instead: `sovereign provision renew {entry.name} "
                "--new-key`."
            )
        )
    # issued_at and key_passphrase are set by the caller.
    return node_manifest(roster, name=entry.name, issued_at=entry.not_after, key_encryption=None)


def _certified_jurisdiction(folder: Path, role: Role) -> str | None:
    """The jurisdiction the current certificate carries (the coordinator's), kept on renewal."""
    path = folder / CERTIFICATE_FILES[role]
    if not path.exists():
        return None  # a node kit no longer kept here; nodes carry no jurisdiction
    try:
        return certificate_jurisdiction(read_certificate(read_kit_file(path)))
    except ValueError as exc:
        raise ProvisioningError(f"{path} is not a PEM certificate: {exc}") from exc


def _enrolled_public_key(folder: Path, role: Role, entry: RosterEntry) -> ec.EllipticCurvePublicKey:
    """The public key of the certificate the roster enrols, from the kit folder."""
    path = folder / CERTIFICATE_FILES[role]
    try:
        certificate = read_certificate(read_kit_file(path))
    except ValueError as exc:
        raise ProvisioningError(f"{path} is not a PEM certificate: {exc}") from exc
    if certificate.serial_number != entry.serial_number:
        raise ProvisioningError(
            f"{path} holds certificate {certificate.serial_number:x}, but the roster enrols "
            f"{entry.serial_number:x} for {entry.name!r}; the kit folder is out of date. Renew "
            f"with a new key instead: `sovereign provision renew {entry.name} --new-key`."
        )
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ProvisioningError(f"{path} does not hold an ECDSA public key.")
    return public_key
