"""Warnings ahead of certificate expiry, so no party is locked out by surprise.

A coordinator kit is checked for the CA, its own certificate, the revocation list and every active
node on its roster (the coordinator's operator is usually the one who re-provisions). A node kit
is checked for the CA and the node's own certificate. Every warning about a certificate names the
command that renews it: ``sovereign provision renew NAME``, run by the federation administrator
in the provisioning folder.
"""

from __future__ import annotations

import datetime as dt

from sovereign_ai.errors import ConfigError
from sovereign_ai.pki.ca import resolve_now
from sovereign_ai.pki.identity import CoordinatorKit, NodeKit
from sovereign_ai.pki.roster import NodeStatus

__all__ = ["expiry_warnings"]


def expiry_warnings(
    kit: CoordinatorKit | NodeKit, *, within_days: int = 30, now: dt.datetime | None = None
) -> list[str]:
    """List what in ``kit`` has expired or expires within ``within_days``.

    Parameters
    ----------
    kit
        A loaded coordinator or node kit.
    within_days
        How far ahead to warn.
    now
        The time to measure from; defaults to the current time.

    Returns
    -------
    list of str
        One sentence per certificate (or revocation list) that needs attention, soonest first;
        empty when everything stays valid for at least ``within_days``.

    Raises
    ------
    ConfigError
        If ``within_days`` is negative.
    """
    if within_days < 0:
        raise ConfigError(f"'within_days' must be >= 0; got {within_days!r} instead.")
    at = resolve_now(now)
    horizon = at + dt.timedelta(days=within_days)
    deadlines: list[tuple[dt.datetime, str, str]] = [
        (
            kit.ca.not_valid_after_utc,
            f"federation CA of {kit.federation!r}",
            "every certificate stops working with it; provision a new federation in time",
        ),
        (
            kit.certificate.not_valid_after_utc,
            f"{kit.manifest.role.value} certificate of {kit.name!r}",
            _renewal_advice(kit.name),
        ),
    ]
    if isinstance(kit, CoordinatorKit):
        if kit.crl.next_update_utc is not None:
            deadlines.append(
                (
                    kit.crl.next_update_utc,
                    "revocation list (crl.pem)",
                    "nodes are refused once it is out of date; install a newer one",
                )
            )
        deadlines.extend(
            (
                entry.not_after,
                f"node certificate of {entry.name!r}",
                f"that node will be refused from then on; {_renewal_advice(entry.name)}",
            )
            for entry in kit.roster.nodes
            if entry.status is NodeStatus.ACTIVE
        )
    warnings = []
    for expires, what, advice in sorted(deadlines, key=lambda item: item[0]):
        if expires <= at:
            days = (at - expires).days
            warnings.append(
                f"The {what} expired on {expires:%Y-%m-%d} ({days} days ago); {advice}."
            )
        elif expires <= horizon:
            days = (expires - at).days
            warnings.append(f"The {what} expires on {expires:%Y-%m-%d} (in {days} days); {advice}.")
    return warnings


def _renewal_advice(name: str) -> str:
    return (
        f"renew it with `sovereign provision renew {name} --out DIR` (the federation "
        "administrator runs it in the provisioning folder)"
    )
