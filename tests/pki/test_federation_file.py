"""The federation file: valid files parse; every mistake is reported with the key that holds it."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sovereign_ai.errors import ConfigError
from sovereign_ai.pki import FederationSpec, parse_federation_spec

EXAMPLE = Path(__file__).parents[2] / "examples" / "federation.toml"

VALID: dict[str, Any] = {
    "federation": {"name": "oncology-consortium", "validity_days": 365},
    "coordinator": {
        "name": "coordinator",
        "address": "coordinator.example.org:8443",
        "hosts": ["coordinator.example.org", "localhost", "127.0.0.1", "::1"],
    },
    "nodes": [{"name": "hospital-a"}, {"name": "hospital-b"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with the value at a dotted path (``nodes.1.name``) replaced; ``...`` deletes it."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is ...:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


def test_valid_file_parses_with_defaults() -> None:
    spec = parse_federation_spec(VALID)

    assert spec.federation.name == "oncology-consortium"
    assert spec.federation.ca_validity_days == 3650
    assert spec.coordinator.hosts[-1] == "::1"
    assert [node.name for node in spec.nodes] == ["hospital-a", "hospital-b"]


def test_example_federation_file_is_valid() -> None:
    spec = parse_federation_spec(tomllib.loads(EXAMPLE.read_text()), source=str(EXAMPLE))

    assert len(spec.nodes) == 5
    assert spec.coordinator.address.startswith("localhost:")


def test_spec_is_frozen() -> None:
    spec = parse_federation_spec(VALID)

    with pytest.raises(ValueError, match="frozen"):
        spec.federation.name = "other"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("nodes.1.name", "Hospital_B", r"'nodes\[1\]\.name' must be a lowercase DNS label"),
        (
            "nodes.1",
            {"name": "hospital-a"},
            r"'nodes' node names must be unique; repeated: hospital-a",
        ),
        ("nodes.0.site", "x", r"'nodes\[0\]\.site' is not a known key"),
        ("federation.name", ..., r"'federation\.name' is required but missing"),
        ("federation.validity_days", "365", r"'federation\.validity_days' must be a valid integer"),
        ("federation.validity_days", 0, r"'federation\.validity_days' must be greater than"),
        ("federation.validity_days", 4000, r"'federation' validity_days \(4000\) must not exceed"),
        (
            "coordinator.address",
            "coordinator.example.org",
            r"'coordinator\.address' must be 'host:port'",
        ),
        (
            "coordinator.address",
            "elsewhere.org:8443",
            r"'coordinator' address host 'elsewhere\.org'",
        ),
        ("coordinator.hosts", [], r"'coordinator\.hosts' must list at least one"),
        ("coordinator.hosts", "localhost", r"'coordinator\.hosts' must be a valid array"),
        (
            "coordinator.hosts.1",
            "not a host",
            r"'coordinator\.hosts\[1\]' must be a DNS name or an IP",
        ),
        ("coordinator", ..., r"'coordinator' is required but missing"),
        ("nodes.0.name", "coordinator", r"node name 'coordinator' is also the coordinator's name"),
    ],
)
def test_errors_name_the_offending_key(path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        parse_federation_spec(_with(path, value), source="federation.toml")

    assert str(caught.value).startswith("federation.toml is invalid:")


def test_unknown_top_level_table_is_refused() -> None:
    data = {**VALID, "node": [{"name": "typo"}]}

    with pytest.raises(ConfigError, match=r"'node' is not a known key"):
        parse_federation_spec(data)


def test_every_problem_is_reported_at_once() -> None:
    data = _with("nodes.1.name", "BAD")
    data["federation"]["validity_days"] = -1

    with pytest.raises(ConfigError) as caught:
        parse_federation_spec(data)

    assert "nodes[1].name" in str(caught.value)
    assert "federation.validity_days" in str(caught.value)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is invalid"):
        parse_federation_spec({})


def test_federation_without_nodes_is_allowed() -> None:
    spec = parse_federation_spec(_with("nodes", []))

    assert spec.nodes == ()
    assert isinstance(spec, FederationSpec)
