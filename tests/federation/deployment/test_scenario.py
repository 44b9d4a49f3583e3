"""Day one at real sites: one site joins late, one is revoked mid-job, one has the wrong file.

Four sites over mutual TLS, each a real process. The job finishes with the remaining sites; the
status says so and names the revoked and the malformed site with their reasons; every node that
stayed hears the job ended and exits 0 by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.pki import revoke_node

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


def refused_in_round(federation: LocalFederation, node: str) -> int:
    """The round in progress when the coordinator's status first lists ``node`` as refused."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = json.loads(federation.run.status.read_text())
        except (OSError, json.JSONDecodeError):  # rewritten every second
            status = {}
        if node in status.get("refused", {}):
            return int(status["round_number"])
        time.sleep(0.1)
    raise AssertionError(f"{node} was never listed as refused:\n{federation.tail('coordinator')}")


def test_late_revoked_and_malformed_sites_do_not_stop_the_federation(
    tmp_path: Path, node_files: dict[str, Path]
) -> None:
    files = {
        "north": node_files["north"],
        "south": node_files["south"],
        "central": slow_node_file(node_files["central"], tmp_path, times=8),
        "west": narrower_file(node_files["north"], tmp_path),
    }
    job = write_job(tmp_path, rounds=6, epochs=6, timeout=120, wait=4, wait_s=3)
    with LocalFederation(tmp_path / "federation", SITES) as federation:
        federation.provision()
        federation.start_coordinator(job, extra=["--max-wait-s", "120"])
        for name in ("north", "central", "west"):  # south comes online later
            federation.start_node(name, files[name], label=LABEL, extra=["--classes", CLASSES])
        federation.wait_for_round(1, timeout_s=180)
        federation.start_node("south", files["south"], label=LABEL, extra=["--classes", CLASSES])

        federation.wait_for_round(2, timeout_s=180)
        revoke_node(federation.kits, "central", reason="laptop stolen")  # as provision revoke
        revoked_by = refused_in_round(federation, "central")

        assert federation.wait_for_coordinator(timeout_s=300) == 0, federation.tail(
            "coordinator", lines=80
        )
        for name in ("north", "south", "west"):  # told the job ended; they stop by themselves
            assert federation.nodes[name].wait(timeout=60) == 0, federation.tail(name)
        north_log = " ".join(federation.tail("north", lines=200).split())
        assert "finished after 6 of 6 rounds" in north_log
        assert "round 1 train: " in north_log and "sent a model update" in north_log
        assert "round 0 statistics: " in north_log and "no rows)" in north_log
        rounds = json.loads(federation.run.metrics.read_text())["rounds"]
        status_file = json.loads(federation.run.status.read_text())
        status_text = subprocess.run(
            [sys.executable, "-m", "sovereign_ai.cli", "coordinator", "status",
             "--kit", str(federation.kits / "coordinator"), "--out", str(federation.run.path)],
            check=True, capture_output=True, text=True, cwd=tmp_path,
        ).stdout  # fmt: skip

    answered = {r["round"]: r["answered"] for r in rounds}
    assert answered[1] == ["central", "north"]  # south was not there yet; west cannot train
    assert answered[6] == ["north", "south"]
    after = [r for r in rounds if r["round"] > revoked_by]
    assert after, "the job ended before the revocation was seen; make it longer"
    assert all("central" not in r["cohort"] for r in after), rounds  # never asked again
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
