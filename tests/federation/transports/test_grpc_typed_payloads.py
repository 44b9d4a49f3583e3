"""Typed payloads (integer and byte tensors) cross gRPC and the in-memory path with dtypes kept.

The gRPC codec streams ``Parameters.encoded()`` and parses with ``Parameters.from_buffer``, so a
payload of uint64 masked vectors and uint8 keys travels as safetensors (no pickle, no code) exactly
as a float32 model does; these tests send one each way over real gRPC with mutual TLS on loopback,
in chunks small enough that tensors of different dtypes share chunks and sit unaligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, WireLimits
from sovereign_ai.federation.transports.inmemory import InMemoryTransport

from .conftest import POLL_WAIT_S, Federation, node_client, running

pytestmark = pytest.mark.integration

SMALL_CHUNKS = WireLimits(chunk_size_bytes=64)
PUBLIC_KEY = bytes(range(32)) + b"\x00\xff\x07"  # 35 bytes: what follows it is unaligned


def masked_answer(node_id: str) -> Parameters:
    return Parameters.typed(
        {
            "public_key": PUBLIC_KEY,
            "masked": np.array([2**64 - 1, 2**63, 0, 12345], dtype=np.uint64),
            "ciphertext": np.frombuffer(b"\x80" * 33 + node_id.encode(), dtype=np.uint8),
            "share": np.array([2**32 - 1, 1], dtype=np.uint32),
            "count": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
            "w": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        }
    )


@dataclass
class MaskingNode:
    """Answers every task with a typed payload, recording the tasks it was sent."""

    node_id: str
    seen: list[Task] = field(default_factory=list)

    def handle(self, task: Task) -> Result:
        self.seen.append(task)
        return Result(
            job_id=task.job_id,
            round_number=task.round_number,
            stage=task.stage,
            node_id=self.node_id,
            num_examples=3,
            parameters=masked_answer(self.node_id),
        )


def typed_task(node_id: str) -> Task:
    return Task(
        job_id="secagg-job",
        round_number=1,
        stage=Stage.TRAIN,
        node_id=node_id,
        parameters=Parameters.typed(
            {
                "peer_keys": b"\x01" * 17,
                "seed": np.array([2**64 - 2], dtype=np.uint64),
            }
        ),
    )


def assert_intact(got: Parameters, expected: Parameters) -> None:
    assert list(got) == list(expected)
    assert got.dtypes == expected.dtypes
    assert got == expected


def test_a_typed_payload_crosses_grpc_both_ways_with_dtypes_kept(
    federation: Federation,
) -> None:
    node = MaskingNode("hospital-a")
    task = typed_task("hospital-a")
    coordinator = GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(), poll_wait_s=POLL_WAIT_S, limits=SMALL_CHUNKS
    )
    try:
        client = node_client(
            federation, "hospital-a", coordinator.port, node=node, limits=SMALL_CHUNKS
        )
        with running([client]) as threads:
            coordinator.wait_for_nodes(1, timeout_s=10.0)
            outcome = coordinator.run_stage([task], timeout_s=60.0)  # a hang guard
    finally:
        coordinator.close()

    assert outcome.failures == {}
    assert threads[0].error is None
    assert_intact(node.seen[0].parameters, task.parameters)
    answer = outcome.results[0].parameters
    assert_intact(answer, masked_answer("hospital-a"))
    assert answer["public_key"].tobytes() == PUBLIC_KEY
    assert answer["masked"].tolist() == [2**64 - 1, 2**63, 0, 12345]
    outcome.results[0].check_answers(task)


def test_a_typed_payload_crosses_the_in_memory_path_unchanged() -> None:
    nodes = [MaskingNode("a"), MaskingNode("b")]
    tasks = [typed_task("a"), typed_task("b")]

    with InMemoryTransport(nodes) as transport:
        outcome = transport.run_stage(tasks, timeout_s=10.0)

    assert outcome.failures == {}
    by_node = {result.node_id: result for result in outcome.results}
    for node, task in zip(nodes, tasks, strict=True):
        assert_intact(node.seen[0].parameters, task.parameters)
        assert_intact(by_node[node.node_id].parameters, masked_answer(node.node_id))
        by_node[node.node_id].check_answers(task)
