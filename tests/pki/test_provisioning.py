"""provision / add_node / revoke_node: what lands on disk, with which permissions and contents."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    CertificateAuthority,
    FederationSpec,
    KeyEncryption,
    NodeStatus,
    ProvisionReport,
    Role,
    add_node,
    provision,
    revoke_node,
)

NODES = ("hospital-a", "hospital-b", "hospital-c")
KIT_FILES = {
    "ca": {"ca.pem", "ca.key", "roster.json", "crl.pem"},
    "coordinator": {
        "ca.pem",
        "coordinator.pem",
        "coordinator.key",
        "roster.json",
        "crl.pem",
        "kit.json",
    },
    "node": {"ca.pem", "node.pem", "node.key", "kit.json", "node.toml"},
}


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_provision_writes_every_kit_with_private_modes(federation: ProvisionReport) -> None:
    out = federation.out_dir

    assert {p.name for p in (out / "ca").iterdir()} == KIT_FILES["ca"]
    assert {p.name for p in (out / "coordinator").iterdir()} == KIT_FILES["coordinator"]
    assert sorted(p.name for p in (out / "nodes").iterdir()) == list(NODES)
    for name in NODES:
        assert {p.name for p in (out / "nodes" / name).iterdir()} == KIT_FILES["node"]
    for key in out.rglob("*.key"):
        assert _mode(key) == 0o600, key
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        assert _mode(folder) == 0o700, folder
    assert not list(out.rglob("*.tmp")), "temporary files were left behind"


def test_report_lists_coordinator_then_nodes(federation: ProvisionReport) -> None:
    roles = [(kit.role, kit.name) for kit in federation.kits]

    assert roles == [(Role.COORDINATOR, "coordinator"), *((Role.NODE, n) for n in NODES)]
    assert federation.kits[1].folder == federation.out_dir / "nodes" / "hospital-a"


def test_ca_is_a_constrained_self_signed_p256_ca(federation: ProvisionReport) -> None:
    ca = _certificate(federation.ca_folder / "ca.pem")

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    ca.verify_directly_issued_by(ca)


def test_every_certificate_is_signed_by_the_ca(federation: ProvisionReport) -> None:
    ca = _certificate(federation.ca_folder / "ca.pem")
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    paths = [federation.out_dir / "coordinator" / "coordinator.pem"]
    paths += [federation.out_dir / "nodes" / name / "node.pem" for name in NODES]

    serials = set()
    for path in paths:
        leaf = _certificate(path)
        ca_key.verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
        assert leaf.issuer == ca.subject
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        serials.add(leaf.serial_number)
    assert len(serials) == len(paths), "serial numbers must be distinct"


def test_coordinator_certificate_names_its_hosts_and_role(federation: ProvisionReport) -> None:
    leaf = _certificate(federation.out_dir / "coordinator" / "coordinator.pem")

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "sovereign://coordinator/coordinator"
    ]
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_node_certificate_names_the_node(federation: ProvisionReport) -> None:
    leaf = _certificate(federation.out_dir / "nodes" / "hospital-b" / "node.pem")

    subject = {attr.oid: attr.value for attr in leaf.subject}
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert subject[NameOID.COMMON_NAME] == "hospital-b"
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "node"
    assert subject[NameOID.ORGANIZATION_NAME] == "test-federation"
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "sovereign://node/hospital-b"
    ]
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_node_kit_carries_address_and_config_template(federation: ProvisionReport) -> None:
    kit = federation.out_dir / "nodes" / "hospital-a"

    manifest = json.loads((kit / "kit.json").read_text())
    config = tomllib.loads((kit / "node.toml").read_text())
    assert manifest["role"] == "node"
    assert manifest["federation"] == "test-federation"
    assert manifest["name"] == "hospital-a"
    assert manifest["coordinator_address"] == "localhost:8443"
    assert config == {"node": {"data": "path/to/your/data.csv", "label": "label"}}
    assert (kit / "ca.pem").read_bytes() == (federation.ca_folder / "ca.pem").read_bytes()


def test_refuses_to_overwrite_a_non_empty_folder(spec: FederationSpec, tmp_path: Path) -> None:
    out = tmp_path / "federation"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")

    with pytest.raises(ProvisioningError, match=r"not empty.*add-node"):
        provision(spec, out, allow_unencrypted_keys=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_provisions_into_an_existing_empty_folder(spec: FederationSpec, tmp_path: Path) -> None:
    out = tmp_path / "federation"
    out.mkdir()

    provision(spec, out, allow_unencrypted_keys=True)

    assert (out / "ca" / "ca.key").is_file()
    assert _mode(out) == 0o700


def test_failure_leaves_nothing_behind(
    spec: FederationSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_crl(*args: object, **kwargs: object) -> None:
        raise ProvisioningError("disk full")

    monkeypatch.setattr(CertificateAuthority, "sign_crl", broken_crl)

    with pytest.raises(ProvisioningError, match="disk full"):
        provision(spec, tmp_path / "federation", allow_unencrypted_keys=True)
    assert list(tmp_path.iterdir()) == []


def test_add_node_leaves_every_other_certificate_untouched(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    out = federation.out_dir
    before = _snapshot(out)

    kit = add_node(out, "hospital-d", key_encryption=key_encryption)

    after = _snapshot(out)
    changed = {path for path in before if before[path] != after[path]}
    added = set(after) - set(before)
    assert changed == {"ca/roster.json", "coordinator/roster.json"}
    assert added == {f"nodes/hospital-d/{name}" for name in KIT_FILES["node"]}
    assert kit.folder == out / "nodes" / "hospital-d"
    assert _mode(kit.folder / "node.key") == 0o600
    roster = json.loads((out / "ca" / "roster.json").read_text())
    assert [node["name"] for node in roster["nodes"]] == [*NODES, "hospital-d"]
    assert roster["nodes"][-1]["serial_number"] == f"{kit.serial_number:x}"
    assert after["ca/roster.json"] == after["coordinator/roster.json"]


def test_add_node_accepts_the_ca_folder(federation: ProvisionReport) -> None:
    kit = add_node(
        federation.ca_folder, "hospital-d", allow_unencrypted_keys=True, validity_days=30
    )

    assert kit.folder == federation.out_dir / "nodes" / "hospital-d"
    assert (kit.not_after - federation.kits[0].not_after).days < -300


@pytest.mark.parametrize("name", ["hospital-a", "coordinator"])
def test_add_node_refuses_an_enrolled_name(federation: ProvisionReport, name: str) -> None:
    with pytest.raises(ProvisioningError, match="already enrolled"):
        add_node(federation.out_dir, name, allow_unencrypted_keys=True)


def test_add_node_refuses_a_bad_name(federation: ProvisionReport) -> None:
    with pytest.raises(ConfigError, match=r"lowercase DNS label.*'\.\./evil'"):
        add_node(federation.out_dir, "../evil", allow_unencrypted_keys=True)


def test_add_node_needs_a_provisioning_folder(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="not a provisioning folder"):
        add_node(tmp_path, "hospital-d", allow_unencrypted_keys=True)


def test_revoke_updates_crl_and_roster_everywhere(federation: ProvisionReport) -> None:
    out = federation.out_dir
    serial = federation.kits[2].serial_number  # hospital-b
    node_kits_before = _snapshot(out / "nodes")

    entry = revoke_node(out, "hospital-b", reason="left the consortium")

    crl = x509.load_pem_x509_crl((out / "ca" / "crl.pem").read_bytes())
    ca = _certificate(federation.ca_folder / "ca.pem")
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    assert [revoked.serial_number for revoked in crl] == [serial]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert entry.status is NodeStatus.REVOKED and entry.revocation_reason == "left the consortium"
    roster = json.loads((out / "coordinator" / "roster.json").read_text())
    assert [n["status"] for n in roster["nodes"]] == ["active", "revoked", "active"]
    assert (out / "coordinator" / "crl.pem").read_bytes() == (out / "ca" / "crl.pem").read_bytes()
    assert _snapshot(out / "nodes") == node_kits_before


def test_revoke_twice_keeps_the_first_record(federation: ProvisionReport) -> None:
    first = revoke_node(federation.out_dir, "hospital-a", reason="stolen laptop")
    second = revoke_node(federation.out_dir, "hospital-a", reason="again")

    assert second == first


def test_revoke_unknown_node_lists_enrolled_ones(federation: ProvisionReport) -> None:
    with pytest.raises(ProvisioningError, match="enrolled: hospital-a, hospital-b, hospital-c"):
        revoke_node(federation.out_dir, "hospital-z", reason="typo")


def test_ca_key_with_loose_permissions_is_refused(federation: ProvisionReport) -> None:
    key = federation.ca_folder / "ca.key"
    key.chmod(0o644)

    with pytest.raises(ProvisioningError, match=f"chmod 600 {key}"):
        add_node(federation.out_dir, "hospital-d", allow_unencrypted_keys=True)


def test_certificates_do_not_outlive_the_ca(spec: FederationSpec, tmp_path: Path) -> None:
    short = spec.model_copy(
        update={"federation": spec.federation.model_copy(update={"ca_validity_days": 10})}
    )
    report = provision(short, tmp_path / "federation", allow_unencrypted_keys=True)

    assert all(kit.not_after <= report.ca_not_after for kit in report.kits)


def test_revoke_needs_a_reason(federation: ProvisionReport) -> None:
    with pytest.raises(ConfigError, match="'reason' must say why"):
        revoke_node(federation.out_dir, "hospital-a", reason="  ")


def test_expired_ca_issues_nothing(federation: ProvisionReport) -> None:
    later = federation.ca_not_after + dt.timedelta(days=1)

    with pytest.raises(ProvisioningError, match=r"CA expired on .*Provision a new federation"):
        add_node(federation.out_dir, "hospital-d", allow_unencrypted_keys=True, now=later)
    assert not (federation.out_dir / "nodes" / "hospital-d").exists()


def test_naive_time_is_refused(spec: FederationSpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'now' must be timezone-aware"):
        provision(
            spec, tmp_path / "federation", allow_unencrypted_keys=True, now=dt.datetime(2030, 1, 1)
        )
