"""``sovereign provision``: the commands as a user types them, mounted the way cli/main.py does."""

from __future__ import annotations

import shutil
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
    for command in ("create", "add-node", "renew", "revoke", "list", "check"):
        assert command in result.output
    assert "FEDERATION.toml --out DIR" in result.output


def _serial(folder: Path) -> int:
    return load_node_kit(folder, passphrase=PASSPHRASE.encode()).certificate.serial_number


def test_keys_are_encrypted_with_the_default_variable_named_in_each_kit(out: Path) -> None:
    key = out / "nodes" / "hcl-lyon" / "node.key"

    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert '"variable": "SOVEREIGN_KIT_PASSPHRASE"' in (key.parent / "kit.json").read_text()


def test_passphrase_file_option_records_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    secret = tmp_path / "kit.pass"
    secret.write_text("from a file, long enough\n")
    secret.chmod(0o600)

    result = runner.invoke(
        app, ["provision", str(EXAMPLE), "--out", "f", "--passphrase-file", "kit.pass"]
    )

    assert result.exit_code == 0, result.output
    assert f"passphrase from the file {secret}" in result.output
    kit = load_node_kit(tmp_path / "f" / "nodes" / "hcl-lyon")  # reads the file on its own
    assert kit.manifest.key_passphrase is not None and kit.manifest.key_passphrase.path == secret


def test_passphrase_options_are_exclusive_and_unencrypted_keys_warn(tmp_path: Path) -> None:
    both = runner.invoke(
        app,
        [
            *("provision", str(EXAMPLE), "-o", str(tmp_path / "a")),
            *("--passphrase-prompt", "--allow-unencrypted-keys"),
        ],
    )
    plain = runner.invoke(
        app, ["provision", str(EXAMPLE), "-o", str(tmp_path / "b"), "--allow-unencrypted-keys"]
    )

    assert both.exit_code == 2
    assert "Choose one of" in both.output and not (tmp_path / "a").exists()
    assert plain.exit_code == 0, plain.output
    assert "INSECURE" in plain.output and "NOT encrypted" in plain.output
    assert not load_node_kit(tmp_path / "b" / "nodes" / "hcl-lyon").is_key_encrypted


def test_missing_passphrase_without_a_terminal_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVEREIGN_KIT_PASSPHRASE")

    result = runner.invoke(app, ["provision", str(EXAMPLE), "--out", str(tmp_path / "f")])

    assert result.exit_code == 2
    assert "set SOVEREIGN_KIT_PASSPHRASE" in result.output and "--passphrase-file" in result.output
    assert not (tmp_path / "f").exists()


def test_renew_keeps_the_key_and_the_coordinator_admits_the_new_certificate(out: Path) -> None:
    folder = out / "nodes" / "hcl-lyon"
    key_before, serial_before = (folder / "node.key").read_bytes(), _serial(folder)

    result = runner.invoke(app, ["provision", "renew", "hcl-lyon", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "still works until it expires" in result.output
    assert "Copy node.pem from" in result.output
    assert (folder / "node.key").read_bytes() == key_before
    coordinator = load_coordinator_kit(out / "coordinator")
    assert _serial(folder) != serial_before
    entry = coordinator.roster.node("hcl-lyon")
    assert entry is not None and entry.serial_number == _serial(folder)


def test_renew_with_a_new_key_and_revoke_old_then_check_the_old_kit(
    out: Path, tmp_path: Path
) -> None:
    site = shutil.copytree(out / "nodes" / "hcl-lyon", tmp_path / "site")  # as installed

    result = runner.invoke(
        app,
        [
            *("provision", "renew", "hcl-lyon", "--out", str(out)),
            *("--new-key", "--revoke-old", "--reason", "key leaked"),
        ],
    )
    old = runner.invoke(app, ["provision", "check", str(site), "--roster", str(out)])
    new = runner.invoke(app, ["provision", "check", str(out / "nodes" / "hcl-lyon")])

    assert result.exit_code == 0, result.output
    assert "is revoked: it is refused from now on" in result.output
    assert "node.pem and node.key" in result.output
    assert old.exit_code == 1, old.output
    assert "revoked:" in old.output and "key leaked" in old.output
    assert new.exit_code == 0, new.output
    assert "Enrolled on the federation's roster: active" in new.output


def test_renew_refuses_passphrase_options_without_a_new_key(out: Path) -> None:
    result = runner.invoke(
        app, ["provision", "renew", "hcl-lyon", "--out", str(out), "--passphrase-prompt"]
    )

    assert result.exit_code == 2
    assert "apply to a new key only" in result.output


def test_check_reports_a_revoked_kit_as_revoked(out: Path) -> None:
    runner.invoke(app, ["provision", "revoke", "hcl-lyon", "--out", str(out), "--reason", "gone"])

    result = runner.invoke(app, ["provision", "check", str(out / "nodes" / "hcl-lyon")])

    assert result.exit_code == 1, result.output
    assert "revoked: the node certificate of 'hcl-lyon'" in result.output
    assert "gone" in result.output and "the coordinator refuses it" in result.output


def test_check_of_a_kit_away_from_its_roster_says_so(out: Path, tmp_path: Path) -> None:
    site = shutil.copytree(out / "nodes" / "hcl-lyon", tmp_path / "site")

    result = runner.invoke(app, ["provision", "check", str(site)])

    assert result.exit_code == 0, result.output
    assert "key encrypted (passphrase from the environment variable" in result.output
    assert "Enrolment not checked" in result.output and "--roster" in result.output


def test_list_shows_every_party_and_its_state(out: Path) -> None:
    runner.invoke(app, ["provision", "revoke", "hcl-lyon", "--out", str(out), "--reason", "gone"])
    runner.invoke(app, ["provision", "renew", "amc-amsterdam", "--out", str(out)])

    result = runner.invoke(app, ["provision", "list", str(out / "coordinator")])
    soon = runner.invoke(app, ["provision", "list", str(out), "--within-days", "4000"])

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines() if "│" in line}
    assert set(rows) >= {"coordinator", *NODES}
    assert "revoked" in rows["hcl-lyon"] and "gone" in rows["hcl-lyon"]
    assert "active" in rows["charite-berlin"]
    assert "renewed 1x" in rows["amc-amsterdam"]
    assert f"{len(NODES)} nodes enrolled" in result.output
    assert soon.output.count("expiring soon") == len(NODES)  # the revoked node is not expiring
    assert "sovereign provision renew charite-berlin" in soon.output
