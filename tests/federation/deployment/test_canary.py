"""Canary proof: a node's raw rows never leave it, and every byte that left is in its audit log.

Unique marker values are planted in one node's CSV. A whole job runs over the real deployment:
the node is a `sovereign node start` process with its kit, mutual TLS and its audit log; the
coordinator is the library's gRPC transport in this process, capturing each call as received
(after TLS); between them a loopback relay counts the bytes the node's socket wrote. With and
without secure aggregation:

(a) no marker, raw row or per-record value appears in any message the coordinator received from
    the node;
(b) every received message matches an egress entry of the node's audit log, one for one and in
    order, by SHA-256 and size; the log verifies and every answer is signed;
(c) the bytes on the node's socket are the recorded bytes plus protocol overhead (TLS records,
    HTTP/2 frames, handshakes): nothing else crossed.
"""

from __future__ import annotations

import csv
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters
from sovereign_ai.federation import load_job_spec
from sovereign_ai.federation.audited_coordinator import CoordinatorAudit, open_coordinator_log
from sovereign_ai.federation.deployment import run_coordinator
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, Received
from sovereign_ai.federation.transports.grpc._frames import chunk_parser
from sovereign_ai.governance import read_entries, verify_log
from sovereign_ai.governance.audit_log import AUDIT_FILE
from sovereign_ai.pki import load_coordinator_kit

from .conftest import CLASSES, LABEL, NODES, write_job
from .relay import CountingRelay

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]

CANARY = "north"
MARKERS = [7919.123456789 + 101.0 * i for i in range(6)]

# Protocol overhead the node's socket may add to what its audit log records (measured on this
# stack; see docs/audit-log.md): a TLS 1.3 handshake with a client certificate and the HTTP/2
# preface per connection; HEADERS, END_STREAM and flow-control frames per call; and per byte,
# TLS record and HTTP/2 frame headers (29 bytes per 16 kB at worst) and WINDOW_UPDATEs for what
# the node receives.
PER_CONNECTION = 3_000
PER_CALL = 300
PER_RECORDED_BYTE = 0.003
PER_RECEIVED_BYTE = 0.002


@dataclass
class Capture:
    """Every call the coordinator received, with its bytes."""

    calls: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, received: Received) -> None:
        with self.lock:
            self.calls.append(received)

    def of(self, node: str) -> list[Received]:
        with self.lock:
            return [call for call in self.calls if call.node_id == node]


