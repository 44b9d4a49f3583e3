"""Who is enrolled in a federation, and in what state: active, expiring, expired or revoked.

:func:`list_enrolment` lists every party on a roster; :func:`kit_enrolment` says where one
loaded kit stands on it (a kit can be revoked, or replaced by renewal, long after it was issued and
while its files still load perfectly). :func:`read_roster` finds the roster in a provisioning
folder, its ``ca/`` subfolder or a coordinator kit; none of these needs a private key or
passphrase.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki._kit_files import CA_FOLDER, COORDINATOR_FOLDER, ROSTER_FILE, read_kit_file
from sovereign_ai.pki.ca import resolve_now
from sovereign_ai.pki.certificates import Role
from sovereign_ai.pki.roster import NodeStatus, Roster, RosterEntry, read_json_model

__all__ = ["Enrolment", "EnrolmentState", "kit_enrolment", "list_enrolment", "read_roster"]


class EnrolmentState(StrEnum):
    """Where a party's certificate stands."""

    ACTIVE = "active"
    EXPIRING = "expiring soon"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REPLACED = "replaced"
    """The certificate was renewed; this one is still honoured until it expires."""
    NOT_ENROLLED = "not enrolled"


_USABLE_STATES = frozenset(
    {EnrolmentState.ACTIVE, EnrolmentState.EXPIRING, EnrolmentState.REPLACED}
)
"""States in which the coordinator still admits the certificate."""


@dataclass(frozen=True, kw_only=True)
class Enrolment:
    """One certificate's state on the roster.

    Parameters
    ----------
    role
        Coordinator or node.
    name
        The holder's name.
    state
        Active, expiring soon, expired, revoked, replaced (by renewal) or not enrolled.
    serial_number
        The certificate's serial number.
    not_after
        When it expires (UTC).
    detail
        Why, in words, for revoked, replaced and not enrolled certificates; else empty.
    """

    role: Role
    name: str
    state: EnrolmentState
    serial_number: int
    not_after: dt.datetime
    detail: str = ""

    @property
    def is_usable(self) -> bool:
        """Whether the coordinator still admits this certificate."""
        return self.state in _USABLE_STATES


def read_roster(folder: Path) -> Roster:
    """Read the roster of a provisioning folder, its ``ca/`` subfolder, or a coordinator kit.

    Raises
    ------
    ProvisioningError
        If ``folder`` holds no roster, or it is corrupt.
    """
    folder = Path(folder)
    for candidate in (folder, folder / CA_FOLDER, folder / COORDINATOR_FOLDER):
        path = candidate / ROSTER_FILE
        if path.is_file():
            return read_json_model(Roster, read_kit_file(path), source=str(path))
    raise ProvisioningError(
        f"{folder} holds no {ROSTER_FILE}; pass the provisioning folder (--out of `sovereign "
        "provision`), its ca/ folder, or the coordinator's kit."
    )


def list_enrolment(
    roster: Roster, *, within_days: int = 30, now: dt.datetime | None = None
) -> tuple[Enrolment, ...]:
    """List the state of every party on ``roster``: the coordinator first, then each node.

    Parameters
    ----------
    roster
        The federation's roster.
    within_days
        A certificate that expires within this many days is :attr:`EnrolmentState.EXPIRING`.
    now
        The time to judge at; defaults to the current time.

    Raises
    ------
    ConfigError
        If ``within_days`` is negative.
    """
    at, horizon = _window(within_days, now)
    parties = [(Role.COORDINATOR, roster.coordinator)]
    parties.extend((Role.NODE, node) for node in roster.nodes)
    return tuple(_current(role, entry, at=at, horizon=horizon) for role, entry in parties)


