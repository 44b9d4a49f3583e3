"""``sovereign provision``: the commands as a user types them, mounted the way cli/main.py does."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sovereign_ai.cli.provision import provision_app
from sovereign_ai.pki import load_coordinator_kit, load_node_kit

EXAMPLE = Path(__file__).parents[2] / "examples" / "federation.toml"
NODES = (
    "charite-berlin",
    "karolinska-stockholm",
    "amc-amsterdam",
    "hcl-lyon",
    "vall-hebron-barcelona",
)

app = typer.Typer()
app.add_typer(provision_app, name="provision")


@app.callback()
def _root() -> None:
    """Stands in for the main app, so that `provision` is a sub-command as in production."""


runner = CliRunner(env={"COLUMNS": "300"})  # rich wraps output at the terminal width
PASSPHRASE = "a long passphrase for the tests"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """The administrator's (and every party's) default passphrase source, as in production."""
    monkeypatch.setenv("SOVEREIGN_KIT_PASSPHRASE", PASSPHRASE)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "federation"
    result = runner.invoke(app, ["provision", str(EXAMPLE), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_provision_file_out_dir_creates_every_kit(out: Path) -> None:
    assert sorted(p.name for p in (out / "nodes").iterdir()) == sorted(NODES)
    assert stat.S_IMODE((out / "nodes" / "hcl-lyon" / "node.key").stat().st_mode) == 0o600
    assert load_coordinator_kit(out / "coordinator").roster.federation == "oncology-consortium"


def test_summary_table_lists_every_party(tmp_path: Path) -> None:
    result = runner.invoke(app, ["provision", "--out", str(tmp_path / "f"), str(EXAMPLE)])

    assert result.exit_code == 0, result.output
    for name in ("coordinator", *NODES):
        assert name in result.output
    assert "nodes/charite-berlin" in result.output
    assert "Keep" in result.output and "CA key" in result.output


def test_explicit_create_command_is_the_same(tmp_path: Path) -> None:
    result = runner.invoke(app, ["provision", "create", str(EXAMPLE), "-o", str(tmp_path / "f")])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "f" / "ca" / "ca.key").is_file()


def test_existing_folder_is_not_overwritten(out: Path) -> None:
    key_before = (out / "ca" / "ca.key").read_bytes()

    result = runner.invoke(app, ["provision", str(EXAMPLE), "--out", str(out)])

    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (out / "ca" / "ca.key").read_bytes() == key_before


def test_bad_federation_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "federation.toml"
    bad.write_text(EXAMPLE.read_text().replace('name = "hcl-lyon"', 'name = "HCL Lyon"'))

    result = runner.invoke(app, ["provision", str(bad), "--out", str(tmp_path / "f")])

    assert result.exit_code == 2
    assert "'nodes[3].name' must be a lowercase DNS label" in result.output
    assert not (tmp_path / "f").exists()


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "federation.toml"
    bad.write_text("[federation\nname = 1")

    result = runner.invoke(app, ["provision", str(bad), "--out", str(tmp_path / "f")])

    assert result.exit_code == 2
    assert "is not valid TOML" in result.output


def test_add_node_then_revoke(out: Path) -> None:
    added = runner.invoke(app, ["provision", "add-node", "uz-leuven", "--out", str(out)])
    assert added.exit_code == 0, added.output
    assert load_node_kit(out / "nodes" / "uz-leuven").name == "uz-leuven"

    revoked = runner.invoke(
        app, ["provision", "revoke", "uz-leuven", "--out", str(out), "--reason", "test site"]
    )
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.output
    roster = load_coordinator_kit(out / "coordinator").roster
    entry = roster.node("uz-leuven")
    assert entry is not None and entry.revocation_reason == "test site"


def test_revoke_requires_a_reason(out: Path) -> None:
    result = runner.invoke(app, ["provision", "revoke", "hcl-lyon", "--out", str(out)])

    assert result.exit_code == 2
    assert "--reason" in result.output


def test_add_existing_node_is_refused(out: Path) -> None:
    result = runner.invoke(app, ["provision", "add-node", "hcl-lyon", "--out", str(out)])

    assert result.exit_code == 2
    assert "already enrolled" in result.output


@pytest.mark.parametrize("folder", ["", "coordinator", "nodes/amc-amsterdam"])
def test_check_reports_a_healthy_kit(out: Path, folder: str) -> None:
    result = runner.invoke(app, ["provision", "check", str(out / folder)])

    assert result.exit_code == 0, result.output
    assert "No certificate expires within 30 days" in result.output


def test_check_warns_ahead_of_expiry(out: Path) -> None:
    result = runner.invoke(app, ["provision", "check", str(out), "--within-days", "400"])

    assert result.exit_code == 0, result.output
    assert result.output.count("warning:") == 1 + len(NODES)
    assert "node certificate of 'hcl-lyon' expires on" in result.output


def test_check_refuses_a_key_others_can_read(out: Path) -> None:
    key = out / "nodes" / "hcl-lyon" / "node.key"
    key.chmod(0o644)

    result = runner.invoke(app, ["provision", "check", str(key.parent)])

    assert result.exit_code == 2
    assert "chmod 600" in result.output


def test_help_explains_every_command() -> None:
    result = runner.invoke(app, ["provision", "--help"])

    assert result.exit_code == 0
    for command in ("create", "add-node", "revoke", "check"):
        assert command in result.output
    assert "FEDERATION.toml --out DIR" in result.output
