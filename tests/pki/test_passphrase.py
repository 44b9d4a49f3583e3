"""Private keys encrypted at rest: what lands on disk, and how a party gets its passphrase back."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    FederationSpec,
    KeyEncryption,
    PassphraseKind,
    PassphraseSource,
    ProvisionReport,
    load_coordinator_kit,
    load_kit,
    load_node_kit,
    provision,
    read_passphrase,
    refresh_trust_lists,
    revoke_node,
)
from sovereign_ai.pki.certificates import private_key_to_pem, read_private_key

from .conftest import PASSPHRASE, write_passphrase_file

VARIABLE = "TEST_SOVEREIGN_KIT_PASSPHRASE"


def _provision(spec: FederationSpec, folder: Path, source: PassphraseSource) -> ProvisionReport:
    encryption = KeyEncryption(passphrase=PASSPHRASE, source=source)
    return provision(spec, folder, key_encryption=encryption)


def test_every_kit_key_is_encrypted_pkcs8_and_the_passphrase_is_nowhere_on_disk(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    kits = [federation.out_dir / "coordinator", *(federation.out_dir / "nodes").iterdir()]

    for folder in kits:
        stored = next(folder.glob("*.key")).read_bytes()
        assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), folder
        with pytest.raises(TypeError, match="encrypted"):
            serialization.load_pem_private_key(stored, password=None)
        assert serialization.load_pem_private_key(stored, password=PASSPHRASE)
        manifest = (folder / "kit.json").read_text()
        assert '"kind": "file"' in manifest and str(key_encryption.source.path) in manifest
    for path in federation.out_dir.rglob("*"):
        if path.is_file():
            assert PASSPHRASE not in path.read_bytes(), path


def test_loaded_kit_hands_transports_the_decrypted_key(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")

    assert kit.is_key_encrypted
    assert kit.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # as grpc wants it
    stored = read_private_key(kit.private_key_path.read_bytes(), passphrase=PASSPHRASE)
    assert private_key_to_pem(stored) == kit.private_key_pem


def test_kit_loads_into_python_ssl_without_a_prompt(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    kit.load_cert_chain_into(context)  # would ask "Enter PEM pass phrase" if it read the file

    with pytest.raises(ssl.SSLError):  # the same file, read directly, cannot be used
        context.load_cert_chain(kit.certificate_path, kit.private_key_path, password=b"wrong")


def test_environment_variable_source(
    spec: FederationSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _provision(spec, tmp_path / "federation", PassphraseSource.env(VARIABLE))
    folder = report.out_dir / "nodes" / "hospital-a"
    monkeypatch.delenv(VARIABLE, raising=False)

    with pytest.raises(ProvisioningError, match=rf"{VARIABLE}, which is not set.*EnvironmentFile="):
        load_node_kit(folder)
    monkeypatch.setenv(VARIABLE, PASSPHRASE.decode())
    assert load_node_kit(folder).name == "hospital-a"
    monkeypatch.setenv(VARIABLE, "not the passphrase at all")
    with pytest.raises(ProvisioningError, match=rf"passphrase from the environment .*{VARIABLE}"):
        load_node_kit(folder)


def test_unset_variable_falls_back_to_a_prompt_when_one_is_possible(
    spec: FederationSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _provision(spec, tmp_path / "federation", PassphraseSource.env(VARIABLE))
    monkeypatch.delenv(VARIABLE, raising=False)
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return PASSPHRASE.decode()

    kit = load_coordinator_kit(report.out_dir / "coordinator", prompt=prompt)

    assert kit.name == "coordinator"
    assert asked == [f"Passphrase of the private key {kit.private_key_path}"]


def test_prompt_source_needs_someone_to_ask(spec: FederationSpec, tmp_path: Path) -> None:
    report = _provision(spec, tmp_path / "federation", PassphraseSource.prompt())
    folder = report.out_dir / "nodes" / "hospital-b"

    with pytest.raises(ProvisioningError, match=r"no one can be asked here.*--passphrase-env"):
        load_node_kit(folder)
    assert load_kit(folder, prompt=lambda _: PASSPHRASE.decode()).name == "hospital-b"
    assert load_node_kit(folder, passphrase=PASSPHRASE).name == "hospital-b"


def test_passphrase_file_others_can_read_is_refused_with_the_fix(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    path = key_encryption.source.path
    assert path is not None
    path.chmod(0o644)

    with pytest.raises(ProvisioningError, match=r"Passphrase file .* \(mode 644\).*chmod 600"):
        load_node_kit(federation.out_dir / "nodes" / "hospital-a")


def test_missing_or_empty_passphrase_file_is_named(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    path = key_encryption.source.path
    assert path is not None
    path.write_bytes(b"\n")
    with pytest.raises(ProvisioningError, match="is empty"):
        load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    path.unlink()
    with pytest.raises(ProvisioningError, match=f"{path} is missing"):
        load_node_kit(federation.out_dir / "nodes" / "hospital-a")


def test_key_decrypted_on_disk_is_refused(federation: ProvisionReport) -> None:
    key_path = federation.out_dir / "nodes" / "hospital-a" / "node.key"
    plain = private_key_to_pem(read_private_key(key_path.read_bytes(), passphrase=PASSPHRASE))
    key_path.write_bytes(plain)

    with pytest.raises(ProvisioningError, match=r"is not encrypted, although kit\.json says"):
        load_node_kit(key_path.parent)


def test_trust_lists_refresh_without_the_passphrase(
    federation: ProvisionReport, key_encryption: KeyEncryption
) -> None:
    kit = load_coordinator_kit(federation.out_dir / "coordinator")
    assert key_encryption.source.path is not None
    key_encryption.source.path.unlink()  # the passphrase is gone once the service has started
    revoke_node(federation.out_dir, "hospital-c", reason="left")

    refreshed = refresh_trust_lists(kit)

    entry = refreshed.roster.node("hospital-c")
    assert entry is not None and entry.status.value == "revoked"
    assert refreshed.private_key_pem == kit.private_key_pem


def test_provisioning_refuses_unencrypted_keys_unless_allowed(
    spec: FederationSpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="'key_encryption' parameter of provision must be"):
        provision(spec, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    with caplog.at_level(logging.WARNING, logger="sovereign_ai.pki"):
        report = provision(spec, tmp_path / "allowed", allow_unencrypted_keys=True)

    assert "INSECURE" in caplog.text and "UNENCRYPTED" in caplog.text
    kit = load_node_kit(report.out_dir / "nodes" / "hospital-a")
    assert not kit.is_key_encrypted
    assert kit.private_key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_short_passphrase_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"at least 12 bytes long.*got 6 bytes"):
        KeyEncryption(passphrase=b"secret", source=PassphraseSource.env())


def test_passphrase_never_shows_in_repr(key_encryption: KeyEncryption) -> None:
    assert PASSPHRASE.decode() not in repr(key_encryption)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: PassphraseSource.env("1NOT-A-NAME"), "environment variable name"),
        (lambda: PassphraseSource.file(Path("relative/pass")), "must be an absolute path"),
    ],
)
def test_invalid_sources_are_refused(build: Callable[[], object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        build()


def test_read_passphrase_strips_the_trailing_newline_only(tmp_path: Path) -> None:
    path = write_passphrase_file(tmp_path / "pass", b"  spaces kept  ")
    source = PassphraseSource.file(path)

    assert source.kind is PassphraseKind.FILE
    assert read_passphrase(source, key_path=None) == b"  spaces kept  "
    assert read_passphrase(PassphraseSource.env("X"), key_path=None, environ={"X": "from env"}) == (
        b"from env"
    )