def plant_markers(source: Path, target: Path) -> list[list[float]]:
    """Copy the CSV, with the markers written into a few of its cells; return its rows."""
    with open(source, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    for index, marker in enumerate(MARKERS):
        body[3 * index][index % (len(header) - 1)] = repr(marker)
    with open(target, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return [[float(value) for value in row[:-1]] for row in body]


def forbidden_patterns(rows: list[list[float]], csv_text: str) -> Iterator[tuple[str, bytes]]:
    """Byte strings that must never be in a message: markers in text and binary, raw rows."""
    for marker in MARKERS:
        yield f"marker {marker}", repr(marker).encode()
        yield f"marker {marker} (text, float32)", f"{float(np.float32(marker)):.2f}".encode()
        for fmt in ("<d", ">d"):
            yield f"marker {marker} as float64", struct.pack(fmt, marker)
    for number, row in enumerate(rows):
        yield f"row {number} as float32", np.asarray(row, dtype="<f4").tobytes()
        yield f"row {number} as float64", np.asarray(row, dtype="<f8").tobytes()
        yield (
            f"row {number} as float32 widened",
            np.asarray(row, dtype="<f4").astype("<f8").tobytes(),
        )
    for line in csv_text.splitlines()[1:]:
        yield "a CSV line", line.encode()


def telling_values(rows: list[list[float]]) -> np.ndarray:
    """Per-record values as the node holds them (float32) that no model output would equal by
    chance: markers and every non-integral value of magnitude 1 or more (an update's elements
    are far smaller; a count is integral; a sum of many rows is not one row's value)."""
    values = np.asarray(rows, dtype=np.float32).ravel()
    telling = values[(np.abs(values) >= 1) & (values != np.round(values))]
    return np.unique(np.concatenate([telling, np.asarray(MARKERS, dtype=np.float32)]))


def payload_tensors(call: Received) -> dict[str, np.ndarray]:
    """The tensors of an answer, decoded from the bytes received."""
    if call.rpc != "PushResult":
        return {}
    parse = chunk_parser(pb.ResultChunk)
    data = b"".join(bytes(parse(message).data) for message in call.messages[1:])
    return dict(Parameters.from_bytes(data)) if data else {}


def run_job(tmp_path: Path, files: dict[str, Path], *, secure: bool) -> None:
    """One job; asserts (a), (b) and (c) for the canary node."""
    job = write_job(tmp_path, rounds=2, min_nodes=3, epochs=1, timeout=60, wait=3, wait_s=120)
    if secure:
        job.write_text(job.read_text() + "\n[secure_aggregation]\nenabled = true\n")
    spec = load_job_spec(job)
    canary_csv = tmp_path / "north-canary.csv"
    rows = plant_markers(files[CANARY], canary_csv)
    data = {**files, CANARY: canary_csv}
    capture = Capture()
    with LocalFederation(tmp_path / "federation", NODES) as federation:
        federation.provision()
        kit = load_coordinator_kit(federation.kits / "coordinator")
        coordinator_log = open_coordinator_log(kit)
        audit = CoordinatorAudit(coordinator_log, job_id=spec.job_id)

        def received(call: Received) -> None:
            capture(call)
            audit.on_received(call)

        transport = GrpcCoordinatorTransport(
            kit=kit,
            bind_address=f"127.0.0.1:{federation.port}",
            on_received=received,
            keep_received_bytes=True,
        )
        relay = CountingRelay(federation.port)
        try:
            for name in NODES:
                via = ["--coordinator", f"127.0.0.1:{relay.port}"] if name == CANARY else []
                federation.start_node(name, data[name], label=LABEL,
                                      extra=["--classes", CLASSES, *via])  # fmt: skip
            history = run_coordinator(
                spec,
                transport=transport,
                state_dir=tmp_path / "state",
                max_node_wait_s=120,
                observer=audit,  # type: ignore[arg-type]  # it adds the model events
            )
            assert len(history.rounds) == 2
            assert all(CANARY in report.answered for report in history.rounds)
            transport.end_job(job_id=spec.job_id, is_finished=True, rounds_completed=2)
            assert transport.wait_until_nodes_told(timeout_s=60) == []
            federation.nodes[CANARY].wait(timeout=60)
        finally:
            transport.close()
            coordinator_log.close()
            federation.stop()
            relay.close()
        log = federation.node_kit(CANARY) / AUDIT_FILE
        assert_nothing_raw_left(capture.of(CANARY), rows, canary_csv.read_text())
        recorded = assert_one_for_one(capture.of(CANARY), log, secure=secure)
        assert_no_side_channel(relay, recorded)
        assert_the_two_logs_agree(log, kit.folder / AUDIT_FILE)


def assert_nothing_raw_left(received: list[Received], rows: list[list[float]], text: str) -> None:
    assert any(call.rpc == "PushResult" for call in received)
    patterns = list(forbidden_patterns(rows, text))
    telling = telling_values(rows)
    for call in received:
        data = b"".join(call.messages)
        assert len(data) + 5 * len(call.messages) == call.wire.wire_bytes
        for label, pattern in patterns:
            assert pattern not in data, f"{label} left {CANARY} in a {call.rpc} call"
        for name, tensor in payload_tensors(call).items():
            if np.issubdtype(tensor.dtype, np.floating):  # integers are masked: uniform noise
                found = np.isin(tensor.astype(np.float32), telling)
                assert not found.any(), f"{tensor[found][:3]} of the rows left in {name!r}"


def assert_one_for_one(received: list[Received], log: Path, *, secure: bool) -> list[dict]:
    report = verify_log(log)
    assert report.ok, report.problem
    entries = read_entries(log)
    egress = [dict(e.body) for e in entries if e.kind == "egress"]
    answers = [
        i for i, e in enumerate(entries) if e.kind == "egress" and e.body["rpc"] != "PullTask"
    ]
    assert report.signed_through >= answers[-1] + 1  # every answer left under a signature
    calls = [body for body in egress if body["rpc"] != "connect"]
    position = 0
    for call in received:  # in order; a recorded long-poll may not have arrived (job's end)
        while position < len(calls) and (calls[position]["sha256"], calls[position]["bytes"]) != (
            call.wire.sha256,
            call.wire.wire_bytes,
        ):
            assert calls[position]["rpc"] == "PullTask", (
                f"a recorded answer never arrived: {calls[position]}"
            )
            position += 1
        assert position < len(calls), f"received a {call.rpc} call the node never recorded"
        assert calls[position]["rpc"] == call.rpc and call.refusal == ""
        position += 1
    stages = {body["stage"] for body in calls if body["rpc"] == "PushResult"}
    expected = {"evaluate"}
    if secure:
        expected |= {"secagg-advertise-keys", "secagg-share-keys", "secagg-masked-input"}
    else:
        expected |= {"statistics", "train"}
    assert expected <= stages, stages
    return egress


def assert_no_side_channel(relay: CountingRelay, recorded: list[dict]) -> None:
    calls = [body for body in recorded if body["rpc"] != "connect"]
    connects = len(recorded) - len(calls)
    recorded_bytes = sum(int(body["bytes"]) for body in calls)
    certificate = sum(int(body["bytes"]) for body in recorded if body["rpc"] == "connect")
    assert relay.connections <= 2 * connects  # a pre-flight handshake and a channel per connect
    overhead = relay.upstream - recorded_bytes - certificate
    allowed = PER_CONNECTION * relay.connections + PER_CALL * len(calls)
    allowed += PER_RECORDED_BYTE * recorded_bytes + PER_RECEIVED_BYTE * relay.downstream
    print(f"canary socket: {relay.upstream} bytes up, {recorded_bytes} recorded in "
          f"{len(calls)} calls over {relay.connections} connections; overhead {overhead} "
          f"({overhead / max(1, len(calls)):.0f} per call); allowed {allowed:.0f}; "
          f"{relay.downstream} bytes down")  # fmt: skip
    assert overhead >= 0, "fewer bytes crossed than the log says were sent"
    assert overhead <= allowed, "more crossed the node's socket than its audit log accounts for"


def assert_the_two_logs_agree(node_log: Path, coordinator_log: Path) -> None:
    """The auditor's cross-check, from the two parties' own signed logs alone: every answer the
    coordinator took off the wire is one the node recorded sending, by wire digest, and every
    answer it accepted carries the payload the node recorded."""
    assert verify_log(coordinator_log).ok
    sent = [e.body for e in read_entries(node_log) if e.kind == "egress"]
    answers = [body for body in sent if body["rpc"] == "PushResult"]
    entries = read_entries(coordinator_log)
    wire = [e.body for e in entries if e.kind == "wire_received" and e.body["from"] == CANARY]
    assert [(b["sha256"], b["bytes"]) for b in wire] == [
        (b["sha256"], b["bytes"]) for b in answers
    ][: len(wire)]
    assert len(wire) >= len(answers) - 1  # the last answer may race the end of the job
    payloads = {b.get("payload_sha256") for b in answers}
    accepted = [e.body for e in entries if e.kind == "received" and e.body["from"] == CANARY]
    assert accepted and all(b["sha256"] in payloads for b in accepted if b["accepted"])


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure-aggregation"])
def test_canary_rows_never_leave_and_every_byte_is_accounted_for(
    tmp_path: Path, node_files: dict[str, Path], secure: bool
) -> None:
    run_job(tmp_path, node_files, secure=secure)
