"""Hand-driven ends of the wire: a node sending exactly what a test says; a scripted coordinator."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from sovereign_ai.core import Result, StageOutcome, Task
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, WireLimits
from sovereign_ai.federation.transports.grpc._codec import result_messages
from sovereign_ai.federation.transports.grpc._dial import open_channel
from sovereign_ai.federation.transports.grpc._frames import DataFrame
from sovereign_ai.federation.transports.grpc._service import (
    FederationStub,
    Undecodable,
    service_handler,
)
from sovereign_ai.federation.transports.grpc._wire_digest import Framed
from sovereign_ai.pki import CoordinatorKit, NodeKit

SERVICE = "/sovereign.federation.v1.Federation/"


class ManualNode:
    """An admitted node's channel, used to pull and push hand-made messages."""

    def __init__(self, kit: NodeKit, port: int) -> None:
        self.node_id = kit.name
        self.channel = open_channel(kit, address=f"127.0.0.1:{port}", limits=WireLimits())
        self.stub = FederationStub(self.channel)

    def pull(self, *, timeout_s: float = 10.0) -> tuple[pb.TaskHeader, bytes]:
        """Long-poll until a task arrives; return its header and payload."""
        deadline = time.monotonic() + timeout_s
        request = pb.PullRequest(node_id=self.node_id, max_wait_ms=int(timeout_s * 1000))
        while time.monotonic() < deadline:
            messages = list(self.stub.pull_task(request, timeout=timeout_s + 5))
            if messages:
                return messages[0].header, b"".join(m.data for m in messages[1:])
        raise AssertionError("no task arrived")

    def register(self) -> None:
        """One empty long-poll, so the coordinator counts this node as connected."""
        request = pb.PullRequest(node_id=self.node_id, max_wait_ms=1)
        assert list(self.stub.pull_task(request, timeout=10.0)) == []

    def push(self, messages: Sequence[pb.ResultChunk]) -> pb.PushReply:
        return self.stub.push_result(iter(messages), timeout=10.0)

    def raw(self, method: str, kind: str) -> Any:
        """A callable sending raw bytes to ``method`` (no serialisation at all)."""
        factory = getattr(self.channel, kind)
        return factory(SERVICE + method)

    def close(self) -> None:
        self.channel.close()


def answer(
    header: pb.TaskHeader, task: Task, *, chunk_size_bytes: int = 64
) -> list[pb.ResultChunk]:
    """A valid result stream for ``task`` (echo update), in small chunks so it has several."""
    result = Result(
        job_id=task.job_id,
        round_number=task.round_number,
        stage=task.stage,
        node_id=task.node_id,
        num_examples=5,
        parameters=task.parameters,
        metrics={"loss": 0.25},
    )
    limits = WireLimits(chunk_size_bytes=chunk_size_bytes)
    return list(result_messages(result, task_id=header.task_id, limits=limits))


@contextlib.contextmanager
def stage_in_background(
    transport: GrpcCoordinatorTransport, tasks: Sequence[Task], *, timeout_s: float
) -> Iterator[cf.Future[StageOutcome]]:
    """Run ``run_stage`` on a thread; the future holds its outcome."""
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(transport.run_stage, tasks, timeout_s=timeout_s)


@dataclass
class ScriptedCoordinator:
    """Serves scripted task streams to whoever pulls, and records every pushed result."""

    kit: CoordinatorKit
    tasks: queue.Queue[list[pb.TaskChunk]] = field(default_factory=queue.Queue)
    pushed: list[tuple[pb.ResultHeader, bytes]] = field(default_factory=list)
    pushed_event: threading.Condition = field(default_factory=threading.Condition)

    def pull_task(
        self, request: Framed[pb.PullRequest | Undecodable], context: Any
    ) -> Iterator[pb.TaskChunk]:
        try:
            yield from self.tasks.get(timeout=0.2)
        except queue.Empty:
            return

    def push_result(
        self, requests: Iterator[Framed[pb.ResultChunk | DataFrame | Undecodable]], context: Any
    ) -> pb.PushReply:
        messages = [
            f.message for f in requests if isinstance(f.message, pb.ResultChunk | DataFrame)
        ]
        header = messages[0].header
        with self.pushed_event:
            self.pushed.append((header, b"".join(m.data for m in messages[1:])))
            self.pushed_event.notify_all()
        return pb.PushReply(task_id=header.task_id)

    def status(self, request: pb.StatusRequest | Undecodable, context: Any) -> pb.StatusReply:
        return pb.StatusReply(coordinator=self.kit.name)

    @contextlib.contextmanager
    def serving(self) -> Iterator[int]:
        server = grpc.server(cf.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((service_handler(self),))
        credentials = grpc.ssl_server_credentials(
            [(self.kit.private_key_pem, self.kit.certificate_pem)],
            root_certificates=self.kit.ca_pem,
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        try:
            yield port
        finally:
            server.stop(None)

    def wait_for_pushes(self, count: int, *, timeout_s: float = 10.0) -> None:
        with self.pushed_event:
            assert self.pushed_event.wait_for(lambda: len(self.pushed) >= count, timeout_s)
