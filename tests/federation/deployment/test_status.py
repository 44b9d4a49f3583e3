"""`sovereign coordinator status` against a real coordinator process, and after it is gone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.federation.local_processes import LocalFederation

from .conftest import start_nodes, write_job

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
