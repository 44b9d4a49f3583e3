"""The roster (who belongs to a federation) and the manifest (``kit.json``) of each startup kit.

A roster entry pins the serial number of the certificate its holder presents. Renewal moves the
old certificate to the entry's ``replaced`` list, where it is honoured until it expires (so a site
can install its new kit at its own pace) unless it was revoked in the same step.

Both are JSON written by provisioning and read back by the coordinator and nodes, so both are
validated like any hostile input: unknown keys, bad names or malformed serial numbers are refused.
Serial numbers are stored as hexadecimal strings, because JSON readers outside Python lose
precision on 159-bit integers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from sovereign_ai.errors import ProvisioningError
from sovereign_ai.pki.ca import RevokedSerial
from sovereign_ai.pki.certificates import Role
from sovereign_ai.pki.federation_file import check_name
from sovereign_ai.pki.passphrase import PassphraseSource

__all__ = ["KitManifest", "NodeStatus", "ReplacedCertificate", "Roster", "RosterEntry"]

M = TypeVar("M", bound=BaseModel)


def _parse_serial(value: object) -> object:
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            raise ValueError(f"serial number must be hexadecimal; got {value!r}") from None
    return value


SerialNumber = Annotated[
    int,
    BeforeValidator(_parse_serial),
    Field(gt=0),
    PlainSerializer(lambda value: format(value, "x"), return_type=str),
]
Name = Annotated[str, AfterValidator(check_name)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeStatus(StrEnum):
    """Whether a node's certificate is still honoured."""

    ACTIVE = "active"
    REVOKED = "revoked"


class ReplacedCertificate(_Record):
    """A certificate that renewal replaced: honoured until it expires, unless it was revoked."""

    serial_number: SerialNumber
    not_after: AwareDatetime
    replaced_at: AwareDatetime
    revoked_at: AwareDatetime | None = None
    revocation_reason: str | None = None


class RosterEntry(_Record):
    """One enrolled party: its certificate's serial number, lifetime and status.

    ``replaced`` lists the certificates renewal replaced, oldest first.
    """

    name: Name
    serial_number: SerialNumber
    not_after: AwareDatetime
    status: NodeStatus = NodeStatus.ACTIVE
    revoked_at: AwareDatetime | None = None
    revocation_reason: str | None = None
    replaced: tuple[ReplacedCertificate, ...] = ()

    def replaced_certificate(self, serial_number: int) -> ReplacedCertificate | None:
        """Return the replaced certificate with ``serial_number``, or ``None``."""
        return next((old for old in self.replaced if old.serial_number == serial_number), None)

    def revoked_serials(self) -> tuple[RevokedSerial, ...]:
        """Every serial of this holder a revocation list must name.

        All of them once the holder is revoked; otherwise the replaced certificates revoked on
        renewal.
        """
        if self.status is NodeStatus.REVOKED:
            at = self.revoked_at or self.not_after  # revoke_node always records revoked_at
            return (
                RevokedSerial(self.serial_number, at),
                *(RevokedSerial(old.serial_number, old.revoked_at or at) for old in self.replaced),
            )
        return tuple(
            RevokedSerial(old.serial_number, old.revoked_at)
            for old in self.replaced
            if old.revoked_at is not None
        )


class Roster(_Record):
    """Who belongs to a federation; the coordinator admits only active nodes listed here.

    Parameters
    ----------
    federation
        The federation's name.
    coordinator_address
        The ``host:port`` nodes dial.
    validity_days
        Lifetime of certificates issued later by ``add-node``.
    coordinator
        The coordinator's certificate.
    nodes
        Every node ever enrolled, in enrolment order; revoked ones stay listed as revoked.
    """

    format_version: Literal[1] = 1
    federation: Name
    coordinator_address: str
    validity_days: int = Field(ge=1)
    coordinator: RosterEntry
    nodes: tuple[RosterEntry, ...] = ()

    def node(self, name: str) -> RosterEntry | None:
        """Return the entry of node ``name``, or ``None`` if it was never enrolled."""
        return next((entry for entry in self.nodes if entry.name == name), None)

    def entry(self, name: str) -> RosterEntry | None:
        """Return the entry of ``name``, the coordinator's or a node's, or ``None``."""
        return self.coordinator if name == self.coordinator.name else self.node(name)

    def with_entry(self, entry: RosterEntry) -> Roster:
        """Return a copy with the coordinator's or a node's entry replaced by ``entry``."""
        if entry.name == self.coordinator.name:
            return self.model_copy(update={"coordinator": entry})
        return self.with_node(entry)

    def revoked_serials(self) -> tuple[RevokedSerial, ...]:
        """Every serial number the federation's revocation list must name."""
        entries = (self.coordinator, *self.nodes)
        return tuple(serial for entry in entries for serial in entry.revoked_serials())

    def with_node(self, entry: RosterEntry) -> Roster:
        """Return a copy with ``entry`` added, or replacing the entry of the same name."""
        others = tuple(node for node in self.nodes if node.name != entry.name)
        if len(others) == len(self.nodes):
            return self.model_copy(update={"nodes": (*self.nodes, entry)})
        nodes = tuple(entry if node.name == entry.name else node for node in self.nodes)
        return self.model_copy(update={"nodes": nodes})

    def revoked(self) -> tuple[RosterEntry, ...]:
        """Return the entries of revoked nodes."""
        return tuple(node for node in self.nodes if node.status is NodeStatus.REVOKED)

    def to_json(self) -> bytes:
        """Serialise as indented JSON (stable key order, for diffs and review)."""
        return (self.model_dump_json(indent=2) + "\n").encode()


class KitManifest(_Record):
    """The ``kit.json`` of a startup kit: whose kit it is and where the coordinator is."""

    format_version: Literal[1] = 1
    role: Role
    federation: Name
    name: Name
    coordinator_address: str
    issued_at: AwareDatetime
    hosts: tuple[str, ...] = ()
    key_passphrase: PassphraseSource | None = None
    """Where the party finds its key's passphrase; ``None``: the key is not encrypted."""

    def to_json(self) -> bytes:
        """Serialise as indented JSON."""
        return (self.model_dump_json(indent=2) + "\n").encode()


def read_json_model(model: type[M], data: bytes, *, source: str) -> M:
    """Validate JSON ``data`` as ``model``.

    Raises
    ------
    ProvisioningError
        Naming ``source`` and the offending keys.
    """
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ProvisioningError(f"{source} is corrupt or not a kit file: {problems}") from exc
