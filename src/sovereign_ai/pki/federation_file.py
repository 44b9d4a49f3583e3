"""The federation file a person writes: who the coordinator is and which nodes are enrolled.

A federation file is TOML; the command line reads it and hands the parsed mapping to
:func:`parse_federation_spec`, which returns a validated, frozen :class:`FederationSpec`::

    [federation]
    name = "oncology-consortium"
    validity_days = 365                      # coordinator and node certificates
    ca_validity_days = 3650                  # the federation CA (optional)

    [coordinator]
    name = "coordinator"
    address = "coordinator.example.org:8443" # host:port the nodes dial
    hosts = ["coordinator.example.org", "localhost", "127.0.0.1"]
    jurisdiction = "DE"                      # optional: certified for nodes' policies

    [[nodes]]
    name = "hospital-a"
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sovereign_ai.core.jurisdiction import check_jurisdiction
from sovereign_ai.errors import ConfigError

__all__ = [
    "CoordinatorSection",
    "FederationSection",
    "FederationSpec",
    "NodeEntry",
    "parse_federation_spec",
]

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAX_VALIDITY_DAYS = 36_500  # a century: anything longer is a typo


def check_name(value: str) -> str:
    """Return ``value`` if it is a valid federation, coordinator or node name.

    Names are lowercase DNS labels (``a-z``, ``0-9`` and inner ``-``, at most 63 characters), so
    they are safe as folder names, certificate common names and URI components.

    Raises
    ------
    ValueError
        If ``value`` is not such a label.
    """
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be a lowercase DNS label (a-z, 0-9 and '-' inside, at most 63 characters); "
            f"got {value!r} instead"
        )
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.rstrip(".").split(".")
        if len(value) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
            raise ValueError(
                f"must be a DNS name or an IP address; got {value!r} instead"
            ) from None
    return value


def _check_address(value: str) -> str:
    split_address(value)
    return value


def split_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6]:port"``) into host and port.

    Raises
    ------
    ValueError
        If ``address`` has no port, an empty host or a port outside 1–65535.
    """
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"must be 'host:port' with a port in 1-65535; got {address!r} instead")
    return host, int(port_text)


Name = Annotated[StrictStr, AfterValidator(check_name)]
Host = Annotated[StrictStr, AfterValidator(_check_host)]
Address = Annotated[StrictStr, AfterValidator(_check_address)]
Jurisdiction = Annotated[StrictStr, AfterValidator(check_jurisdiction)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FederationSection(_Section):
    """The ``[federation]`` table: its name and how long certificates stay valid."""

    name: Name
    validity_days: StrictInt = Field(default=365, ge=1, le=_MAX_VALIDITY_DAYS)
    ca_validity_days: StrictInt = Field(default=3650, ge=1, le=_MAX_VALIDITY_DAYS)

    @model_validator(mode="after")
    def _ca_outlives_certificates(self) -> Self:
        if self.validity_days > self.ca_validity_days:
            raise ValueError(
                f"validity_days ({self.validity_days}) must not exceed ca_validity_days "
                f"({self.ca_validity_days}): no certificate may outlive the CA that signed it"
            )
        return self


class CoordinatorSection(_Section):
    """The ``[coordinator]`` table: the address nodes dial and the names on its certificate.

    ``jurisdiction`` (optional) is the jurisdiction the coordinator operates under; the CA
    writes it into the coordinator's certificate, where nodes' policies read it
    (``coordinator_jurisdictions``, docs/node-policy.md).
    """

    name: Name = "coordinator"
    address: Address
    hosts: tuple[Host, ...]
    jurisdiction: Jurisdiction | None = None

    @field_validator("hosts", mode="after")
    @classmethod
    def _has_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        if not hosts:
            raise ValueError("must list at least one DNS name or IP address; got [] instead")
        return hosts

    @model_validator(mode="after")
    def _address_is_on_certificate(self) -> Self:
        host, _ = split_address(self.address)
        if host.lower() not in {h.lower() for h in self.hosts}:
            raise ValueError(
                f"address host {host!r} must also be listed in hosts {list(self.hosts)!r}: "
                "nodes check it against the coordinator certificate"
            )
        return self


class NodeEntry(_Section):
    """One ``[[nodes]]`` entry: a data owner's site."""

    name: Name


class FederationSpec(_Section):
    """A validated federation file.

    Parameters
    ----------
    federation
        Name and certificate lifetimes.
    coordinator
        Name, address and certificate host names of the coordinator.
    nodes
        The nodes to enrol now; more can be added later without re-issuing anyone.
    """

    federation: FederationSection
    coordinator: CoordinatorSection
    nodes: tuple[NodeEntry, ...] = ()

    @field_validator("nodes", mode="after")
    @classmethod
    def _names_are_unique(cls, nodes: tuple[NodeEntry, ...]) -> tuple[NodeEntry, ...]:
        names = [node.name for node in nodes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"node names must be unique; repeated: {', '.join(repeated)}")
        return nodes

    @model_validator(mode="after")
    def _coordinator_is_not_a_node(self) -> Self:
        if self.coordinator.name in {node.name for node in self.nodes}:
            raise ValueError(
                f"node name {self.coordinator.name!r} is also the coordinator's name; "
                "choose distinct names"
            )
        return self


def _key_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(("function-", "tuple[")):
            path += f".{part}" if path else part
    return path or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    key = _key_path(tuple(error["loc"]))
    kind = error["type"]
    if kind == "missing":
        return f"'{key}' is required but missing"
    if kind == "extra_forbidden":
        return f"'{key}' is not a known key"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"'{key}' {message}"
    # pydantic's own wording ("Input should be a valid tuple"); TOML calls tuples arrays
    message = message.replace("Input should be", "must be").replace("tuple", "array")
    return f"'{key}' {message}; got {error.get('input')!r} instead"


def parse_federation_spec(
    data: Mapping[str, Any], *, source: str = "federation file"
) -> FederationSpec:
    """Validate a parsed federation file.

    Parameters
    ----------
    data
        The mapping parsed from TOML (``tomllib.load``).
    source
        How to name the file in error messages, e.g. its path.

    Returns
    -------
    FederationSpec
        The validated, frozen specification.

    Raises
    ------
    ConfigError
        Naming every offending key (``'nodes[2].name' must be a lowercase DNS label ...``).
    """
    try:
        return FederationSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"{source} is invalid:\n  - " + "\n  - ".join(problems)) from exc
