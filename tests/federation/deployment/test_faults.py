"""Fault tests with real processes: SIGKILL the coordinator or a node, and check the outcome.

The coordinator is killed between rounds, during training and during collection (some results of
the round in, others not); a node is killed mid-round; a node lost below the minimum stops the job.

The reference for "identical" is the same job over the in-memory transport with nodes built from
the same files: the gRPC transport must not change results, and neither may a crash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sovereign_ai.core import Parameters
from sovereign_ai.data import load_file
from sovereign_ai.federation import InMemoryTransport, load_job_spec
from sovereign_ai.federation.deployment import node_from_dataset, run_coordinator
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.federation.transports.grpc import fetch_status
from sovereign_ai.pki import load_coordinator_kit

from .conftest import CLASSES, LABEL, NODES, start_nodes, write_job

# Real processes with deadlines of seconds: one such test at a time, on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]


def final_parameters(federation: LocalFederation) -> Parameters:
    files = sorted((federation.run.state / "parameters").glob("round-*.safetensors"))
    return Parameters.from_bytes(files[-1].read_bytes())


def in_memory_reference(job: Path, files: dict[str, Path], tmp_path: Path) -> Parameters:
    spec = load_job_spec(job)
    nodes = [
        node_from_dataset(name, load_file(files[name], label=LABEL, classes=CLASSES.split(",")))
        for name in NODES
    ]
    with InMemoryTransport(nodes, max_workers=1) as transport:
        history = run_coordinator(spec, transport=transport, state_dir=tmp_path / "reference")
    assert history.parameters is not None
    return history.parameters


@pytest.mark.parametrize(
    ("delay_s", "epochs"), [(0.0, 3), (0.3, 25)], ids=["between-rounds", "during-training"]
)
def test_coordinator_sigkill_then_resume_gives_identical_model(
    federation: LocalFederation,
    node_files: dict[str, Path],
    tmp_path: Path,
    delay_s: float,
    epochs: int,
) -> None:
    job = write_job(tmp_path, epochs=epochs)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    federation.wait_for_round(2, timeout_s=180)
    time.sleep(delay_s)
    federation.kill("coordinator")
    killed_after = federation.durable_round()
    assert 2 <= killed_after < 6, "the job finished before the crash; make it longer"
    if delay_s:
        status = json.loads(federation.run.status.read_text())
        assert status["stage"] in {"train", "evaluate"}, status

    federation.start_coordinator(job, resume=True)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail("coordinator")
    assert f"Resumed after round {killed_after}" in federation.tail("coordinator", lines=200)
    assert final_parameters(federation) == in_memory_reference(job, node_files, tmp_path)


def test_coordinator_sigkill_during_collection_then_resume_gives_identical_model(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    """Killed after some results of a round arrived and before the others: none may count."""
    files = {**node_files, "central": slow_node_file(node_files["central"], tmp_path, times=8)}
    job = write_job(tmp_path, rounds=4, epochs=20)
    federation.start_coordinator(job)
    start_nodes(federation, files)
    federation.wait_for_round(1, timeout_s=180)
    kit = load_coordinator_kit(federation.kits / "coordinator")
    deadline = time.monotonic() + 120
    while True:  # until north and south have answered round 2's training and central has not
        status = fetch_status(kit)
        busy = {node.node_id: node.is_busy for node in status.nodes}
        if (status.round_number, status.stage) == (2, "train") and busy == {
            "central": True,
            "north": False,
            "south": False,
        }:
            break
        assert status.round_number <= 2 and time.monotonic() < deadline, status
        time.sleep(0.05)
    federation.kill("coordinator")
    assert federation.durable_round() == 1

    federation.start_coordinator(job, resume=True)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail("coordinator")
    assert "Resumed after round 1" in federation.tail("coordinator", lines=200)
    assert final_parameters(federation) == in_memory_reference(job, files, tmp_path)


def slow_node_file(path: Path, folder: Path, *, times: int) -> Path:
    """The same rows repeated ``times`` times: a node that trains ``times`` times longer."""
    header, *rows = path.read_text().splitlines()
    slow = folder / f"slow-{path.name}"
    slow.write_text("\n".join([header, *(rows * times)]) + "\n")
    return slow


def test_coordinator_restart_without_resume_is_refused(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    job = write_job(tmp_path, rounds=2, epochs=1)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    federation.wait_for_round(1, timeout_s=180)
    federation.kill("coordinator")
    federation.start_coordinator(job)
    assert federation.wait_for_coordinator(timeout_s=60) == 2
    assert "--resume" in federation.tail("coordinator")


def test_node_killed_mid_round_round_completes_and_node_rejoins(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    job = write_job(tmp_path, rounds=7, epochs=25, timeout=6, wait_s=4)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    federation.wait_for_round(1, timeout_s=180)
    federation.kill("central")
    killed_after = federation.durable_round()
    assert killed_after < 5, "the job was nearly over before the crash; make rounds longer"
    federation.wait_for_round(killed_after + 2, timeout_s=120)
    start_nodes(federation, node_files, names=("central",))
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail("coordinator")

    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    answered = {r["round"]: r["answered"] for r in rounds}
    assert answered[1] == sorted(NODES)
    assert any(sorted(a) == ["north", "south"] for a in answered.values()), answered
    assert answered[max(answered)] == sorted(NODES), "the restarted node did not rejoin"


def test_too_few_nodes_stops_the_job_naming_the_missing(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    job = write_job(tmp_path, rounds=5, epochs=1, timeout=5, wait_s=2, min_nodes=3)
    federation.start_coordinator(job, extra=["--max-wait-s", "10"])
    start_nodes(federation, node_files)
    federation.wait_for_round(1, timeout_s=180)
    federation.kill("south")
    assert federation.wait_for_coordinator(timeout_s=120) == 2
    log = federation.tail("coordinator", lines=60)
    assert "needs at least 3" in log
    assert "south" in log
