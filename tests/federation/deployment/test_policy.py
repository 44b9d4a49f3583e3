"""Node policies over real processes: gRPC with mutual TLS, each site's policy.toml in its kit.

The federation's CA certifies the coordinator's jurisdiction (DE). ``north``'s owner requires
secure aggregation, which the job lacks: north refuses it at its first task, and every task
after, and the coordinator learns only the reason code, which its status and the run's metrics
show; the job finishes with the others. ``south`` pins the coordinator's certificate and
jurisdiction, which the node reads from the TLS handshake, and takes part. ``central`` has no
policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.pki import certificate_fingerprint

from .conftest import NODES, start_nodes, write_job

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]

CODE = "policy.secure_aggregation_required"
REFUSAL = f"refused by its policy ({CODE})"


def test_a_node_refuses_a_job_without_secure_aggregation_and_the_others_finish_it(
    tmp_path: Path, node_files: dict[str, Path]
) -> None:
    with LocalFederation(tmp_path / "federation", NODES) as federation:
        federation.provision(coordinator_jurisdiction="DE")
        coordinator_pem = (federation.kits / "coordinator" / "coordinator.pem").read_bytes()
        (federation.node_kit("north") / "policy.toml").write_text(
            'jurisdiction = "DE"\nrequire_secure_aggregation = true\n'
        )
        (federation.node_kit("south") / "policy.toml").write_text(
            f'allowed_coordinators = ["{certificate_fingerprint(coordinator_pem)}"]\n'
            'coordinator_jurisdictions = ["DE"]\n'
        )
        federation.start_coordinator(write_job(tmp_path, rounds=2, epochs=1))
        start_nodes(federation, node_files)
        assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail(
            "coordinator", lines=80
        )

        rounds = json.loads(federation.run.metrics.read_text())["rounds"]
        assert [sorted(r["answered"]) for r in rounds] == [["central", "south"]] * 2
        assert all(r["failures"] == {"north": f"node declined: {REFUSAL}"} for r in rounds)

        status = CliRunner().invoke(
            app,
            [
                "coordinator",
                "status",
                "--kit",
                str(federation.kits / "coordinator"),
                "--out",
                str(federation.run.path),
            ],
            env={"COLUMNS": "200"},
        )
        assert status.exit_code == 0, status.output
        assert "north" in status.output and REFUSAL in status.output

        north = " ".join(federation.log("north").read_text().split())  # lines wrap anywhere
        assert "secure aggregation required" in north  # the policy's summary at start
        assert "without secure aggregation" in north  # the reason, in the node's own log
        coordinator_side = federation.log("coordinator").read_text()
        coordinator_side += federation.run.metrics.read_text() + status.output
        coordinator_side = " ".join(coordinator_side.split())
        assert "without secure aggregation" not in coordinator_side  # only the code went out
        south = " ".join(federation.log("south").read_text().split())
        assert "coordinator in DE" in south and "refused by its policy" not in south
