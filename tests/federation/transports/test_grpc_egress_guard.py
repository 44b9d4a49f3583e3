"""The node's egress guard over real gRPC with mutual TLS: nothing leaves unrecorded, what leaves
is what was recorded, byte for byte, and the coordinator's digest of what it received matches."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import sovereign_ai
from sovereign_ai.core import Parameters, Result, Task
from sovereign_ai.errors import AuditError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import (
    Egress,
    GrpcCoordinatorTransport,
    Received,
)
from sovereign_ai.federation.transports.grpc._codec import refusal_message, result_messages
from sovereign_ai.federation.transports.grpc._egress_guard import EgressGuard
from sovereign_ai.federation.transports.grpc._frames import chunk_parser
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._service import SERVICE_NAME, lenient
from sovereign_ai.federation.transports.grpc._wire_digest import WireTally

from .conftest import POLL_WAIT_S, EchoNode, Federation, node_client, running, task_for, wait_for

pytestmark = pytest.mark.integration


class Ledger:
    """Both sides' records, in the order they were made."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Egress | Received]] = []

    def sent(self, egress: Egress) -> None:
        with self.lock:
            self.events.append(("sent", egress))

    def received(self, received: Received) -> None:
        with self.lock:
            self.events.append(("received", received))

    def of(self, side: str) -> list[Egress | Received]:
        with self.lock:
            return [record for kind, record in self.events if kind == side]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def recording_transport(
    federation: Federation, ledger: Ledger
) -> Iterator[GrpcCoordinatorTransport]:
    coordinator = GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(),
        poll_wait_s=POLL_WAIT_S,
        liveness_window_s=5.0,
        on_received=ledger.received,
        keep_received_bytes=True,
    )
    yield coordinator
    coordinator.close()


class BigNode(EchoNode):
    """Answers with a payload of several chunks."""

    def handle(self, task: Task) -> Result:
        answer = super().handle(task)
        big = Parameters({"w": np.arange(700_000, dtype=np.float32)})  # 2.8 MB: three chunks
        return Result(task.job_id, task.round_number, task.stage, self.node_id,
                      answer.num_examples, big, {"train_loss": 0.25})  # fmt: skip


