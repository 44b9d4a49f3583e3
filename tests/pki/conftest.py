"""Fixtures: a small provisioned federation on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_ai.pki import FederationSpec, ProvisionReport, parse_federation_spec, provision

NODES = ("hospital-a", "hospital-b", "hospital-c")


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


@pytest.fixture
def spec() -> FederationSpec:
    return parse_federation_spec(federation_mapping())


@pytest.fixture
def federation(spec: FederationSpec, tmp_path: Path) -> ProvisionReport:
    return provision(spec, tmp_path / "federation")
