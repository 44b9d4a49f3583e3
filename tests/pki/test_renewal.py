"""renew_certificate: a fresh certificate (and key) for one party, same CA, nothing else."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovereign_ai.errors import AuthenticationError, ConfigError, ProvisioningError
from sovereign_ai.pki import (
    KeyEncryption,
    PassphraseSource,
    ProvisionReport,
    Role,
    load_coordinator_kit,
    load_node_kit,
    recorded_passphrase_source,
    renew_certificate,
    revoke_node,
)

from .conftest import PASSPHRASE, write_passphrase_file

NOW = dt.datetime.now(dt.UTC)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _public_key(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _crl_serials(folder: Path) -> set[int]:
    crl = x509.load_pem_x509_crl((folder / "crl.pem").read_bytes())
    return {revoked.serial_number for revoked in crl}


def test_renewal_rewrites_only_that_partys_certificate_and_the_trust_lists(
    federation: ProvisionReport,
) -> None:
    out = federation.out_dir
    before = _snapshot(out)
    old = load_node_kit(out / "nodes" / "hospital-a")

    report = renew_certificate(out, "hospital-a")

    after = _snapshot(out)
    changed = {path for path in before if before[path] != after[path]}
    assert changed == {
        "nodes/hospital-a/node.pem",
        "nodes/hospital-a/kit.json",  # issued_at
        "ca/roster.json",
        "coordinator/roster.json",
    }
    assert set(after) == set(before)  # no file added or removed; ca.key, ca.pem untouched
    new = load_node_kit(out / "nodes" / "hospital-a")
    assert (
        new.certificate.serial_number == report.kit.serial_number != old.certificate.serial_number
    )
    assert _public_key(new.certificate) == _public_key(old.certificate)  # same key, kept at site
    assert report.replaced_serial_number == old.certificate.serial_number
    assert not report.has_new_key and not report.is_replaced_revoked
    assert after["ca/roster.json"] == after["coordinator/roster.json"]


def test_renewed_certificate_is_admitted_and_the_replaced_one_until_it_expires(
    federation: ProvisionReport,
) -> None:
    out = federation.out_dir
    old = load_node_kit(out / "nodes" / "hospital-a")

    renew_certificate(out, "hospital-a")

    coordinator = load_coordinator_kit(out / "coordinator")
    new = load_node_kit(out / "nodes" / "hospital-a")
    assert coordinator.verify_node(new.certificate_pem) == "hospital-a"
    assert coordinator.verify_node(old.certificate_pem) == "hospital-a"  # the site has not swapped
    with pytest.raises(AuthenticationError, match="expired on"):
        coordinator.verify_node(old.certificate_pem, now=NOW + dt.timedelta(days=400))
    entry = coordinator.roster.node("hospital-a")
    assert entry is not None and [r.serial_number for r in entry.replaced] == [
        old.certificate.serial_number
    ]


def test_revoke_old_refuses_the_replaced_certificate_at_once(federation: ProvisionReport) -> None:
    out = federation.out_dir
    old = load_node_kit(out / "nodes" / "hospital-a")

    report = renew_certificate(out, "hospital-a", revoke_old=True, reason="laptop stolen")

    coordinator = load_coordinator_kit(out / "coordinator")
    assert report.is_replaced_revoked
    assert _crl_serials(out / "ca") == {old.certificate.serial_number}
    assert _crl_serials(out / "coordinator") == {old.certificate.serial_number}
    with pytest.raises(AuthenticationError, match="was revoked on"):
        coordinator.verify_node(old.certificate_pem)
    assert coordinator.verify_node(load_node_kit(old.folder).certificate_pem) == "hospital-a"
    entry = coordinator.roster.node("hospital-a")
    assert entry is not None and entry.replaced[0].revocation_reason == "laptop stolen"


def test_new_key_is_fresh_and_encrypted_with_the_given_passphrase(
    federation: ProvisionReport, tmp_path: Path
) -> None:
    folder = federation.out_dir / "nodes" / "hospital-b"
    old = load_node_kit(folder)
    other = write_passphrase_file(tmp_path / "site-b-passphrase", b"hospital b's own secret")
    encryption = KeyEncryption(
        passphrase=b"hospital b's own secret", source=PassphraseSource.file(other)
    )

    report = renew_certificate(
        federation.out_dir, "hospital-b", new_key=True, key_encryption=encryption
    )

    new = load_node_kit(folder)
    assert report.has_new_key
    assert _public_key(new.certificate) != _public_key(old.certificate)
    assert (folder / "node.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    assert stat.S_IMODE((folder / "node.key").stat().st_mode) == 0o600
    assert new.manifest.key_passphrase == PassphraseSource.file(other)
    with pytest.raises(ProvisioningError, match="does not decrypt"):
        load_node_kit(folder, passphrase=PASSPHRASE)


def test_new_key_needs_encryption_or_an_explicit_opt_out(federation: ProvisionReport) -> None:
    with pytest.raises(ConfigError, match="'key_encryption' parameter of renew must be"):
        renew_certificate(federation.out_dir, "hospital-a", new_key=True)

    renew_certificate(federation.out_dir, "hospital-a", new_key=True, allow_unencrypted_keys=True)

    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    assert not kit.is_key_encrypted


def test_passphrase_without_a_new_key_is_refused(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    with pytest.raises(ConfigError, match="applies to a new key only"):
        renew_certificate(federation.out_dir, "hospital-a", key_encryption=key_encryption)


def test_recorded_source_is_what_the_kit_names(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    assert recorded_passphrase_source(federation.out_dir, "hospital-a") == key_encryption.source
    assert recorded_passphrase_source(federation.out_dir, "coordinator") == key_encryption.source
    assert recorded_passphrase_source(federation.out_dir, "not-here") is None


def test_coordinator_renewal_keeps_its_hosts_and_trust_lists(federation: ProvisionReport) -> None:
    out = federation.out_dir
    old = load_coordinator_kit(out / "coordinator")

    report = renew_certificate(out, "coordinator", validity_days=30)

    new = load_coordinator_kit(out / "coordinator")
    assert report.kit.role is Role.COORDINATOR
    assert new.roster.coordinator.serial_number == new.certificate.serial_number
    assert new.certificate.serial_number != old.certificate.serial_number
    san = new.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert (new.certificate.not_valid_after_utc - NOW).days in (29, 30)
    node = load_node_kit(out / "nodes" / "hospital-a")
    assert node.verify_coordinator(new.certificate_pem) == "coordinator"


def test_renewal_after_expiry_restores_the_party(federation: ProvisionReport) -> None:
    out = federation.out_dir
    later = NOW + dt.timedelta(days=400)  # the fixture's certificates last 365 days

    renew_certificate(out, "hospital-c", now=later)

    coordinator = load_coordinator_kit(out / "coordinator")
    renewed = load_node_kit(out / "nodes" / "hospital-c")
    assert coordinator.verify_node(renewed.certificate_pem, now=later) == "hospital-c"


def test_revoked_node_is_not_renewed(federation: ProvisionReport) -> None:
    revoke_node(federation.out_dir, "hospital-a", reason="left the consortium")

    with pytest.raises(ProvisioningError, match=r"revoked node is not renewed.*add-node"):
        renew_certificate(federation.out_dir, "hospital-a")


def test_unknown_name_lists_who_is_enrolled(federation: ProvisionReport) -> None:
    with pytest.raises(ProvisioningError, match="enrolled: coordinator, hospital-a, hospital-b"):
        renew_certificate(federation.out_dir, "hospital-z")


def test_kit_no_longer_kept_needs_a_new_key(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    out = federation.out_dir
    shutil.rmtree(out / "nodes" / "hospital-a")  # the administrator shipped it and kept no copy

    with pytest.raises(ProvisioningError, match=r"no key to re-certify.*--new-key"):
        renew_certificate(out, "hospital-a")
    renew_certificate(out, "hospital-a", new_key=True, key_encryption=key_encryption)

    kit = load_node_kit(out / "nodes" / "hospital-a")
    assert load_coordinator_kit(out / "coordinator").verify_node(kit.certificate) == "hospital-a"
    assert (kit.folder / "node.toml").is_file()


def test_half_written_kit_folder_is_named(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    (folder / "kit.json").unlink()

    with pytest.raises(ProvisioningError, match=r"holds no kit\.json.*remove that folder"):
        renew_certificate(
            federation.out_dir, "hospital-a", allow_unencrypted_keys=True, new_key=True
        )


def test_stale_kit_folder_is_not_re_certified(federation: ProvisionReport) -> None:
    out = federation.out_dir
    stale = (out / "nodes" / "hospital-a" / "node.pem").read_bytes()
    renew_certificate(out, "hospital-a")
    (out / "nodes" / "hospital-a" / "node.pem").write_bytes(stale)

    with pytest.raises(ProvisioningError, match="kit folder is out of date"):
        renew_certificate(out, "hospital-a")


def test_revoking_a_renewed_node_revokes_every_certificate_it_held(
    federation: ProvisionReport,
) -> None:
    out = federation.out_dir
    first = load_node_kit(out / "nodes" / "hospital-a").certificate.serial_number
    second = renew_certificate(out, "hospital-a").kit.serial_number

    revoke_node(out, "hospital-a", reason="left the consortium")

    assert _crl_serials(out / "coordinator") == {first, second}
    roster = json.loads((out / "coordinator" / "roster.json").read_text())
    assert roster["nodes"][0]["status"] == "revoked"