def test_every_call_is_recorded_before_it_is_sent_and_matches_what_arrived(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    port = recording_transport.port
    client = node_client(federation, "hospital-a", port, BigNode("hospital-a"),
                         record_egress=ledger.sent)  # fmt: skip
    with running([client]):
        wait_for(lambda: recording_transport.available_nodes() == ["hospital-a"])
        outcome = recording_transport.run_stage([task_for("hospital-a")], timeout_s=30)
    assert outcome.results[0].parameters["w"].shape == (700_000,)

    sent, received = ledger.of("sent"), ledger.of("received")
    assert sent[0].rpc == "connect"
    calls = [s for s in sent if s.rpc != "connect"]
    # One for one, in order: each received call is a recorded one, with the same digest and size.
    assert len(received) <= len(calls)
    for got, egress in zip(received, calls, strict=False):
        assert isinstance(got, Received) and isinstance(egress, Egress)
        assert (got.rpc, got.wire) == (egress.rpc, egress.wire)
        assert got.refusal == ""
    push = next(s for s in calls if s.rpc == "PushResult")
    assert push.wire.messages == 4 and push.wire.wire_bytes > 2_800_000
    assert push.details["metrics"] == {"train_loss": 0.25}
    assert (push.job_id, push.round_number, push.stage) == ("job-1", 1, "train")
    # Each call was recorded before the coordinator received any of its bytes.
    order = [(kind, r.wire.sha256) for kind, r in ledger.events if r.rpc != "connect"]
    for index, (kind, digest) in enumerate(order):
        if kind == "received":
            assert ("sent", digest) in order[:index]


def test_the_received_bytes_are_what_the_digest_covers(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    client = node_client(federation, "hospital-a", recording_transport.port,
                         record_egress=ledger.sent)  # fmt: skip
    with running([client]):
        wait_for(lambda: recording_transport.available_nodes() == ["hospital-a"])
        recording_transport.run_stage([task_for("hospital-a")], timeout_s=30)
    push = next(r for r in ledger.of("received") if r.rpc == "PushResult")
    assert isinstance(push, Received)
    tally = WireTally()
    for message in push.messages:
        tally.add(message)
    assert tally.digest == push.wire
    header = pb.ResultChunk.FromString(push.messages[0]).header
    assert (header.job_id, header.stage, header.node_id) == ("job-1", "train", "hospital-a")


def test_nothing_is_sent_when_the_recorder_fails(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    def broken_disk(egress: Egress) -> None:
        if egress.rpc == "PushResult":
            raise AuditError("the audit log cannot be written")
        ledger.sent(egress)

    client = node_client(federation, "hospital-a", recording_transport.port,
                         record_egress=broken_disk)  # fmt: skip
    with running([client]) as threads:
        wait_for(lambda: recording_transport.available_nodes() == ["hospital-a"])
        outcome = recording_transport.run_stage([task_for("hospital-a")], timeout_s=3)
        wait_for(lambda: threads[0].error is not None)
    assert isinstance(threads[0].error, AuditError)  # the node stops: it cannot record
    assert outcome.results == []
    assert all(r.rpc == "PullTask" for r in ledger.of("received"))


def test_a_refusal_is_recorded_with_its_text(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    class Refuses(EchoNode):
        def handle(self, task: Task) -> Result:
            raise AuditError("not today")

    client = node_client(federation, "hospital-a", recording_transport.port,
                         Refuses("hospital-a"), record_egress=ledger.sent)  # fmt: skip
    with running([client]):
        wait_for(lambda: recording_transport.available_nodes() == ["hospital-a"])
        outcome = recording_transport.run_stage([task_for("hospital-a")], timeout_s=30)
    assert outcome.failures and "not today" in next(iter(outcome.failures.values()))
    push = next(s for s in ledger.of("sent") if s.rpc == "PushResult")
    assert "not today" in str(push.details["refusal"])
    got = next(r for r in ledger.of("received") if r.rpc == "PushResult")
    assert isinstance(got, Received) and got.wire == push.wire


def _guard(federation: Federation, port: int, record: object) -> EgressGuard:
    return EgressGuard(
        federation.node_kit("hospital-a"),
        address=f"127.0.0.1:{port}",
        limits=WireLimits(),
        record=record,  # type: ignore[arg-type]
    )


class _Pulled:
    """A task pulled through a bare guard, its stage running in a thread."""

    def __init__(self, header: pb.TaskHeader, stage: threading.Thread) -> None:
        self.header, self.stage = header, stage

    def join(self) -> None:
        self.stage.join(timeout=30)


def _task_pulled(guard: EgressGuard, transport: GrpcCoordinatorTransport, task: Task) -> _Pulled:
    guard.connect()
    poll = pb.PullRequest(node_id="hospital-a", max_wait_ms=10)
    assert list(guard.pull(poll, timeout=10, metadata=())) == []  # now the node is connected
    stage = threading.Thread(target=transport.run_stage, args=([task],), kwargs={"timeout_s": 5})
    stage.start()
    call = guard.pull(pb.PullRequest(node_id="hospital-a", max_wait_ms=5000), timeout=10,
                      metadata=())  # fmt: skip
    messages = iter(call)
    header = next(messages).header
    list(messages)  # the payload
    return _Pulled(header, stage)


def test_a_call_not_started_by_the_guard_is_refused_before_the_network(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    guard = _guard(federation, recording_transport.port, ledger.sent)
    guard.connect()
    try:
        sneaky = guard.guarded_channel.unary_stream(
            f"/{SERVICE_NAME}/PullTask",
            request_serializer=pb.PullRequest.SerializeToString,
            response_deserializer=lenient(chunk_parser(pb.TaskChunk)),
        )
        with pytest.raises(AuditError, match="unrecorded call"):
            list(sneaky(pb.PullRequest(node_id="hospital-a", max_wait_ms=10), timeout=5))
    finally:
        guard.close()
    assert ledger.of("received") == []


def test_an_answer_that_changes_after_recording_is_not_accepted(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    task = task_for("hospital-a")
    guard = _guard(federation, recording_transport.port, ledger.sent)
    pending = _task_pulled(guard, recording_transport, task)
    try:
        header = pending.header
        versions = iter([0.5, 0.75])  # the second serialisation differs from the first

        def messages() -> Iterator[pb.ResultChunk]:
            result = EchoNode("hospital-a").handle(task)
            changed = Result(result.job_id, result.round_number, result.stage, result.node_id,
                             result.num_examples, result.parameters,
                             {"train_loss": next(versions)})  # fmt: skip
            return result_messages(changed, task_id=header.task_id, limits=WireLimits())

        with pytest.raises(AuditError, match="changed after it was recorded"):
            guard.push(messages, timeout=10, metadata=())
    finally:
        guard.close()
        pending.join()
    assert [r.refusal != "" for r in ledger.of("received") if r.rpc == "PushResult"] == [True]


def test_refusals_travel_through_the_guard_as_recorded(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    task = task_for("hospital-a")
    guard = _guard(federation, recording_transport.port, ledger.sent)
    pending = _task_pulled(guard, recording_transport, task)
    try:
        header = pending.header
        refusal = refusal_message(header, reason="policy.model_not_allowed", limits=WireLimits())
        guard.push(lambda: iter([refusal]), timeout=10, metadata=())
    finally:
        guard.close()
        pending.join()
    sent = [s for s in ledger.of("sent") if s.rpc == "PushResult"]
    assert sent[0].details == {"to_task": header.task_id.hex(),
                               "refusal": "policy.model_not_allowed"}  # fmt: skip


# Only these modules of the package may open a connection, a socket or a channel. On the node's
# side, only the egress guard calls them (the dial module defines them; the coordinator's
# transport and `coordinator status` run on the coordinator's side).
NETWORK_MODULES = {"socket", "ssl", "grpc", "http", "urllib", "requests", "httpx", "asyncio",
                   "aiohttp", "websockets", "smtplib", "ftplib", "telnetlib", "xmlrpc"}  # fmt: skip
MAY_USE_THE_NETWORK = {
    "federation/transports/grpc/_dial.py": "the pre-flight handshake and channel, for the guard",
    "federation/transports/grpc/_egress_guard.py": "the node's only way out",
    "federation/transports/grpc/_node_client.py": "grpc.RpcError only: calls go to the guard",
    "federation/transports/grpc/_coordinator.py": "the coordinator's server",
    "federation/transports/grpc/_servicer.py": "the coordinator's handlers",
    "federation/transports/grpc/_service.py": "method bindings and error codes",
    "federation/transports/grpc/_status.py": "`sovereign coordinator status`, coordinator kit",
    "federation/local_processes.py": "tests and the demo: free local ports",
    "pki/identity.py": "ssl.SSLContext only: loads the kit's key into a context, dials nothing",
    # The inference server is no part of a node's egress: a separate, offline server.
    "serving/app.py": "asyncio only: ONNX Runtime calls off the inference server's event loop",
    "serving/batching.py": "asyncio only: the inference server's micro-batching queue",
    "serving/encrypted.py": "asyncio only: encrypted evaluation off the server's event loop",
    "serving/he_client.py": "urllib: a client of an inference server, not a node's egress",
}
OPENERS = {"open_channel", "verify_coordinator", "secure_channel", "insecure_channel",
           "create_connection", "FederationStub", "stream_unary", "unary_stream",
           "unary_unary", "stream_stream"}  # fmt: skip


def _sources() -> Iterator[tuple[str, ast.Module]]:
    root = Path(sovereign_ai.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "_proto" not in path.parts:
            yield path.relative_to(root).as_posix(), ast.parse(path.read_text())


def test_only_known_modules_import_the_network() -> None:
    users = {}
    for name, tree in _sources():
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module]
            if any(m.split(".")[0] in NETWORK_MODULES for m in modules):
                users[name] = modules
    unexpected = set(users) - set(MAY_USE_THE_NETWORK)
    assert not unexpected, f"new network users: {sorted(unexpected)}; route them via the guard"
    assert set(users) == set(MAY_USE_THE_NETWORK), "keep the list exact"


def test_on_the_nodes_side_only_the_guard_opens_connections_or_starts_calls() -> None:
    node_side = {"federation/transports/grpc/_node_client.py", "cli/node.py"}
    for name, tree in _sources():
        if name not in node_side:
            continue
        called = {
            getattr(node.func, "attr", getattr(node.func, "id", ""))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        assert not called & OPENERS, f"{name} calls {sorted(called & OPENERS)}"


def test_the_guard_records_the_connection_with_the_certificate_presented(
    federation: Federation, recording_transport: GrpcCoordinatorTransport, ledger: Ledger
) -> None:
    guard = _guard(federation, recording_transport.port, ledger.sent)
    verified = guard.connect()
    guard.close()
    assert verified is not None and verified.name == "coordinator"
    (connect,) = ledger.of("sent")
    assert isinstance(connect, Egress) and connect.rpc == "connect"
    from cryptography.hazmat.primitives.serialization import Encoding

    der = federation.node_kit("hospital-a").certificate.public_bytes(Encoding.DER)
    tally = WireTally()
    tally.add(der)
    assert connect.wire == tally.digest
