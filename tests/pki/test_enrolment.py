"""Who is enrolled, and where one kit stands: active, expiring, expired, revoked or replaced."""

from __future__ import annotations

import datetime as dt

import pytest

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    EnrolmentState,
    ProvisionReport,
    Role,
    kit_enrolment,
    list_enrolment,
    load_coordinator_kit,
    load_node_kit,
    read_roster,
    renew_certificate,
    revoke_node,
)

NOW = dt.datetime.now(dt.UTC)


def test_fresh_federation_lists_everyone_active(federation: ProvisionReport) -> None:
    parties = list_enrolment(read_roster(federation.out_dir))

    assert [(p.role, p.name) for p in parties] == [
        (Role.COORDINATOR, "coordinator"),
        (Role.NODE, "hospital-a"),
        (Role.NODE, "hospital-b"),
        (Role.NODE, "hospital-c"),
    ]
    assert {p.state for p in parties} == {EnrolmentState.ACTIVE}
    assert all(p.is_usable for p in parties)
    assert [p.serial_number for p in parties] == [kit.serial_number for kit in federation.kits]


def test_states_follow_revocation_and_the_calendar(federation: ProvisionReport) -> None:
    revoke_node(federation.out_dir, "hospital-b", reason="left the consortium")
    roster = read_roster(federation.out_dir)

    soon = {p.name: p for p in list_enrolment(roster, within_days=400)}
    later = {p.name: p for p in list_enrolment(roster, now=NOW + dt.timedelta(days=400))}

    assert soon["hospital-a"].state is EnrolmentState.EXPIRING
    assert soon["hospital-b"].state is EnrolmentState.REVOKED
    assert "left the consortium" in soon["hospital-b"].detail
    assert not soon["hospital-b"].is_usable
    assert later["hospital-a"].state is EnrolmentState.EXPIRED
    assert later["hospital-b"].state is EnrolmentState.REVOKED  # revocation outranks expiry


@pytest.mark.parametrize("where", ["", "ca", "coordinator"])
def test_roster_is_found_in_each_place_it_is_kept(federation: ProvisionReport, where: str) -> None:
    assert read_roster(federation.out_dir / where).federation == "test-federation"


def test_folder_without_a_roster_says_what_to_pass(federation: ProvisionReport) -> None:
    with pytest.raises(ProvisioningError, match=r"holds no roster\.json; pass the provisioning"):
        read_roster(federation.out_dir / "nodes" / "hospital-a")


def test_revoked_kit_is_reported_revoked(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    revoke_node(federation.out_dir, "hospital-a", reason="stolen laptop")
    coordinator = load_coordinator_kit(federation.out_dir / "coordinator")

    standing = kit_enrolment(
        kit.certificate, role=Role.NODE, name=kit.name, roster=coordinator.roster
    )

    assert standing.state is EnrolmentState.REVOKED
    assert "stolen laptop" in standing.detail


def test_certificates_of_a_kit_renewed_twice(federation: ProvisionReport) -> None:
    folder = federation.out_dir / "nodes" / "hospital-a"
    first = load_node_kit(folder).certificate
    renew_certificate(federation.out_dir, "hospital-a")
    second = load_node_kit(folder).certificate
    renew_certificate(federation.out_dir, "hospital-a", revoke_old=True, reason="rotated")
    third = load_node_kit(folder).certificate
    roster = load_coordinator_kit(federation.out_dir / "coordinator").roster

    states = [
        kit_enrolment(certificate, role=Role.NODE, name="hospital-a", roster=roster)
        for certificate in (first, second, third)
    ]

    assert [s.state for s in states] == [
        EnrolmentState.REPLACED,  # honoured until it expires
        EnrolmentState.REVOKED,  # revoked when the third was issued
        EnrolmentState.ACTIVE,
    ]
    assert "install the renewed kit" in states[0].detail and states[0].is_usable
    assert "revoked then: rotated" in states[1].detail and not states[1].is_usable


def test_a_stale_roster_still_learns_revocation_from_the_crl(federation: ProvisionReport) -> None:
    old = load_node_kit(federation.out_dir / "nodes" / "hospital-c")
    stale_roster = read_roster(federation.out_dir)
    renew_certificate(federation.out_dir, "hospital-c", revoke_old=True, reason="key leaked")
    crl = load_coordinator_kit(federation.out_dir / "coordinator").crl

    standing = kit_enrolment(
        old.certificate, role=Role.NODE, name=old.name, roster=stale_roster, crl=crl
    )

    assert standing.state is EnrolmentState.REVOKED
    assert "on the revocation list since" in standing.detail


def test_kit_of_another_name_is_not_enrolled(federation: ProvisionReport) -> None:
    kit = load_node_kit(federation.out_dir / "nodes" / "hospital-a")
    roster = read_roster(federation.out_dir)

    stranger = kit_enrolment(kit.certificate, role=Role.NODE, name="hospital-x", roster=roster)

    assert stranger.state is EnrolmentState.NOT_ENROLLED
    assert "not on the roster" in stranger.detail


def test_negative_horizon_is_refused(federation: ProvisionReport) -> None:
    with pytest.raises(ConfigError, match="'within_days' must be >= 0"):
        list_enrolment(read_roster(federation.out_dir), within_days=-1)
