"""Day one at real sites: one site joins late, one is revoked mid-job, one has the wrong file.

Four sites over mutual TLS, each a real process. The job finishes with the remaining sites; the
status says so and names the revoked and the malformed site with their reasons; every node that
stayed hears the job ended and exits 0 by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sovereign_ai.federation.local_processes import LocalFederation

from .conftest import CLASSES, LABEL, write_job
from .test_faults import slow_node_file

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]

SITES = ("north", "south", "central", "west")


def narrower_file(path: Path, folder: Path) -> Path:
    """The site's export with one feature column fewer than the job expects."""
    lines = path.read_text().splitlines()
    narrow = folder / f"narrow-{path.name}"
    narrow.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n")
    return narrow


def test_late_revoked_and_malformed_sites_do_not_stop_the_federation(
    tmp_path: Path, node_files: dict[str, Path]
) -> None:
    files = {
        "north": node_files["north"],
        "south": node_files["south"],
        "central": slow_node_file(node_files["central"], tmp_path, times=8),
        "west": narrower_file(node_files["north"], tmp_path),
    }
    job = write_job(tmp_path, rounds=5, epochs=6, timeout=120, wait=4, wait_s=3)
    with LocalFederation(tmp_path / "federation", SITES) as federation:
        federation.provision()
        federation.start_coordinator(job, extra=["--max-wait-s", "120"])
        for name in ("north", "central", "west"):  # south comes online later
            federation.start_node(name, files[name], label=LABEL, extra=["--classes", CLASSES])
        federation.wait_for_round(1, timeout_s=180)
        federation.start_node("south", files["south"], label=LABEL, extra=["--classes", CLASSES])

        federation.wait_for_round(2, timeout_s=180)
        subprocess.run(
            [sys.executable, "-m", "sovereign_ai.cli", "provision", "revoke", "central",
             "--out", str(federation.kits), "--reason", "laptop stolen"],
            check=True, capture_output=True,
        )  # fmt: skip

        assert federation.wait_for_coordinator(timeout_s=300) == 0, federation.tail(
            "coordinator", lines=80
        )
        for name in ("north", "south", "west"):  # told the job ended; they stop by themselves
            assert federation.nodes[name].wait(timeout=60) == 0, federation.tail(name)
        assert "finished after 5 of 5 rounds" in federation.tail("north")
        rounds = json.loads(federation.run.metrics.read_text())["rounds"]
        status_file = json.loads(federation.run.status.read_text())
        status_text = subprocess.run(
            [sys.executable, "-m", "sovereign_ai.cli", "coordinator", "status",
             "--kit", str(federation.kits / "coordinator"), "--out", str(federation.run.path)],
            check=True, capture_output=True, text=True, cwd=tmp_path,
        ).stdout  # fmt: skip

    answered = {r["round"]: r["answered"] for r in rounds}
    assert answered[1] == ["central", "north"]  # south was not there yet; west cannot train
    assert answered[5] == ["north", "south"]
    # Revoked during round 3 at the latest: from round 4 on, central is neither asked nor heard.
    assert all("central" not in r["cohort"] for r in rounds if r["round"] >= 4), rounds
    for record in rounds:
        assert "expects 30 feature columns" in record["failures"]["west"], record
    assert status_file["state"] == "finished"
    assert status_file["refused"] == {"central": "certificate revoked"}
    assert "west" in status_file["failures"]
    assert Path(status_file["final_model"]).is_file()
    flat = " ".join(status_text.split())
    assert "finished" in flat
    assert "central (certificate revoked)" in flat
    assert "Final model:" in flat
