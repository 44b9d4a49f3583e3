"""Revoking a node: the CRL and the roster both lock it out at its next connection.

Every certificate the node ever held goes on the CRL, including those renewal replaced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki._ca_folder import (
    load_authority,
    provisioning_folder,
    publish_trust_lists,
    refresh_coordinator_copies,
)
from sovereign_ai.pki._kit_files import CA_FOLDER
from sovereign_ai.pki.ca import resolve_now
from sovereign_ai.pki.roster import NodeStatus, RosterEntry

__all__ = ["revoke_node"]


def revoke_node(
    out_dir: Path, name: str, *, reason: str, now: dt.datetime | None = None
) -> RosterEntry:
    """Revoke a node: add its certificate to the CRL and mark it revoked on the roster.

    The coordinator refuses the node at its next connection once it has the new ``crl.pem`` and
    ``roster.json`` (both are refreshed in the coordinator kit under ``out_dir``). Revoking a node
    that is already revoked only refreshes those copies.

    Parameters
    ----------
    out_dir
        The provisioning folder (or its ``ca/`` subfolder).
    name
        The node to revoke.
    reason
        Why, in words; kept on the roster for the record.
    now
        Revocation time; defaults to the current time.

    Returns
    -------
    RosterEntry
        The node's roster entry, now revoked.

    Raises
    ------
    ConfigError
        If ``reason`` is empty.
    ProvisioningError
        If the node is not enrolled, or the CA folder cannot be read or written.
    """
    if not reason.strip():
        raise ConfigError("'reason' must say why the node is revoked; got an empty string.")
    out_dir = provisioning_folder(out_dir)
    ca, roster = load_authority(out_dir / CA_FOLDER)
    entry = roster.node(name)
    if entry is None:
        enrolled = ", ".join(node.name for node in roster.nodes) or "none"
        raise ProvisioningError(
            f"{name!r} is not a node of federation {roster.federation!r}; enrolled: {enrolled}."
        )
    if entry.status is NodeStatus.REVOKED:
        refresh_coordinator_copies(out_dir)
        return entry
    revoked_at = resolve_now(now)
    entry = entry.model_copy(
        update={
            "status": NodeStatus.REVOKED,
            "revoked_at": revoked_at,
            "revocation_reason": reason,
        }
    )
    publish_trust_lists(
        out_dir, ca=ca, roster=roster.with_node(entry), is_crl_changed=True, now=revoked_at
    )
    return entry
