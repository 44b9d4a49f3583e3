"""Fixtures for the gRPC transport: a provisioned federation, a live coordinator, node threads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, GrpcNodeClient
from sovereign_ai.pki import (
    CoordinatorKit,
    NodeKit,
    ProvisionReport,
    load_coordinator_kit,
    load_node_kit,
    parse_federation_spec,
    provision,
)

NODES = ("hospital-a", "hospital-b", "hospital-c")
POLL_WAIT_S = 1.0


def federation_mapping(name: str = "test-federation") -> dict[str, object]:
    return {
        "federation": {"name": name, "validity_days": 30},
        "coordinator": {
            "name": "coordinator",
            "address": "127.0.0.1:8443",
            "hosts": ["localhost", "127.0.0.1"],
        },
        "nodes": [{"name": node} for node in NODES],
    }


@dataclass
class Federation:
    """A provisioned federation on disk and its loaded kits."""

    report: ProvisionReport

    @property
    def out_dir(self) -> Path:
        return self.report.out_dir

    def coordinator_kit(self) -> CoordinatorKit:
        return load_coordinator_kit(self.out_dir / "coordinator")

    def node_kit(self, name: str) -> NodeKit:
        return load_node_kit(self.out_dir / "nodes" / name)


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    spec = parse_federation_spec(federation_mapping())
    return Federation(provision(spec, tmp_path / "fed", allow_unencrypted_keys=True))


@pytest.fixture
def transport(federation: Federation) -> Iterator[GrpcCoordinatorTransport]:
    coordinator = GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(), poll_wait_s=POLL_WAIT_S, liveness_window_s=5.0
    )
    yield coordinator
    coordinator.close()


@dataclass
class EchoNode:
    """Answers every task with its own parameters as the update and fixed metrics."""

    node_id: str
    examples: int = 10
    seen: list[Task] = field(default_factory=list)

    def handle(self, task: Task) -> Result:
        self.seen.append(task)
        return Result(
            job_id=task.job_id,
            round_number=task.round_number,
            stage=task.stage,
            node_id=self.node_id,
            num_examples=self.examples,
            parameters=task.parameters,
            metrics={"train_loss" if task.stage is Stage.TRAIN else "loss": 0.5},
        )


@dataclass
class NodeThread:
    """A GrpcNodeClient running ``run`` in a thread; records what ended it."""

    client: GrpcNodeClient
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> NodeThread:
        def target() -> None:
            try:
                self.client.run(self.stop)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, name=self.client.node_id, daemon=True)
        self.thread.start()
        return self

    def join(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.client.node_id} did not stop"


@contextlib.contextmanager
def running(clients: list[GrpcNodeClient]) -> Iterator[list[NodeThread]]:
    threads = [NodeThread(client).start() for client in clients]
    try:
        yield threads
    finally:
        for thread in threads:
            thread.join()


def node_client(
    federation: Federation, name: str, port: int, node: object | None = None, **options: object
) -> GrpcNodeClient:
    settings: dict[str, object] = {
        "poll_wait_s": POLL_WAIT_S,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "seed": 0,
    }
    settings.update(options)
    return GrpcNodeClient(
        kit=federation.node_kit(name),
        node=node or EchoNode(name),  # type: ignore[arg-type]
        address=f"127.0.0.1:{port}",
        **settings,  # type: ignore[arg-type]
    )


def task_for(
    node_id: str, *, round_number: int = 1, job_id: str = "job-1", **config: object
) -> Task:
    return Task(
        job_id=job_id,
        round_number=round_number,
        stage=Stage.TRAIN,
        node_id=node_id,
        parameters=Parameters({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}),
        config={"seed": 3, **config},  # type: ignore[dict-item]
    )


def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        event.wait(0.02)
    raise AssertionError("condition not met in time")
