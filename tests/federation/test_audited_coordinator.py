"""The coordinator's audit log in a job: what it took in from each node matches what each node
recorded as sent, every adopted model is recorded and signed before its round is durable, and a
log that cannot be written stops the job."""

from __future__ import annotations

import hashlib
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.errors import AuditError, ConfigError
from sovereign_ai.federation import (
    CheckpointStore,
    RoundReport,
    StageResults,
    parse_job_spec,
    prepare_simulation,
    run_simulation,
)
from sovereign_ai.federation.audited_coordinator import CoordinatorAudit
from sovereign_ai.federation.audited_node import enable_audit
from sovereign_ai.federation.digests import payload_digest
from sovereign_ai.governance import AuditEntry, AuditLog, read_entries, verify_log
from sovereign_ai.pki.signing import ephemeral_federation

IDENTITIES = ephemeral_federation("audited", ["coordinator", "node-000", "node-001", "node-002"])
JOB = """
[job]
name = "audited"
rounds = 2
seed = 3
[model]
name = "logreg"
[strategy]
name = "fedavg"
min_train_nodes = 2
[train]
local_epochs = 1
batch_size = 32
[data]
dataset = "breast_cancer"
partition = "iid"
nodes = 3
"""
SPEC = parse_job_spec(tomllib.loads(JOB))


def coordinator_log(path: Path) -> AuditLog:
    return AuditLog(path, party="coordinator", signer=IDENTITIES.signers["coordinator"])


def kinds(entries: list[AuditEntry]) -> list[tuple[str, int | None]]:
    """``(kind, round)`` with each stage's run of ``received`` entries folded into one."""
    folded: list[tuple[str, int | None]] = []
    for entry in entries:
        if entry.kind == "received" and folded and folded[-1] == ("received", entry.round_number):
            continue
        folded.append((entry.kind, entry.round_number))
    return folded