def kit_enrolment(
    certificate: x509.Certificate,
    *,
    role: Role,
    name: str,
    roster: Roster,
    crl: x509.CertificateRevocationList | None = None,
    within_days: int = 30,
    now: dt.datetime | None = None,
) -> Enrolment:
    """Say where one kit's ``certificate`` stands on ``roster`` (and ``crl``, if given).

    Parameters
    ----------
    certificate
        The kit's certificate.
    role, name
        Whose kit it is (from its ``kit.json``).
    roster
        The federation's current roster.
    crl
        The current revocation list, if at hand; a serial on it is revoked whatever the roster
        says.
    within_days, now
        As for :func:`list_enrolment`.

    Raises
    ------
    ConfigError
        If ``within_days`` is negative.
    """
    at, horizon = _window(within_days, now)
    serial, not_after = certificate.serial_number, certificate.not_valid_after_utc

    def this_certificate(state: EnrolmentState, detail: str) -> Enrolment:
        return Enrolment(
            role=role,
            name=name,
            state=state,
            serial_number=serial,
            not_after=not_after,
            detail=detail,
        )

    entry = roster.coordinator if role is Role.COORDINATOR else roster.node(name)
    if entry is None or entry.name != name:
        federation = roster.federation
        return this_certificate(
            EnrolmentState.NOT_ENROLLED,
            f"{role.value} {name!r} is not on the roster of federation {federation!r}",
        )
    listed = crl.get_revoked_certificate_by_serial_number(serial) if crl is not None else None
    if serial == entry.serial_number and listed is None:
        return _current(role, entry, at=at, horizon=horizon)
    return this_certificate(*_earlier_certificate(entry, serial, not_after, listed=listed, at=at))


def _earlier_certificate(
    entry: RosterEntry,
    serial: int,
    not_after: dt.datetime,
    *,
    listed: x509.RevokedCertificate | None,
    at: dt.datetime,
) -> tuple[EnrolmentState, str]:
    """State of a certificate of ``entry``'s holder that is not the enrolled, unrevoked one."""
    if entry.status is NodeStatus.REVOKED:
        return EnrolmentState.REVOKED, _revocation(entry)
    if listed is not None:
        return (
            EnrolmentState.REVOKED,
            f"on the revocation list since {listed.revocation_date_utc:%Y-%m-%d}",
        )
    replaced = entry.replaced_certificate(serial)
    if replaced is None:
        return (
            EnrolmentState.NOT_ENROLLED,
            f"superseded: the roster enrols certificate {entry.serial_number:x} instead",
        )
    renewal = (
        f"renewed on {replaced.replaced_at:%Y-%m-%d}; install the renewed kit (certificate "
        f"{entry.serial_number:x}, expires {entry.not_after:%Y-%m-%d})"
    )
    if replaced.revoked_at is not None:
        reason = replaced.revocation_reason
        return EnrolmentState.REVOKED, f"{renewal}; this one was revoked then: {reason}"
    if not_after <= at:
        return EnrolmentState.EXPIRED, renewal
    return EnrolmentState.REPLACED, renewal


def _window(within_days: int, now: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    if within_days < 0:
        raise ConfigError(f"'within_days' must be >= 0; got {within_days!r} instead.")
    at = resolve_now(now)
    return at, at + dt.timedelta(days=within_days)


def _current(role: Role, entry: RosterEntry, *, at: dt.datetime, horizon: dt.datetime) -> Enrolment:
    """The state of the certificate the roster enrols for ``entry``."""
    detail = ""
    if entry.status is NodeStatus.REVOKED:
        state, detail = EnrolmentState.REVOKED, _revocation(entry)
    elif entry.not_after <= at:
        state = EnrolmentState.EXPIRED
    elif entry.not_after <= horizon:
        state = EnrolmentState.EXPIRING
    else:
        state = EnrolmentState.ACTIVE
    return Enrolment(
        role=role,
        name=entry.name,
        state=state,
        serial_number=entry.serial_number,
        not_after=entry.not_after,
        detail=detail,
    )


def _revocation(entry: RosterEntry) -> str:
    revoked_on = f"{entry.revoked_at:%Y-%m-%d}" if entry.revoked_at else "an unknown date"
    return f"revoked on {revoked_on}: {entry.revocation_reason}"
