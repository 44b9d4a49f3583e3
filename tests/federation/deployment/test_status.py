"""`sovereign coordinator status` against a real coordinator process, and after it is gone."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.core import Parameters
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.governance.audit_log import AUDIT_FILE, read_entries

from .conftest import NODES, start_nodes, write_job

# Real processes with deadlines of seconds: one such test at a time, on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]


def invoke_status(federation: LocalFederation, kit: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["coordinator", "status", "--kit", str(kit), "--out", str(federation.run.path)],
        env={"COLUMNS": "120"},
    )
    return result.exit_code, result.output


def status(federation: LocalFederation, kit: Path) -> str:
    code, output = invoke_status(federation, kit)
    assert code == 0, output
    return output


def test_status_over_mtls_with_either_kit_then_from_the_state_file(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    # The job waits for a third node that never comes, so the two others stay connected.
    job = write_job(tmp_path, rounds=2, wait=3, wait_s=120)
    federation.start_coordinator(job)
    start_nodes(federation, node_files, names=("north", "south"))
    deadline = time.monotonic() + 120
    while True:  # until the coordinator is up and both nodes have dialled in
        code, live = invoke_status(federation, federation.kits / "coordinator")
        if code == 0 and "2 connected node(s)" in live:
            break
        assert time.monotonic() < deadline, live
        time.sleep(0.5)

    from_node = status(federation, federation.node_kit("north"))
    status_file = federation.run.status
    while "south" not in status_file.read_text():  # written every second
        assert time.monotonic() < deadline, status_file.read_text()
        time.sleep(0.2)
    federation.kill("coordinator")
    from_file = status(federation, federation.kits / "coordinator")

    for output in (live, from_node, from_file):
        assert "Federation local-federation, coordinator coordinator" in output
        assert "north" in output and "south" in output
    assert "Showing the last status" not in live + from_node
    assert "Showing the last status" in from_file


def test_two_jobs_in_turn_on_one_coordinator_kit_each_get_their_own_run_folder(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    """The kit stays a credential: runs go to runs/<job name>, one folder per job."""
    kit_files = sorted(p.name for p in (federation.kits / "coordinator").iterdir())
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        job = write_job(tmp_path / name, rounds=1, epochs=1, wait=3, wait_s=30)
        job.write_text(job.read_text().replace('name = "faults"', f'name = "{name}"'))
        federation.start_coordinator(job, is_default_run_folder=True)
        start_nodes(federation, node_files)
        assert federation.wait_for_coordinator(timeout_s=180) == 0, federation.tail("coordinator")
        log = federation.tail("coordinator", lines=60)
        model = federation.folder / "runs" / name / "model.safetensors"
        assert f"Final model: {model}\n" in log  # whole on one line, to copy
        assert Parameters.from_bytes(model.read_bytes())  # a whole safetensors file
        for node in NODES:  # each node heard the job ended and exited by itself
            assert federation.nodes[node].wait(timeout=60) == 0, federation.tail(node)

    # The kit gains only the coordinator's own audit log, as a node's kit does.
    coordinator_kit = federation.kits / "coordinator"
    assert sorted(p.name for p in coordinator_kit.iterdir()) == sorted([*kit_files, AUDIT_FILE])
    status = json.loads((federation.folder / "runs" / "second" / "status.json").read_text())
    assert (status["state"], status["job_id"][:6]) == ("finished", "second")

    # Both jobs are in that log, each signed at its end, and it verifies.
    runner = CliRunner(env={"COLUMNS": "200"})
    verified = runner.invoke(app, ["audit", "verify", "--kit", str(coordinator_kit)])
    assert verified.exit_code == 0 and "not signed yet" not in verified.output, verified.output
    entries = read_entries(coordinator_kit / AUDIT_FILE)
    ends = [(e.job_id or "").split("-")[0] for e in entries if e.kind == "job_finished"]
    assert ends == ["first", "second"]
    for name in ("first", "second"):
        model = federation.folder / "runs" / name / "model.safetensors"
        (finished,) = [e.body for e in entries if e.kind == "job_finished" and e.job_id
                       and e.job_id.startswith(name)]  # fmt: skip
        assert finished["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    reported = runner.invoke(app, ["audit", "report", "--kit", str(coordinator_kit)])
    assert reported.exit_code == 0, reported.output
    assert all(node in reported.output for node in NODES)
    assert reported.output.count("Job finished after 1 round(s)") == 2