def test_a_job_is_recorded_and_what_came_in_is_what_each_node_sent(tmp_path: Path) -> None:
    setup = prepare_simulation(SPEC)
    node_logs = {}
    for node in setup.nodes:  # each node records what it takes and sends, in its own log
        node_logs[node.node_id] = tmp_path / f"{node.node_id}.sqlite"
        enable_audit(
            node,
            AuditLog(
                node_logs[node.node_id],
                party=node.node_id,
                signer=IDENTITIES.signers[node.node_id],
            ),
        )
    path = tmp_path / "coordinator.sqlite"
    with coordinator_log(path) as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)
        audit.job_started(SPEC, resume=False)
        history, _ = run_simulation(SPEC, setup=setup, observer=audit)
        assert history.parameters is not None
        model_file = tmp_path / "model.safetensors"
        model_file.write_bytes(history.parameters.to_bytes())
        audit.job_finished(model_file=model_file, rounds_completed=SPEC.job.rounds)
    entries = read_entries(path)

    assert kinds(entries) == [
        ("job_started", None),
        ("received", 0),  # feature statistics, before round 1
        ("starting_model", 0),
        ("received", 1), ("round_completed", 1),  # train, then evaluate after the aggregate
        ("received", 2), ("round_completed", 2),
        ("job_finished", None),
    ]  # fmt: skip
    assert all(e.job_id == SPEC.job_id for e in entries)
    started = entries[0].body
    assert started["spec_digest"] == SPEC.digest and started["rounds"] == 2
    assert started["spec_sha256"] == hashlib.sha256(SPEC.canonical_json().encode()).hexdigest()
    assert (started["strategy"], started["privacy"], started["secure_aggregation"]) == (
        "fedavg", "none", False,
    )  # fmt: skip
    assert started["resume"] is False

    received = [e for e in entries if e.kind == "received"]
    stages = {(e.round_number, e.body["stage"]) for e in received}
    assert stages == {(0, "statistics"), (1, "train"), (1, "evaluate"), (2, "train"),
                      (2, "evaluate")}  # fmt: skip
    assert all(e.body["accepted"] for e in received)
    train = [e.body for e in received if e.body["stage"] == "train"]
    assert {b["from"] for b in train} == {"node-000", "node-001", "node-002"}
    assert all(b["num_examples"] > 0 and b["metrics"] == sorted(b["metrics"]) for b in train)

    # (That every answer taken in is one a node recorded as sent, byte for byte, is checked over
    # the real deployment, where the nodes' egress guards record: deployment/test_canary.py.)

    # Every model it sent for training is one it recorded having adopted.
    adopted = {e.round_number: e.body["sha256"] for e in entries if e.kind == "round_completed"}
    adopted[0] = next(e.body["sha256"] for e in entries if e.kind == "starting_model")
    for node_path in node_logs.values():
        for task in read_entries(node_path):
            if task.kind == "task" and task.body["stage"] == "train":
                assert task.round_number is not None
                assert task.body["sha256"] == adopted[task.round_number - 1]
    assert adopted[2] == payload_digest(history.parameters)[0]
    last = entries[-2].body
    assert set(last["metrics"]) == set(history.rounds[-1].metrics)
    assert last["answered"] == history.rounds[-1].answered and last["failures"] == {}

    finished = entries[-1].body
    assert finished["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert finished["model_file"] == str(model_file.resolve())
    assert finished["rounds_completed"] == 2
    report = verify_log(path)
    assert report.ok, report.problem
    assert (report.checkpoints, report.signed_through) == (3, len(entries))  # 2 rounds + the end


def _closing_before(event: str, round_number: int) -> type[CoordinatorAudit]:
    """A coordinator audit whose log is closed (the disk is gone, say) just before ``event`` of
    ``round_number``."""

    class Failing(CoordinatorAudit):
        def _close_if(self, name: str, at: int) -> None:
            if (name, at) == (event, round_number):
                self.log.close()

        def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
            self._close_if("on_stage_end", round_number)
            super().on_stage_end(round_number, stage, answered)

        def on_round_adopted(self, report: RoundReport, parameters: Parameters) -> None:
            self._close_if("on_round_adopted", report.round_number)
            super().on_round_adopted(report, parameters)

    return Failing


@pytest.mark.parametrize("event", ["on_stage_end", "on_round_adopted"])
def test_a_log_that_cannot_be_written_stops_the_job_before_the_round_is_durable(
    tmp_path: Path, event: str
) -> None:
    path, state = tmp_path / "coordinator.sqlite", tmp_path / "state"
    log = coordinator_log(path)
    audit = _closing_before(event, 2)(log, job_id=SPEC.job_id)
    audit.job_started(SPEC, resume=False)
    with pytest.raises(AuditError, match=r"could not record .* job stops .* resume the job"):
        run_simulation(SPEC, observer=audit, state_dir=state)
    with CheckpointStore(state) as store:  # round 2 ran but is not durable: it was not recorded
        latest = store.latest()
        assert latest is not None and latest.round_number == 1
    entries = read_entries(path)
    assert [e.round_number for e in entries if e.kind == "round_completed"] == [1]
    report = verify_log(path)  # what was written verifies, and every durable round is signed
    last_round = max(i for i, e in enumerate(entries) if e.kind == "round_completed")
    assert report.ok and report.signed_through == last_round + 1

    # Once the log can be written again, the job resumes and finishes, recorded.
    with coordinator_log(path) as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)
        audit.job_started(SPEC, resume=True)
        history, _ = run_simulation(SPEC, observer=audit, state_dir=state, resume=True)
        audit.job_finished(model_file=None, rounds_completed=2)
    assert history.resumed_from == 1
    tail = kinds(read_entries(path))[-5:]
    assert tail == [("job_started", None), ("starting_model", 1), ("received", 2),
                    ("round_completed", 2), ("job_finished", None)]  # fmt: skip
    assert verify_log(path).ok


def _stage(nodes: int, *, refused: dict[str, str]) -> StageResults:
    results = [
        Result(
            job_id=SPEC.job_id,
            round_number=1,
            stage=Stage.TRAIN,
            node_id=f"node-{i:03d}",
            num_examples=10 + i,
            parameters=Parameters({"w": np.full(4, i, np.float32)}),
            metrics={"train_loss": 0.5},
        )
        for i in range(nodes)
    ]
    return StageResults(results, dict(refused))


