"""``sovereign privacy report`` and the node's ``[privacy]`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.private_node import (
    LEDGER_FILE,
    NodePrivacySettings,
    open_node_ledger,
)
from sovereign_ai.privacy import PrivacyEvent, epsilon_spent

runner = CliRunner(env={"COLUMNS": "300"})


def test_the_report_shows_each_jobs_spend_and_the_composed_total(tmp_path: Path) -> None:
    settings = NodePrivacySettings(dataset="oncology", max_epsilon=8.0)
    events = {"job-a": PrivacyEvent(1.2, 0.1, 30), "job-b": PrivacyEvent(2.0, 0.2, 10)}
    with open_node_ledger(tmp_path, settings) as ledger:
        for job, event in events.items():
            ledger.spend("oncology", event, job_id=job, round_number=event.steps)
    total = epsilon_spent(list(events.values()), delta=1e-5)
    result = runner.invoke(app, ["privacy", "report", "--kit", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"ε spent {total:.3f} of 8" in result.output
    assert f"{8 - total:.3f} left" in result.output
    for job, event in events.items():
        alone = epsilon_spent([event], delta=1e-5)
        assert job in result.output and f"{alone:.3f}" in result.output


def test_the_report_counts_dpsgd_rounds_not_their_sgd_steps(tmp_path: Path) -> None:
    settings = NodePrivacySettings(dataset="oncology", max_epsilon=50.0)
    with open_node_ledger(tmp_path, settings) as ledger:
        for round_number in (1, 2):  # two DP-SGD rounds of 12 steps each
            event = PrivacyEvent(1.0, 0.1, 12)
            ledger.spend("oncology", event, job_id="job-s", round_number=round_number, what="dpsgd")
        ledger.spend("oncology", PrivacyEvent(1.0, 0.3, 5), job_id="job-c", round_number=5)
    result = runner.invoke(app, ["privacy", "report", "--kit", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line for line in result.output.splitlines() if "job-" in line
    }
    assert [c.strip() for c in rows["job-s"].split("│")[2:5]] == ["record (DP-SGD)", "2", "2"]
    assert [c.strip() for c in rows["job-c"].split("│")[2:5]] == ["site", "5", "5"]


def test_the_report_says_what_to_do_without_a_ledger(tmp_path: Path) -> None:
    result = runner.invoke(app, ["privacy", "report", "--kit", str(tmp_path)])
    assert result.exit_code == 2
    assert "No privacy ledger" in result.output


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"dataset": "x", "max_epsilon": 4.0, "max_epsilonn": 3.0}, "'max_epsilonn'"),
        ({"dataset": "x"}, "'max_epsilon'"),
        ({"dataset": "x", "max_epsilon": -1.0}, "'max_epsilon'"),
        ({"dataset": "x", "max_epsilon": 1.0, "delta": 2.0}, "'delta'"),
        ({"dataset": "x", "max_epsilon": "4"}, "'max_epsilon'"),
    ],
)
def test_node_privacy_settings_name_the_key_at_fault(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NodePrivacySettings.parse(table, source="node.toml")


def test_the_node_ledger_lives_in_the_kit_and_keeps_its_delta(tmp_path: Path) -> None:
    first = NodePrivacySettings(dataset="d", max_epsilon=4.0)
    with open_node_ledger(tmp_path, first) as ledger:
        ledger.spend("d", PrivacyEvent(1.0, 0.1, 5), job_id="j", round_number=5)
    assert (tmp_path / LEDGER_FILE).exists()
    with pytest.raises(ConfigError, match="must keep them"):
        open_node_ledger(tmp_path, NodePrivacySettings(dataset="d", max_epsilon=4.0, delta=1e-6))
