"""Over 10,000 random and mutated messages at a live coordinator; it then still runs a whole job.

An admitted node sends hypothesis-made traffic through real mTLS channels: result streams derived
from a valid answer to an outstanding task (header fields rewritten, chunks dropped, duplicated,
swapped, bit-flipped, truncated, interleaved with random bytes), and raw random bytes to every
method. Every call must end with a clean status the node can act on; ``UNKNOWN`` or ``INTERNAL``
would mean an exception escaped the servicer.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sovereign_ai.core import Parameters, StageOutcome, Task
from sovereign_ai.federation import Coordinator
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport
from sovereign_ai.pki import parse_federation_spec, provision
from sovereign_ai.strategies import FedAvg

from .conftest import NODES, Federation, federation_mapping, node_client, running, task_for
from .wire import ManualNode, answer

pytestmark = pytest.mark.integration

CLEAN_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
}
FUZZ = settings(
    deadline=None,
    database=None,
    phases=[Phase.generate],  # a stress test: report the first failure as found, no shrinking
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

texts = st.text(max_size=40)
header_edits = st.one_of(
    st.tuples(st.just("task_id"), st.binary(max_size=20)),
    st.tuples(st.just("job_id"), st.sampled_from(["job-1", "", "job-2"]) | texts),
    st.tuples(st.just("round_number"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("stage"), st.sampled_from(["train", "evaluate", "statistics", ""]) | texts),
    st.tuples(st.just("node_id"), st.sampled_from(NODES) | texts),
    st.tuples(st.just("num_examples"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("payload_size"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("error"), texts),
    st.tuples(st.just("metrics"), st.dictionaries(texts, st.floats(), max_size=3)),
)
stream_edits = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 50)),
    st.tuples(st.just("duplicate"), st.integers(0, 50)),
    st.tuples(st.just("swap"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("flip"), st.integers(0, 50), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 50), st.integers(0, 10_000)),
    st.tuples(st.just("insert"), st.integers(0, 50), st.binary(max_size=64)),
)
edits = st.lists(st.one_of(header_edits, stream_edits), min_size=1, max_size=6)


def mutate(messages: list[pb.ResultChunk], changes: list[tuple[Any, ...]]) -> list[bytes]:
    header = pb.ResultHeader()
    header.CopyFrom(messages[0].header)
    wire = [b""] + [m.SerializeToString() for m in messages[1:]]
    for change in changes:
        kind = change[0]
        if kind == "metrics":
            header.metrics.clear()
            header.metrics.update(change[1])
        elif kind in pb.ResultHeader.DESCRIPTOR.fields_by_name:
            setattr(header, kind, change[1])
    wire[0] = pb.ResultChunk(header=header).SerializeToString()
    for change in changes:
        kind, n = change[0], len(wire)
        if kind == "drop" and n:
            del wire[change[1] % n]
        elif kind == "duplicate" and n:
            wire.insert(change[1] % n, wire[change[1] % n])
        elif kind == "swap" and n:
            i, j = change[1] % n, change[2] % n
            wire[i], wire[j] = wire[j], wire[i]
        elif kind == "flip" and n and wire[change[1] % n]:
            data = bytearray(wire[change[1] % n])
            data[change[2] % len(data)] ^= change[3]
            wire[change[1] % n] = bytes(data)
        elif kind == "cut" and n:
            wire[change[1] % n] = wire[change[1] % n][: change[2]]
        elif kind == "insert":
            wire.insert(change[1] % (n + 1), change[2])

    return wire


@dataclass
class Target:
    """Keeps one task outstanding for ``node`` so mutated results reach the deep checks."""

    transport: GrpcCoordinatorTransport
    node: ManualNode
    pool: cf.ThreadPoolExecutor
    rounds: itertools.count[int]
    stage: cf.Future[StageOutcome] | None = None
    messages: list[pb.ResultChunk] | None = None

    def valid_answer(self) -> list[pb.ResultChunk]:
        if self.stage is None or self.stage.done() or self.messages is None:
            task: Task = task_for("hospital-a", round_number=next(self.rounds))
            self.stage = self.pool.submit(self.transport.run_stage, [task], timeout_s=120.0)
            header, _ = self.node.pull()
            self.messages = answer(header, task)
        return self.messages


def test_live_server_survives_10000_hostile_messages(tmp_path: Path) -> None:
    federation = Federation(
        provision(
            parse_federation_spec(federation_mapping()),
            tmp_path / "fed",
            allow_unencrypted_keys=True,
        )
    )
    sent = {"messages": 0}
    codes: dict[str, int] = {}

    def record(call: Any, request: Any, count: int) -> None:
        sent["messages"] += count
        details = ""
        try:
            response = call(request, timeout=10.0)
            if hasattr(response, "__iter__") and not isinstance(response, bytes):
                list(response)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            details = exc.details()
        codes[code.name] = codes.get(code.name, 0) + 1
        assert code in CLEAN_CODES, f"{code}: {details}"

    transport = GrpcCoordinatorTransport(kit=federation.coordinator_kit(), poll_wait_s=0.05)
    node = ManualNode(federation.node_kit("hospital-a"), transport.port)
    other = ManualNode(federation.node_kit("hospital-b"), transport.port)  # has no tasks
    node.register()
    push_raw = node.raw("PushResult", "stream_unary")
    pool = cf.ThreadPoolExecutor(max_workers=1)
    target = Target(transport, node, pool, itertools.count(1))

    @settings(FUZZ, max_examples=1800)
    @given(changes=edits)
    def fuzz_result_streams(changes: list[tuple[Any, ...]]) -> None:
        wire = mutate(target.valid_answer(), changes)
        record(push_raw, iter(wire), len(wire))

    @settings(FUZZ, max_examples=1200)
    @given(
        method=st.sampled_from([("PullTask", "unary_stream"), ("Status", "unary_unary")]),
        data=st.binary(max_size=256),
    )
    def fuzz_unary_bytes(method: tuple[str, str], data: bytes) -> None:
        record(other.raw(*method), data, 1)

    @settings(FUZZ, max_examples=900)
    @given(messages=st.lists(st.binary(max_size=256), max_size=8))
    def fuzz_push_bytes(messages: list[bytes]) -> None:
        record(other.raw("PushResult", "stream_unary"), iter(messages), len(messages))

    try:
        fuzz_result_streams()
        fuzz_unary_bytes()
        fuzz_push_bytes()
        # the task still outstanding takes its valid answer
        assert target.stage is not None and target.messages is not None
        with contextlib.suppress(grpc.RpcError):  # unless a fuzzed stream happened to be valid
            node.push(target.messages)
        outcome = target.stage.result(timeout=10.0)
    except BaseException:
        transport.close()  # ends the open stage at once
        raise
    finally:
        pool.shutdown()
        node.close()
        other.close()

    print(f"\n{sent['messages']} messages sent; status codes: {codes}")
    assert sent["messages"] >= 10_000
    assert {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION"} <= set(codes)
    assert [r.node_id for r in outcome.results] == ["hospital-a"]
    with transport:
        history = run_small_job(federation, transport)
    assert [report.answered for report in history] == [list(NODES)] * 2


def run_small_job(federation: Federation, transport: GrpcCoordinatorTransport) -> list[Any]:
    clients = [node_client(federation, name, transport.port, poll_wait_s=0.5) for name in NODES]
    with running(clients):
        transport.wait_for_nodes(3, timeout_s=10.0)
        coordinator = Coordinator(
            job_id="after-fuzz",
            strategy=FedAvg(min_train_nodes=3),
            transport=transport,
            initial_parameters=Parameters({"w": np.zeros(4, np.float32)}),
            rounds=2,
            round_timeout_s=20.0,
        )
        return coordinator.run().rounds
