"""``sovereign audit`` on a coordinator's kit: its log verifies, the report says what it took in
from each node and how the job ended, and its entries are provable as the coordinator's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.federation import RoundReport, StageResults, parse_job_spec
from sovereign_ai.federation.audited_coordinator import CoordinatorAudit, open_coordinator_log
from sovereign_ai.federation.digests import payload_digest
from sovereign_ai.pki import load_coordinator_kit, parse_federation_spec, provision

runner = CliRunner(env={"COLUMNS": "200"})
SPEC = parse_job_spec({"job": {"name": "audit-cli", "rounds": 1}, "model": {"name": "logreg"}})


def update() -> Parameters:
    return Parameters({"w": np.ones(250, np.float32)})


@pytest.fixture
def coordinator_kit(tmp_path: Path) -> Path:
    """A provisioned coordinator kit whose log holds one job: two nodes' updates taken in, one
    node's refused, the round's model, and the final model file."""
    spec = parse_federation_spec(
        {
            "federation": {"name": "audit-cli", "validity_days": 30},
            "coordinator": {
                "name": "coordinator",
                "address": "localhost:8443",
                "hosts": ["localhost"],
            },
            "nodes": [{"name": name} for name in ("north", "south", "east")],
        }
    )
    report = provision(spec, tmp_path / "federation", allow_unencrypted_keys=True)
    kit = load_coordinator_kit(report.out_dir / "coordinator")
    sent = update()
    answered = StageResults(
        [
            Result(SPEC.job_id, 1, Stage.TRAIN, node, 20, sent, {"train_loss": 0.3})
            for node in ("north", "south")
        ],
        {"east": "answer refused: reports 2^40 examples; at most 10000000"},
    )
    model = tmp_path / "model.safetensors"
    model.write_bytes(sent.to_bytes())
    with open_coordinator_log(kit) as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)
        audit.job_started(SPEC, resume=False)
        audit.on_starting_model(0, sent)
        audit.on_stage_end(1, Stage.TRAIN, answered)
        report_1 = RoundReport(1, ["east", "north", "south"], ["north", "south"],
                               dict(answered.failures), {"train_loss": 0.3})  # fmt: skip
        audit.on_round_adopted(report_1, sent)
        audit.job_finished(model_file=model, rounds_completed=1)
    return kit.folder


def test_verify_and_report_on_a_coordinator_kit(coordinator_kit: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "--kit", str(coordinator_kit)])
    assert result.exit_code == 0, result.output
    assert "the audit log of 'coordinator' verifies: 7 entries" in result.output
    assert "not signed yet" not in result.output  # the round and the job's end are signed

    result = runner.invoke(app, ["audit", "report", "--kit", str(coordinator_kit)])
    assert result.exit_code == 0, result.output
    assert f"What this coordinator took in for job {SPEC.job_id}" in result.output
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    size = payload_digest(update())[1]  # as the transport carries it: header and tensor
    assert cells == [
        ["east", "0", "0", "1", "answer refused: reports 2^40 examples; at most 10000000"],
        ["north", "1", f"{size:,}", "0", ""],
        ["south", "1", f"{size:,}", "0", ""],
    ]
    assert "Job finished after 1 round(s): final model" in result.output
    assert "What left this site" not in result.output  # a coordinator's log records no egress


def test_a_coordinator_entry_is_proven_as_the_coordinators(
    coordinator_kit: Path, tmp_path: Path
) -> None:
    proof = tmp_path / "proof.json"
    result = runner.invoke(
        app, ["audit", "prove", "--kit", str(coordinator_kit), "--entry", "2", "--out", str(proof)]
    )
    assert result.exit_code == 0, result.output
    ca = coordinator_kit / "ca.pem"
    result = runner.invoke(app, ["audit", "check-proof", str(proof), "--ca", str(ca)])
    assert result.exit_code == 0, result.output
    assert "entry 2 (received, job" in result.output and "by coordinator" in result.output
