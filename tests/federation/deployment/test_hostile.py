"""Enrolled nodes with real certificates send answers that fit the wire but not the job.

Against a real ``sovereign coordinator start`` process: every such answer is refused as that
node's failure, named in ``metrics.json`` and the status with the mismatch, and the job finishes
with the honest nodes. A job whose every node reports nothing fails cleanly, and says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovereign_ai.federation.local_processes import LocalFederation

from .conftest import CLASSES, LABEL

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]

HOSTILE_NODE = Path(__file__).with_name("hostile_node.py")

JOB = """
[job]
name = "hostile"
rounds = {rounds}
seed = 5

[model]
name = "logreg"
num_features = 30
num_classes = 2

[strategy]
name = "fedavg"
min_train_nodes = 2

[train]
local_epochs = 1
batch_size = 32

[coordinator]
round_timeout_s = 60
max_round_attempts = {attempts}
wait_for_nodes = {wait}
wait_for_nodes_s = 60
max_examples_per_node = 100000
"""


def start_hostile(federation: LocalFederation, name: str, data: Path, **plan: str) -> None:
    argv = [
        str(HOSTILE_NODE),
        "--kit",
        str(federation.node_kit(name)),
        "--data",
        str(data.resolve()),
        "--label",
        LABEL,
        "--classes",
        CLASSES,
    ]
    for stage, modes in plan.items():
        argv += [f"--{stage}", modes]
    federation.start_python(name, argv)


def test_hostile_answers_are_refused_and_the_job_finishes_with_the_honest_nodes(
    tmp_path: Path, node_files: dict[str, Path]
) -> None:
    names = ("north", "south", "mallory-a", "mallory-b", "mallory-c")
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(rounds=4, attempts=2, wait=len(names)))
    with LocalFederation(tmp_path / "federation", names) as federation:
        federation.provision()
        federation.start_coordinator(job, extra=["--max-wait-s", "120"])
        for name in ("north", "south"):
            federation.start_node(name, node_files[name], label=LABEL, extra=["--classes", CLASSES])
        start_hostile(
            federation, "mallory-a", node_files["central"],
            statistics="no-count",
            train="extra,missing,transposed,uint64",
            evaluate="num-examples,zero-with-metric,bit-flip",
        )  # fmt: skip
        start_hostile(
            federation, "mallory-b", node_files["central"],
            statistics="wide-sums",
            train="empty,zero-size,huge-count",
            evaluate="bit-flip,num-examples,zero-with-metric",
        )  # fmt: skip
        start_hostile(
            federation, "mallory-c", node_files["central"],
            statistics="negative-count",
            train="reference-order",  # a correct update in the safetensors library's own order
        )  # fmt: skip
        assert federation.wait_for_coordinator(timeout_s=300) == 0, federation.tail(
            "coordinator", lines=80
        )
        rounds = json.loads(federation.run.metrics.read_text())["rounds"]
        status = json.loads(federation.run.status.read_text())
        coordinator_log = " ".join(federation.tail("coordinator", lines=400).split())
        for name in names:  # every node heard the job ended and stopped by itself
            assert federation.nodes[name].wait(timeout=60) == 0, federation.tail(name)

    assert [r["answered"] for r in rounds] == [["mallory-c", "north", "south"]] * 4
    expected = {
        1: ("unexpected tensor(s) 'smuggled'", "missing tensor(s)"),
        2: ("missing tensor(s)", "shape [1099511627776, 0]"),
        3: ("has shape", "above the job's cap of 100000"),
        4: ("has dtype uint64; expected float32", "above the job's cap of 100000"),
    }
    for record in rounds:
        mallory_a, mallory_b = expected[record["round"]]
        assert mallory_a in record["failures"]["mallory-a"], record
        assert mallory_b in record["failures"]["mallory-b"], record
        assert record["failures"]["mallory-a"].startswith("answer refused")
    assert "mallory-c" not in rounds[-1]["failures"]  # its update and evaluation were fine
    assert 0.0 <= rounds[-1]["metrics"]["federated_accuracy"] <= 1.0
    # Statistics before round 1: the three hostile answers were refused, naming each node.
    assert "node 'mallory-a' was refused: missing tensor(s) 'count'" in coordinator_log
    assert "node 'mallory-b' was refused: tensor 'sum' has shape [31]" in coordinator_log
    assert "node 'mallory-c' was refused" in coordinator_log
    assert status["state"] == "finished"
    assert status["final_model"].endswith("model.safetensors")
    assert Path(status["final_model"]).exists()
    assert "mallory-b" in status["failures"]
    assert "Traceback" not in coordinator_log


def test_every_node_reporting_zero_examples_fails_the_job_cleanly(
    tmp_path: Path, node_files: dict[str, Path]
) -> None:
    names = ("mallory-a", "mallory-b")
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(rounds=2, attempts=1, wait=2))
    with LocalFederation(tmp_path / "federation", names) as federation:
        federation.provision()
        federation.start_coordinator(job, extra=["--max-wait-s", "120"])
        for name in names:
            start_hostile(federation, name, node_files["north"], train="zero-examples")
        assert federation.wait_for_coordinator(timeout_s=180) == 2
        log = " ".join(federation.tail("coordinator", lines=80).split())
        status = json.loads(federation.run.status.read_text())
        for name in names:
            assert federation.nodes[name].wait(timeout=60) == 0, federation.tail(name)
            assert "ended" in federation.tail(name)

    assert "Traceback" not in log
    assert "needs at least 2" in log
    assert "reports 0 examples" in log
    assert status["state"] == "failed"
    assert "needs at least 2" in status["reason"]
