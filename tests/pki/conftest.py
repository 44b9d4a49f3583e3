"""Fixtures: a small provisioned federation on disk, its keys encrypted as in production."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sovereign_ai.pki import (
    FederationSpec,
    KeyEncryption,
    PassphraseSource,
    ProvisionReport,
    parse_federation_spec,
    provision,
)

NODES = ("hospital-a", "hospital-b", "hospital-c")
PASSPHRASE = b"correct horse battery staple"


def federation_mapping(**federation: object) -> dict[str, object]:
    """A valid federation file as parsed TOML; keyword arguments override ``[federation]``."""
    return {
        "federation": {"name": "test-federation", "validity_days": 365, **federation},
        "coordinator": {
            "name": "coordinator",
            "address": "localhost:8443",
            "hosts": ["localhost", "127.0.0.1"],
        },
        "nodes": [{"name": name} for name in NODES],
    }


def write_passphrase_file(path: Path, passphrase: bytes = PASSPHRASE) -> Path:
    """Write ``passphrase`` to ``path`` as an administrator would: one line, mode 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(passphrase + b"\n")
    return path


@pytest.fixture
def key_encryption(tmp_path: Path) -> KeyEncryption:
    """Keys encrypted with :data:`PASSPHRASE`, which every kit reads from a file in ``tmp_path``."""
    path = write_passphrase_file(tmp_path / "kit-passphrase")
    return KeyEncryption(passphrase=PASSPHRASE, source=PassphraseSource.file(path))


@pytest.fixture
def spec() -> FederationSpec:
    return parse_federation_spec(federation_mapping())


@pytest.fixture
def federation(
    spec: FederationSpec, tmp_path: Path, key_encryption: KeyEncryption
) -> ProvisionReport:
    return provision(spec, tmp_path / "federation", key_encryption=key_encryption)
