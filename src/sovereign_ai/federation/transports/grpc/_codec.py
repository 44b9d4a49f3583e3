"""Tasks and results to protocol messages and back: headers, chunked payloads, checked reassembly.

A task or result crosses the wire as one header message followed by its safetensors payload in
data chunks. The header declares the payload's size; the receiver refuses a declared size above
its limit before reading anything, stops reading as soon as more bytes arrive than declared, and
refuses the payload if fewer arrive. Everything malformed becomes a
:class:`~sovereign_ai.errors.SerializationError` naming what was wrong.

There is no digest on the wire: TLS authenticates every record, so a digest would check again
what TLS has checked, at the price of a pass over the payload at each end (on two cores, more
than the whole transfer of a large model costs without it; see docs/benchmarks.md). A party that
must record what it sent or received (an audit log) hashes it where it records it.

Nothing here holds a second full-size copy of a payload. The sender streams from the tensors' own
memory (:meth:`Parameters.encoded`); the receiver copies each chunk once into a buffer of the
declared size, and the parameters it returns view that buffer (:meth:`Parameters.from_buffer`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import ConfigValue, EncodedTensors, Parameters, Result, Stage, Task
from sovereign_ai.errors import SerializationError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._frames import DataFrame
from sovereign_ai.federation.transports.grpc._limits import WireLimits

__all__ = [
    "TASK_ID_BYTES",
    "Payload",
    "check_result_header",
    "check_task_header",
    "decode_result",
    "decode_task",
    "new_task_id",
    "read_payload",
    "refusal_message",
    "result_messages",
    "task_header",
    "task_messages",
]

TASK_ID_BYTES = 16  # 128-bit random nonce per task
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def new_task_id() -> bytes:
    """A fresh random 128-bit task id (``secrets``, not a counter: ids are unguessable)."""
    return secrets.token_bytes(TASK_ID_BYTES)


@dataclass(frozen=True)
class Payload:
    """A parameters payload as it travels: safetensors laid over the tensors' memory.

    A stage sends the same global model to every node; one :class:`Payload` serves every stream.
    """

    encoded: EncodedTensors

    @classmethod
    def of(cls, parameters: Parameters) -> Payload:
        """The payload of ``parameters`` (views their memory; nothing is serialised yet)."""
        return cls(parameters.encoded())

    @property
    def size(self) -> int:
        """Payload size in bytes."""
        return self.encoded.size

    def frames(self, chunk_size: int) -> Iterator[DataFrame]:
        """The payload as data chunks of at most ``chunk_size`` bytes, viewing the tensors."""
        for data in self.encoded.chunks(chunk_size):
            yield DataFrame(data)


# Encoding -----------------------------------------------------------------------------------------
def task_header(task: Task, *, task_id: bytes, payload: Payload) -> pb.TaskHeader:
    """The header announcing ``task``; raises SerializationError for unsendable settings."""
    header = pb.TaskHeader(
        task_id=task_id,
        job_id=task.job_id,
        round_number=task.round_number,
        stage=task.stage.value,
        node_id=task.node_id,
        payload_size=payload.size,
    )
    for key, value in task.config.items():
        header.config[key].CopyFrom(_encode_value(key, value))
    return header


def _encode_value(key: str, value: ConfigValue) -> pb.ConfigValue:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return pb.ConfigValue(bool_value=value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise SerializationError(f"Setting {key!r}={value} does not fit in 64 bits.")
        return pb.ConfigValue(int_value=value)
    if isinstance(value, float):
        return pb.ConfigValue(float_value=value)
    if isinstance(value, str):
        return pb.ConfigValue(string_value=value)
    raise SerializationError(
        f"Setting {key!r} must be a bool, int, float or str; got {type(value).__name__}."
    )


def task_messages(
    header: pb.TaskHeader, payload: Payload, *, limits: WireLimits
) -> Iterator[pb.TaskChunk | DataFrame]:
    """The header, then the payload in chunks of at most ``limits.chunk_size_bytes``."""
    yield pb.TaskChunk(header=header)
    yield from payload.frames(limits.chunk_size_bytes)


def result_messages(
    result: Result, *, task_id: bytes, limits: WireLimits
) -> Iterator[pb.ResultChunk | DataFrame]:
    """A result's header echoing ``task_id``, then its payload in chunks.

    Raises
    ------
    SerializationError
        At once (not when iterated) if the payload exceeds ``limits.max_payload_bytes``.
    """
    payload = Payload.of(result.parameters)
    if payload.size > limits.max_payload_bytes:
        raise SerializationError(
            f"The result payload is {payload.size} bytes; the limit is {limits.max_payload_bytes}."
        )
    header = pb.ResultHeader(
        task_id=task_id,
        job_id=result.job_id,
        round_number=result.round_number,
        stage=result.stage.value,
        node_id=result.node_id,
        num_examples=result.num_examples,
        payload_size=payload.size,
    )
    for name, value in result.metrics.items():
        header.metrics[name] = float(value)
    return _stream(pb.ResultChunk(header=header), payload, limits.chunk_size_bytes)


def _stream(
    first: pb.ResultChunk, payload: Payload, chunk_size: int
) -> Iterator[pb.ResultChunk | DataFrame]:
    yield first
    yield from payload.frames(chunk_size)


def refusal_message(header: pb.TaskHeader, *, reason: str, limits: WireLimits) -> pb.ResultChunk:
    """A payload-less result header: the node declined or failed the task ``header`` announced."""
    return pb.ResultChunk(
        header=pb.ResultHeader(
            task_id=header.task_id,
            job_id=header.job_id,
            round_number=header.round_number,
            stage=header.stage,
            node_id=header.node_id,
            error=(reason or "unspecified")[: limits.max_text_chars],
        )
    )


# Decoding -----------------------------------------------------------------------------------------
def _check_text(label: str, value: str, limits: WireLimits, *, allow_empty: bool = False) -> None:
    if len(value) > limits.max_text_chars:
        raise SerializationError(
            f"The {label} is {len(value)} characters long; at most {limits.max_text_chars}."
        )
    if not value and not allow_empty:
        raise SerializationError(f"The {label} is empty.")


def _check_common(
    kind: str, header: pb.TaskHeader | pb.ResultHeader, limits: WireLimits, *, has_payload: bool
) -> None:
    if header.ByteSize() > limits.max_header_bytes:
        raise SerializationError(
            f"The {kind} header is {header.ByteSize()} bytes; at most {limits.max_header_bytes}."
        )
    if len(header.task_id) != TASK_ID_BYTES:
        raise SerializationError(
            f"The {kind} header's task id has {len(header.task_id)} bytes; expected "
            f"{TASK_ID_BYTES}."
        )
    _check_text(f"{kind} header's job id", header.job_id, limits)
    _check_text(f"{kind} header's node id", header.node_id, limits)
    _stage(header.stage)
    if not has_payload:
        return
    if header.payload_size > limits.max_payload_bytes:
        raise SerializationError(
            f"The {kind} declares a payload of {header.payload_size} bytes; the limit is "
            f"{limits.max_payload_bytes} (WireLimits.max_payload_bytes)."
        )


def _stage(value: str) -> Stage:
    try:
        return Stage(value)
    except ValueError:
        known = ", ".join(stage.value for stage in Stage)
        raise SerializationError(
            f"Unknown stage {value[:80]!r}; this build handles: {known}."
        ) from None


def check_task_header(header: pb.TaskHeader, *, limits: WireLimits) -> None:
    """Raise SerializationError unless ``header`` is a well-formed task header within limits."""
    _check_common("task", header, limits, has_payload=True)
    if len(header.config) > limits.max_config_entries:
        raise SerializationError(
            f"The task carries {len(header.config)} settings; at most {limits.max_config_entries}."
        )
    for key, value in header.config.items():
        _check_text("setting name", key, limits)
        if value.WhichOneof("kind") is None:
            raise SerializationError(f"Setting {key[:80]!r} has no value.")


def check_result_header(header: pb.ResultHeader, *, limits: WireLimits) -> None:
    """Raise SerializationError unless ``header`` is a well-formed result header within limits."""
    is_refusal = bool(header.error)
    _check_common("result", header, limits, has_payload=not is_refusal)
    if is_refusal:
        _check_text("refusal reason", header.error, limits)
        if header.payload_size:
            raise SerializationError("A refusal must not carry a payload.")
        return
    if len(header.metrics) > limits.max_config_entries:
        raise SerializationError(
            f"The result carries {len(header.metrics)} metrics; at most "
            f"{limits.max_config_entries}."
        )
    for name in header.metrics:
        _check_text("metric name", name, limits)


def read_payload(
    messages: Iterable[object], *, declared_size: int, limits: WireLimits
) -> npt.NDArray[np.uint8]:
    """Reassemble the data chunks that follow a header into one buffer, checking the size.

    Parameters
    ----------
    messages
        The rest of the stream (anything but data chunks is refused).
    declared_size
        What the header announced (already checked against ``limits``).

    Returns
    -------
    numpy.ndarray
        The payload, ``declared_size`` bytes; only the receiver holds it.

    Raises
    ------
    SerializationError
        On an undecodable or non-data message, or more or fewer bytes than declared.
    """
    buffer = np.empty(declared_size, dtype=np.uint8)  # untouched pages cost no memory yet
    received = 0
    for message in messages:
        if not isinstance(message, DataFrame | pb.TaskChunk | pb.ResultChunk):
            raise SerializationError("A message of the stream is not a valid protocol buffer.")
        # Read the field once: each access to a protobuf bytes field builds a new bytes object.
        data: bytes | memoryview = message.data if message.WhichOneof("part") == "data" else b""
        if not data:
            raise SerializationError(
                "Expected a data chunk after the header; got a second header or an empty message."
            )
        if received + len(data) > declared_size:
            raise SerializationError(
                f"The stream carries more than the {declared_size} payload bytes it declared."
            )
        if len(data) > limits.max_message_bytes:  # gRPC enforces this already
            raise SerializationError(f"A chunk of {len(data)} bytes exceeds the limit.")
        buffer[received : received + len(data)] = np.frombuffer(data, dtype=np.uint8)
        received += len(data)
    if received != declared_size:
        raise SerializationError(
            f"The stream ended after {received} of the {declared_size} payload bytes it declared "
            "(truncated)."
        )
    return buffer


def _parameters(payload: npt.NDArray[np.uint8]) -> Parameters:
    try:
        return Parameters.from_buffer(payload)
    except Exception as exc:  # hostile bytes: any parser failure means a malformed payload
        raise SerializationError(f"Not a valid safetensors payload: {exc}") from exc


def _config(values: Mapping[str, pb.ConfigValue]) -> dict[str, ConfigValue]:
    config: dict[str, ConfigValue] = {}
    for key in sorted(values):  # map order is unspecified on the wire; make it deterministic
        value = values[key]
        kind = value.WhichOneof("kind")
        if kind == "bool_value":
            config[key] = value.bool_value
        elif kind == "int_value":
            config[key] = value.int_value
        elif kind == "float_value":
            config[key] = value.float_value
        elif kind == "string_value":
            config[key] = value.string_value
        else:
            raise SerializationError(f"Setting {key[:80]!r} has no value.")
    return config


def decode_task(header: pb.TaskHeader, payload: npt.NDArray[np.uint8]) -> Task:
    """The task a checked header and its reassembled payload describe."""
    return Task(
        job_id=header.job_id,
        round_number=header.round_number,
        stage=_stage(header.stage),
        node_id=header.node_id,
        parameters=_parameters(payload),
        config=_config(header.config),
    )


def decode_result(header: pb.ResultHeader, payload: npt.NDArray[np.uint8]) -> Result:
    """The result a checked (non-refusal) header and its reassembled payload describe."""
    return Result(
        job_id=header.job_id,
        round_number=header.round_number,
        stage=_stage(header.stage),
        node_id=header.node_id,
        num_examples=header.num_examples,
        parameters=_parameters(payload),
        metrics={name: float(header.metrics[name]) for name in sorted(header.metrics)},
    )
