"""Tasks and results to wire messages and back, and every way a stream can be malformed."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sovereign_ai.federation.transports.grpc as grpc_transport
from sovereign_ai.core import ConfigValue, Parameters, Result, Stage, Task
from sovereign_ai.errors import (
    AuthenticationError,
    ConfigError,
    SerializationError,
    StaleMessageError,
    TransportError,
)
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc import WireLimits
from sovereign_ai.federation.transports.grpc._codec import (
    Payload,
    check_result_header,
    check_task_header,
    decode_result,
    decode_task,
    new_task_id,
    read_payload,
    refusal_message,
    result_messages,
    task_header,
    task_messages,
)
from sovereign_ai.federation.transports.grpc._node_client import _Backoff
from sovereign_ai.federation.transports.grpc._service import translate_rpc_error

SMALL = WireLimits(chunk_size_bytes=100)


def a_task(**config: ConfigValue) -> Task:
    return Task(
        job_id="job-1",
        round_number=4,
        stage=Stage.EVALUATE,
        node_id="hospital-a",
        parameters=Parameters({"w": np.arange(60, dtype=np.float32), "b": np.ones(3)}),
        config=config,
    )


def wire_task(task: Task, limits: WireLimits = SMALL) -> list[pb.TaskChunk]:
    payload = Payload.of(task.parameters)
    return list(
        task_messages(
            task_header(task, task_id=new_task_id(), payload=payload), payload, limits=limits
        )
    )


def receive_task(messages: list[pb.TaskChunk], limits: WireLimits = SMALL) -> Task:
    header = messages[0].header
    check_task_header(header, limits=limits)
    payload = read_payload(messages[1:], declared_size=header.payload_size, limits=limits)
    return decode_task(header, payload)


def test_task_round_trips_with_typed_settings() -> None:
    task = a_task(flag=True, epochs=3, big=-(2**62), rate=0.125, name="logreg", empty="")

    messages = wire_task(task)
    got = receive_task(messages)

    assert got == task
    assert [type(v) for v in got.config.values()] == [int, str, int, bool, str, float]
    assert all(len(m.data) <= 100 for m in messages[1:])
    assert len(messages) - 1 == math.ceil(messages[0].header.payload_size / 100)


def test_the_payload_streams_from_the_tensors_own_memory() -> None:
    parameters = Parameters({"w": np.arange(1000, dtype=np.float32)})
    payload = Payload.of(parameters)

    frames = list(payload.frames(1024))

    assert b"".join(frame.data for frame in frames) == payload.encoded.to_bytes()
    assert np.shares_memory(np.frombuffer(frames[1].data, dtype=np.uint8), parameters["w"])


def test_received_parameters_view_the_receive_buffer() -> None:
    messages = wire_task(a_task())
    header = messages[0].header

    buffer = read_payload(messages[1:], declared_size=header.payload_size, limits=SMALL)
    task = decode_task(header, buffer)

    assert all(np.shares_memory(array, buffer) for array in task.parameters.values())


def test_result_round_trips() -> None:
    result = Result(
        job_id="job-1",
        round_number=4,
        stage=Stage.TRAIN,
        node_id="hospital-a",
        num_examples=17,
        parameters=Parameters({"w": np.full((2, 2), 0.5)}),
        metrics={"loss": 0.75, "accuracy": 1.0},
    )

    messages = list(result_messages(result, task_id=b"t" * 16, limits=SMALL))
    header = messages[0].header
    check_result_header(header, limits=SMALL)
    payload = read_payload(messages[1:], declared_size=header.payload_size, limits=SMALL)

    assert header.task_id == b"t" * 16
    assert decode_result(header, payload) == result


def test_refusal_carries_the_binding_and_reason_only() -> None:
    header = wire_task(a_task())[0].header

    refusal = refusal_message(header, reason="policy says no", limits=SMALL).header
    check_result_header(refusal, limits=SMALL)

    assert (refusal.task_id, refusal.job_id, refusal.round_number) == (header.task_id, "job-1", 4)
    assert (refusal.error, refusal.payload_size) == ("policy says no", 0)


def test_a_declared_size_above_the_limit_is_refused_before_reading() -> None:
    messages = wire_task(a_task())
    limits = WireLimits(max_payload_bytes=100)

    with pytest.raises(
        SerializationError, match=r"declares a payload of \d+ bytes; the limit is 100"
    ):
        check_task_header(messages[0].header, limits=limits)


def _never_read() -> Iterator[pb.TaskChunk]:
    raise AssertionError("read past the declared size")
    yield  # pragma: no cover


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda m: m[:-1], r"ended after \d+ of the \d+ payload bytes it declared \(truncated\)"),
        (lambda m: [*m, pb.TaskChunk(data=b"!")], "more than the"),
        (lambda m: [*m, m[-1]], "more than the"),
        (lambda m: [m[0], m[0], *m[1:]], "second header"),
        (lambda m: [m[0], pb.TaskChunk(), *m[1:]], "empty message"),
        (lambda m: [m[0], object(), *m[1:]], "not a valid protocol buffer"),
    ],
)
def test_malformed_payload_streams_are_refused(edit: object, reason: str) -> None:
    messages = edit(wire_task(a_task()))  # type: ignore[operator]

    with pytest.raises(SerializationError, match=reason):
        receive_task(messages)


def test_reading_stops_at_the_first_byte_beyond_the_declared_size() -> None:
    messages = wire_task(a_task())
    header = messages[0].header

    def stream() -> Iterator[pb.TaskChunk]:
        yield from messages[1:]
        yield pb.TaskChunk(data=b"overflow")
        yield from _never_read()

    with pytest.raises(SerializationError, match="more than the"):
        read_payload(
            stream(),
            declared_size=header.payload_size,
            limits=SMALL,
        )


def test_a_payload_that_is_not_safetensors_is_refused() -> None:
    messages = wire_task(a_task())
    junk = b"\xff" * 64
    header = messages[0].header
    header.payload_size = len(junk)

    with pytest.raises(SerializationError, match="safetensors header claims"):
        receive_task([messages[0], pb.TaskChunk(data=junk)])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("task_id", b"short", "task id has 5 bytes; expected 16"),
        ("job_id", "", "job id is empty"),
        ("node_id", "n" * 70_000, "node id is 70000 characters long"),
        ("stage", "unmask", "Unknown stage 'unmask'; this build handles: statistics, train"),
    ],
)
def test_malformed_task_headers_are_refused(field: str, value: object, reason: str) -> None:
    header = wire_task(a_task())[0].header
    setattr(header, field, value)

    with pytest.raises(SerializationError, match=reason):
        check_task_header(header, limits=SMALL)


def test_settings_without_a_value_or_too_many_are_refused() -> None:
    header = wire_task(a_task())[0].header
    header.config["unset"].CopyFrom(pb.ConfigValue())
    with pytest.raises(SerializationError, match="Setting 'unset' has no value"):
        check_task_header(header, limits=SMALL)

    crowded = wire_task(a_task(**{f"k{i}": i for i in range(5)}))[0].header
    with pytest.raises(SerializationError, match="carries 5 settings; at most 4"):
        check_task_header(crowded, limits=WireLimits(max_config_entries=4))


def test_unsendable_settings_are_refused_at_the_sender() -> None:
    with pytest.raises(SerializationError, match="does not fit in 64 bits"):
        wire_task(a_task(huge=2**70))
    with pytest.raises(SerializationError, match="must be a bool, int, float or str; got list"):
        wire_task(a_task(bad=[1, 2]))  # type: ignore[arg-type]


def test_result_above_the_payload_limit_is_refused_before_sending() -> None:
    result = Result("job-1", 1, Stage.TRAIN, "hospital-a", 1, a_task().parameters)

    with pytest.raises(SerializationError, match="the limit is 64"):
        result_messages(result, task_id=b"t" * 16, limits=WireLimits(max_payload_bytes=64))


@settings(max_examples=60, deadline=None)
@given(
    shapes=st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=3), min_size=0, max_size=4),
    config=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False),
            st.text(max_size=50),
        ),
        max_size=8,
    ),
    chunk=st.integers(1, 300),
)
def test_any_task_round_trips(
    shapes: list[list[int]], config: dict[str, ConfigValue], chunk: int
) -> None:
    rng = np.random.default_rng(len(shapes))
    tensors = {
        f"t{i}": rng.standard_normal(shape).astype(np.float32) for i, shape in enumerate(shapes)
    }
    task = Task("job", 2, Stage.TRAIN, "node", Parameters(tensors), config)
    limits = WireLimits(chunk_size_bytes=chunk)

    assert receive_task(wire_task(task, limits), limits) == task


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_payload_bytes", 0),
        ("chunk_size_bytes", 8 * 1024 * 1024),
        ("max_header_bytes", 10),
        ("max_config_entries", True),
    ],
)
def test_wire_limits_are_validated(setting: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"The '{setting}' parameter of WireLimits must be"):
        WireLimits(**{setting: value})


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("UNAUTHENTICATED", AuthenticationError),
        ("PERMISSION_DENIED", AuthenticationError),
        ("FAILED_PRECONDITION", StaleMessageError),
        ("INVALID_ARGUMENT", SerializationError),
        ("UNAVAILABLE", TransportError),
        ("DEADLINE_EXCEEDED", TransportError),
        ("RESOURCE_EXHAUSTED", TransportError),
    ],
)
def test_grpc_errors_become_the_projects_errors(code: str, error: type[Exception]) -> None:
    rpc_error = SimpleNamespace(code=lambda: getattr(grpc.StatusCode, code), details=lambda: "why")

    translated = translate_rpc_error(rpc_error, action="PullTask", address="h:1")  # type: ignore[arg-type]

    assert type(translated) is error
    assert "why" in str(translated)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = _Backoff(initial_s=0.5, max_s=4.0, rng=random.Random(1))

    delays = [backoff.next_delay() for _ in range(8)]
    backoff.reset()

    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.next_delay() <= 0.5


def test_public_names() -> None:
    assert sorted(grpc_transport.__all__) == [
        "AnswerReport",
        "ConnectedNode",
        "CoordinatorStatus",
        "Egress",
        "EgressRecorder",
        "GrpcCoordinatorTransport",
        "GrpcNodeClient",
        "JobEnd",
        "Received",
        "ReceivedCallback",
        "WireDigest",
        "WireLimits",
        "fetch_status",
    ]
    assert all(hasattr(grpc_transport, name) for name in grpc_transport.__all__)