def test_refused_and_missing_answers_are_recorded_with_why(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.sqlite"
    with coordinator_log(path) as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)
        audit.on_stage_end(
            1,
            Stage.TRAIN,
            _stage(2, refused={"node-009": "no answer before the deadline",
                               "node-005": "answer refused: 3 examples; at most 2"}),
        )  # fmt: skip
        audit.on_attempt_failed(1, 1, "Only 2 of 3 nodes answered.")
    bodies = [e.body for e in read_entries(path)]
    assert [b.get("from") for b in bodies] == [
        "node-000", "node-001", "node-005", "node-009", None
    ]  # fmt: skip
    assert bodies[0] == {
        "from": "node-000", "stage": "train", "accepted": True,
        "sha256": payload_digest(Parameters({"w": np.zeros(4, np.float32)}))[0],
        "bytes": payload_digest(Parameters({"w": np.zeros(4, np.float32)}))[1],
        "num_examples": 10, "metrics": ["train_loss"],
    }  # fmt: skip
    assert bodies[2] == {"from": "node-005", "stage": "train", "accepted": False,
                         "reason": "answer refused: 3 examples; at most 2"}  # fmt: skip
    assert bodies[4] == {"attempt": 1, "reason": "Only 2 of 3 nodes answered."}


def test_wire_entries_from_other_threads_never_split_a_stages_entries(tmp_path: Path) -> None:
    """The transport's hook appends from its own threads while the round loop records stages:
    every stage's entries stay together, and the log verifies."""
    path = tmp_path / "coordinator.sqlite"
    errors: list[BaseException] = []
    with coordinator_log(path) as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)

        def wire(thread: int) -> None:
            try:
                for n in range(100):
                    digest = hashlib.sha256(f"{thread}-{n}".encode()).hexdigest()
                    audit.wire_received(f"node-{thread:03d}", sha256=digest, size=n,
                                        round_number=1, stage="train")  # fmt: skip
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=wire, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(20):
            audit.on_stage_end(1, Stage.TRAIN, _stage(5, refused={}))
        for thread in threads:
            thread.join()
        log.checkpoint()
    assert errors == []
    entries = read_entries(path)
    assert len(entries) == 4 * 100 + 20 * 5
    received = [i for i, e in enumerate(entries) if e.kind == "received"]
    for start in range(0, len(received), 5):
        run = received[start : start + 5]
        assert run == list(range(run[0], run[0] + 5))  # nothing in between
    wired = [e.body for e in entries if e.kind == "wire_received"]
    assert {(b["from"], b["stage"]) for b in wired} == {
        (f"node-{t:03d}", "train") for t in range(4)
    }
    assert verify_log(path).ok


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.wire_received("n", sha256="xyz", size=1), "'sha256' parameter"),
        (lambda a: a.wire_received("n", sha256="0" * 64, size=-1), "'size' parameter"),
        (lambda a: a.job_started(parse_job_spec({"job": {"name": "other"}}), resume=False),
         "this audit records"),
    ],
)  # fmt: skip
def test_misuse_is_refused_and_nothing_is_written(
    tmp_path: Path, call: Callable[[CoordinatorAudit], Any], message: str
) -> None:
    with coordinator_log(tmp_path / "coordinator.sqlite") as log:
        with pytest.raises(ConfigError, match=message):
            call(CoordinatorAudit(log, job_id=SPEC.job_id))
        assert log.size == 0


def test_a_final_model_that_cannot_be_read_is_an_audit_error(tmp_path: Path) -> None:
    with coordinator_log(tmp_path / "coordinator.sqlite") as log:
        audit = CoordinatorAudit(log, job_id=SPEC.job_id)
        with pytest.raises(AuditError, match="cannot be read to record its digest"):
            audit.job_finished(model_file=tmp_path / "missing.safetensors", rounds_completed=2)
        assert log.size == 0
