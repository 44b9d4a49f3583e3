"""A node's audit log in its round: tasks recorded as they come, each call the egress guard
reports recorded before it leaves (answers signed), and the policy's decisions with them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Stage, Task
from sovereign_ai.errors import PolicyRefusalError
from sovereign_ai.federation import (
    LocalData,
    Node,
    initial_parameters,
    parse_job_spec,
    stage_config,
)
from sovereign_ai.federation.audited_node import egress_recorder, enable_audit, policy_recorder
from sovereign_ai.federation.governed_node import enable_policy
from sovereign_ai.federation.transports.grpc import Egress, WireDigest
from sovereign_ai.governance import AuditLog, NodePolicy, read_entries, verify_log
from sovereign_ai.pki.signing import ephemeral_federation

SIGNER = ephemeral_federation("audited", ["site-a"]).signers["site-a"]
SPEC = parse_job_spec(
    {"job": {"name": "audited", "rounds": 2}, "model": {"name": "logreg"},
     "coordinator": {"standardize_features": False}}
)  # fmt: skip
CONFIG = {**stage_config(SPEC, num_features=4, num_classes=2), "seed": 1}
START = initial_parameters(SPEC, num_features=4, num_classes=2)


def audited(path: Path, *, policy: NodePolicy | None = None) -> tuple[Node, AuditLog]:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((30, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    node = Node("site-a", data=LocalData(features, labels, features[:6], labels[:6]))
    log = AuditLog(path, party="site-a", signer=SIGNER)
    if policy is not None:
        enable_policy(node, policy, record=policy_recorder(log))
    enable_audit(node, log)
    return node, log


def streamed(parameters: Parameters, *, chunk: int = 65536) -> bytes:
    """The payload as the gRPC transport streams it (grpc._codec.Payload: its chunks)."""
    return b"".join(bytes(c) for c in parameters.encoded().chunks(chunk))


def task(stage: Stage, round_number: int = 1, **settings: object) -> Task:
    return Task("job-1", round_number, stage, "site-a", START, {**CONFIG, **settings})


def test_every_task_is_recorded_before_it_is_handled(tmp_path: Path) -> None:
    node, log = audited(tmp_path / "audit.sqlite")
    tasks = [task(Stage.TRAIN, 1), task(Stage.EVALUATE, 1)]
    for each in tasks:
        node.handle(each)
    log.close()
    entries = read_entries(tmp_path / "audit.sqlite")
    assert [(e.kind, e.body["stage"]) for e in entries] == [("task", "train"), ("task", "evaluate")]
    for entry, each in zip(entries, tasks, strict=True):
        wire = streamed(each.parameters)
        assert entry.body["sha256"] == hashlib.sha256(wire).hexdigest()
        assert entry.body["bytes"] == len(wire)
        assert entry.job_id == "job-1" and entry.round_number == 1


def test_each_call_the_guard_reports_becomes_an_egress_entry_and_answers_are_signed(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", party="site-a", signer=SIGNER)
    record = egress_recorder(log)
    wire = WireDigest("ab" * 32, 1234, 3)
    record(Egress("connect", "127.0.0.1:1", WireDigest("cd" * 32, 800, 1)))
    record(Egress("PullTask", "127.0.0.1:1", WireDigest("ef" * 32, 20, 1),
                  details={"node": "site-a", "max_wait_ms": 10_000}))  # fmt: skip
    details = {"num_examples": 30, "metrics": {"loss": 0.5}}
    record(Egress("PushResult", "127.0.0.1:1", wire, job_id="job-1", round_number=2,
                  stage="train", details=details))  # fmt: skip
    log.close()
    entries = read_entries(tmp_path / "audit.sqlite")
    assert [e.body["stage"] for e in entries] == ["connect", "poll", "train"]
    answer = entries[-1]
    assert (answer.job_id, answer.round_number) == ("job-1", 2)
    assert answer.body["sha256"] == wire.sha256 and answer.body["bytes"] == 1234
    assert answer.body["metrics"] == {"loss": 0.5} and answer.body["rpc"] == "PushResult"
    report = verify_log(tmp_path / "audit.sqlite")
    assert report.ok and report.signed_through == 3  # the answer's checkpoint covers all before


def test_no_task_is_handled_if_it_cannot_be_recorded(tmp_path: Path) -> None:
    node, log = audited(tmp_path / "audit.sqlite")
    log.close()  # the disk is gone, say
    with pytest.raises(Exception, match="closed"):
        node.handle(task(Stage.TRAIN))


def test_the_policys_decisions_are_in_the_log(tmp_path: Path) -> None:
    policy = NodePolicy.parse({"require_secure_aggregation": True}, source="test")
    node, log = audited(tmp_path / "audit.sqlite", policy=policy)
    with pytest.raises(PolicyRefusalError):
        node.handle(task(Stage.TRAIN))
    log.checkpoint()
    log.close()
    kinds = [(e.kind, e.body.get("code")) for e in read_entries(tmp_path / "audit.sqlite")]
    assert kinds == [
        ("policy.job_refused", "policy.secure_aggregation_required"),
        ("policy.task_refused", "policy.secure_aggregation_required"),
    ]
    assert verify_log(tmp_path / "audit.sqlite").ok
