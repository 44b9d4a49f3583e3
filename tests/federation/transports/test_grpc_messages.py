"""Hostile or stale messages are refused with a reason; the next valid one is still accepted."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from sovereign_ai.core import Result, Task
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, WireLimits
from sovereign_ai.federation.transports.grpc._codec import (
    Payload,
    new_task_id,
    task_header,
    task_messages,
)

from .conftest import EchoNode, Federation, node_client, running, task_for, wait_for
from .wire import ManualNode, ScriptedCoordinator, answer, stage_in_background

pytestmark = pytest.mark.integration

Mutation = Callable[[list[pb.ResultChunk]], list[pb.ResultChunk]]


def _edit_header(**changes: object) -> Mutation:
    def mutate(messages: list[pb.ResultChunk]) -> list[pb.ResultChunk]:
        header = pb.ResultHeader()
        header.CopyFrom(messages[0].header)
        for name, value in changes.items():
            if name == "metrics":
                header.metrics.update(value)  # type: ignore[arg-type]
            else:
                setattr(header, name, value)
        return [pb.ResultChunk(header=header), *messages[1:]]

    return mutate


def _corrupt_the_safetensors_header(messages: list[pb.ResultChunk]) -> list[pb.ResultChunk]:
    data = bytearray(messages[1].data)
    data[9] = ord("}")  # inside the JSON header, right after its opening brace
    return [messages[0], pb.ResultChunk(data=bytes(data)), *messages[2:]]


def _garbage_payload(messages: list[pb.ResultChunk]) -> list[pb.ResultChunk]:
    garbage = os.urandom(200)
    header = pb.ResultHeader()
    header.CopyFrom(messages[0].header)
    header.payload_size = len(garbage)
    return [pb.ResultChunk(header=header), pb.ResultChunk(data=garbage)]


BAD_PUSHES: dict[str, tuple[Mutation, grpc.StatusCode, str]] = {
    "truncated": (lambda m: m[:-1], grpc.StatusCode.INVALID_ARGUMENT, "(truncated)"),
    "extra bytes": (
        lambda m: [*m, pb.ResultChunk(data=b"x")],
        grpc.StatusCode.INVALID_ARGUMENT,
        "more than the",
    ),
    "corrupt safetensors header": (
        _corrupt_the_safetensors_header,
        grpc.StatusCode.INVALID_ARGUMENT,
        "not valid JSON",
    ),
    "oversize declaration": (
        _edit_header(payload_size=3 * 1024**3),
        grpc.StatusCode.INVALID_ARGUMENT,
        "declares a payload of 3221225472 bytes",
    ),
    "no header": (lambda m: m[1:], grpc.StatusCode.INVALID_ARGUMENT, "start with its header"),
    "two headers": (lambda m: [m[0], *m], grpc.StatusCode.INVALID_ARGUMENT, "second header"),
    "empty stream": (lambda m: [], grpc.StatusCode.INVALID_ARGUMENT, "start with its header"),
    "not safetensors": (_garbage_payload, grpc.StatusCode.INVALID_ARGUMENT, "Not a valid"),
    "short task id": (_edit_header(task_id=b"abc"), grpc.StatusCode.INVALID_ARGUMENT, "task id"),
    "unknown stage": (_edit_header(stage="unmask"), grpc.StatusCode.INVALID_ARGUMENT, "Unknown"),
    "wrong round": (
        _edit_header(round_number=2),
        grpc.StatusCode.FAILED_PRECONDITION,
        "does not answer its task",
    ),
    "wrong job": (
        _edit_header(job_id="another-job"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "'another-job'",
    ),
    "wrong stage": (_edit_header(stage="evaluate"), grpc.StatusCode.FAILED_PRECONDITION, "bound"),
    "unknown task": (
        _edit_header(task_id=b"\x00" * 16),
        grpc.StatusCode.FAILED_PRECONDITION,
        "never issued",
    ),
    "non-finite metric": (
        _edit_header(metrics={"loss": math.nan}),
        grpc.StatusCode.FAILED_PRECONDITION,
        "must be finite",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PUSHES))
def test_bad_result_is_refused_and_a_valid_one_still_accepted_once(
    federation: Federation, transport: GrpcCoordinatorTransport, case: str
) -> None:
    mutate, code, reason = BAD_PUSHES[case]
    node = ManualNode(federation.node_kit("hospital-a"), transport.port)
    node.register()
    task = task_for("hospital-a")
    with stage_in_background(transport, [task], timeout_s=10.0) as outcome:
        header, _ = node.pull()
        valid = answer(header, task)

        with pytest.raises(grpc.RpcError) as bad:
            node.push(mutate(valid))
        reply = node.push(valid)
        with pytest.raises(grpc.RpcError) as replay:
            node.push(valid)

    assert (bad.value.code(), reason in (bad.value.details() or "")) == (code, True)
    assert reply.task_id == header.task_id
    assert replay.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "it was already answered" in (replay.value.details() or "")
    assert [r.num_examples for r in outcome.result().results] == [5]
    assert outcome.result().failures == {}
    node.close()


def test_result_for_a_task_of_another_node_is_refused(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    a = ManualNode(federation.node_kit("hospital-a"), transport.port)
    b = ManualNode(federation.node_kit("hospital-b"), transport.port)
    a.register()
    b.register()
    task = task_for("hospital-a")
    with stage_in_background(transport, [task], timeout_s=60.0) as outcome:
        header, _ = a.pull()
        forged = answer(header, Task(**{**vars(task), "node_id": "hospital-b"}))
        with pytest.raises(grpc.RpcError) as misrouted:
            b.push(forged)
        a.push(answer(header, task))  # the task stayed open for its own node's answer

    assert misrouted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "issued to another node, not 'hospital-b'" in (misrouted.value.details() or "")
    assert outcome.result().failures == {}
    assert [r.node_id for r in outcome.result().results] == ["hospital-a"]
    a.close()
    b.close()


def test_late_result_is_refused_after_the_stage_ended(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    node = ManualNode(federation.node_kit("hospital-a"), transport.port)
    node.register()
    task = task_for("hospital-a")
    with stage_in_background(transport, [task], timeout_s=2.0) as outcome:
        header, _ = node.pull()
        with pytest.raises(grpc.RpcError) as wrong_round:
            node.push(_edit_header(round_number=7)(answer(header, task)))
        failures = outcome.result().failures
    with pytest.raises(grpc.RpcError) as late:
        node.push(answer(header, task))

    assert wrong_round.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not answer its task" in (wrong_round.value.details() or "")
    assert failures["hospital-a"].startswith("no answer within 2 s; its last result was refused")
    assert "its stage ended before it was answered" in (late.value.details() or "")
    node.close()


@pytest.mark.parametrize(
    ("method", "kind"),
    [("PullTask", "unary_stream"), ("PushResult", "stream_unary"), ("Status", "unary_unary")],
)
def test_bytes_that_are_not_protobuf_are_refused(
    federation: Federation, transport: GrpcCoordinatorTransport, method: str, kind: str
) -> None:
    node = ManualNode(federation.node_kit("hospital-a"), transport.port)
    call = node.raw(method, kind)
    garbage = b"\xff\xff\xff\xff\x0f"  # a field number of 0: never valid protobuf
    request = iter([garbage, garbage]) if kind == "stream_unary" else garbage
    response = None
    try:
        response = call(request, timeout=5.0)
        response = list(response) if kind == "unary_stream" else response
    except grpc.RpcError as exc:
        response = exc

    node.close()
    assert isinstance(response, grpc.RpcError)
    assert response.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_node_declining_a_task_fails_it_at_once(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    class Refusing(EchoNode):
        def handle(self, task: Task) -> Result:
            raise ConfigError("this site does not train on weekends")

    with running([node_client(federation, "hospital-a", transport.port, Refusing("hospital-a"))]):
        transport.wait_for_nodes(1, timeout_s=10.0)
        outcome = transport.run_stage([task_for("hospital-a")], timeout_s=30.0)

    assert outcome.results == []
    assert outcome.failures == {
        "hospital-a": "node declined: ConfigError: this site does not train on weekends"
    }


def _task_stream(task: Task, *, task_id: bytes | None = None) -> list[pb.TaskChunk]:
    payload = Payload.of(task.parameters)
    header = task_header(task, task_id=task_id or new_task_id(), payload=payload)
    return list(task_messages(header, payload, limits=WireLimits(chunk_size_bytes=16)))


def test_node_refuses_misaddressed_replayed_and_corrupt_tasks(
    federation: Federation, tmp_path: Path
) -> None:
    coordinator = ScriptedCoordinator(federation.coordinator_kit())
    first, last = task_for("hospital-a", round_number=1), task_for("hospital-a", round_number=2)
    replayed = _task_stream(first)
    corrupt = _task_stream(task_for("hospital-a", round_number=9))
    corrupt[1] = pb.TaskChunk(data=bytes(len(corrupt[1].data)))  # zeros inside the JSON header
    unknown_stage = _task_stream(first)
    unknown_stage[0].header.stage = "unmask"
    for stream in (
        _task_stream(task_for("hospital-b")),  # addressed to another node
        replayed,
        replayed,  # the same task id again
        corrupt,
        unknown_stage,
        _task_stream(last),
    ):
        coordinator.tasks.put(stream)
    node = EchoNode("hospital-a")
    with (
        coordinator.serving() as port,
        running([node_client(federation, "hospital-a", port, node)]),
    ):
        coordinator.wait_for_pushes(3)
        wait_for(coordinator.tasks.empty)

    assert [task.round_number for task in node.seen] == [1, 2]
    headers = [header for header, _ in coordinator.pushed]
    assert [(h.round_number, h.error[:24]) for h in headers] == [
        (1, ""),
        (9, "the task was malformed: "),
        (2, ""),
    ]
    assert "not valid JSON" in headers[1].error
    assert headers[0].task_id == replayed[0].header.task_id
