"""Secure aggregation over real processes: gRPC, mutual TLS, keys signed with the kits' identities.

A node SIGKILLed while it trains (after sharing its secrets, before its masked input) is a
dropout the unmasking recovers from: the round completes with the others. A coordinator killed
mid-round resumes; the interrupted round restarts with fresh keys (a new session) and the final
model is the one the same secure job gives over the in-memory transport, bit for bit: masks
cancel exactly and the rounding coins are seeded per node and round.
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
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.pki.signing import ephemeral_federation

from .conftest import CLASSES, LABEL, NODES, start_nodes, write_job
from .test_faults import final_parameters

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]


def secure_job(folder: Path, **options: float) -> Path:
    job = write_job(folder, **options)  # type: ignore[arg-type]
    job.write_text(job.read_text() + "\n[secure_aggregation]\nenabled = true\n")
    return job


def secure_reference(job: Path, files: dict[str, Path], tmp_path: Path) -> Parameters:
    spec = load_job_spec(job)
    identities = ephemeral_federation("reference", NODES)
    nodes = []
    for name in NODES:
        node = node_from_dataset(
            name, load_file(files[name], label=LABEL, classes=CLASSES.split(","))
        )
        enable_secure_aggregation(
            node, signer=identities.signers[name], verifier=identities.verifier
        )
        nodes.append(node)
    with InMemoryTransport(nodes, max_workers=1) as transport:
        history = run_coordinator(spec, transport=transport, state_dir=tmp_path / "reference")
    assert history.parameters is not None
    return history.parameters


def test_node_killed_mid_protocol_the_secure_round_completes_without_it(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    job = secure_job(tmp_path, rounds=2, epochs=30, timeout=15, wait_s=4)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    federation.wait_for_round(1, timeout_s=180)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill while the masked-input stage (training) runs
        status = json.loads(federation.run.status.read_text() or "{}")
        if status.get("stage") == "secagg-masked-input":
            break
        time.sleep(0.05)
    federation.kill("central")
    assert federation.wait_for_coordinator(timeout_s=300) == 0, federation.tail(
        "coordinator", lines=80
    )
    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    after_kill = [r for r in rounds if "central" in r["failures"]]
    assert after_kill, rounds
    assert sorted(after_kill[0]["answered"]) == ["north", "south"]  # the two survivors' sum
    log = federation.tail("north", lines=400)
    assert "secagg-masked-input" in log and "masked" in log


def test_coordinator_killed_mid_round_resumes_with_fresh_keys(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    job = secure_job(tmp_path, rounds=4, epochs=20)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    federation.wait_for_round(2, timeout_s=180)
    time.sleep(0.3)
    federation.kill("coordinator")
    killed_after = federation.durable_round()
    assert killed_after < 4, "the job finished before the crash; make it longer"

    federation.start_coordinator(job, resume=True)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail("coordinator")
    assert f"Resumed after round {killed_after}" in federation.tail("coordinator", lines=200)
    assert final_parameters(federation) == secure_reference(job, node_files, tmp_path)
