"""Expiry warnings: certificates that expire soon are named ahead of time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sovereign_ai.errors import ConfigError
from sovereign_ai.pki import (
    FederationSpec,
    ProvisionReport,
    expiry_warnings,
    load_coordinator_kit,
    load_node_kit,
    provision,
    revoke_node,
)

NOW = dt.datetime.now(dt.UTC)


def _short_lived(spec: FederationSpec, tmp_path: Path, *, days: int) -> ProvisionReport:
    short = spec.model_copy(
        update={"federation": spec.federation.model_copy(update={"validity_days": days})}
    )
    return provision(short, tmp_path / "federation", allow_unencrypted_keys=True)


def test_no_warnings_for_fresh_certificates(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")

    assert expiry_warnings(kit, within_days=30) == []


def test_node_warned_about_its_certificate(spec: FederationSpec, tmp_path: Path) -> None:
    report = _short_lived(spec, tmp_path, days=10)
    kit = load_node_kit(report.out_dir / "nodes" / "hospital-a")

    warnings = expiry_warnings(kit, within_days=30)

    assert len(warnings) == 1
    assert "node certificate of 'hospital-a' expires on" in warnings[0]
    assert "(in 9 days)" in warnings[0] or "(in 10 days)" in warnings[0]
    assert "renew it with `sovereign provision renew hospital-a --out DIR`" in warnings[0]
    assert expiry_warnings(kit, within_days=5) == []


def test_coordinator_warned_about_every_active_node(spec: FederationSpec, tmp_path: Path) -> None:
    report = _short_lived(spec, tmp_path, days=10)
    revoke_node(report.out_dir, "hospital-c", reason="left")
    kit = load_coordinator_kit(report.out_dir / "coordinator")

    warnings = expiry_warnings(kit, within_days=30)

    assert all("sovereign provision renew" in warning for warning in warnings)
    subjects = [warning.split(" expires on")[0] for warning in warnings]
    assert subjects == [
        "The coordinator certificate of 'coordinator'",
        "The node certificate of 'hospital-a'",
        "The node certificate of 'hospital-b'",
    ]


def test_expired_certificate_is_reported_as_expired(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")

    warnings = expiry_warnings(kit, now=NOW + dt.timedelta(days=400))

    assert warnings[0].startswith("The node certificate of 'hospital-a' expired on")
    assert "days ago" in warnings[0]
    assert "`sovereign provision renew hospital-a --out DIR`" in warnings[0]


def test_ca_expiry_is_warned_about(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")

    warnings = expiry_warnings(kit, within_days=3700)

    assert any(w.startswith("The federation CA of 'test-federation' expires") for w in warnings)


def test_negative_horizon_is_refused(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")

    with pytest.raises(ConfigError, match="'within_days' must be >= 0; got -1"):
        expiry_warnings(kit, within_days=-1)
