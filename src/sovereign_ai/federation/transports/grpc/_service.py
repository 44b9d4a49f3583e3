"""The ``sovereign.federation.v1.Federation`` service bound by hand, and gRPC errors translated.

The service is registered with gRPC's generic handlers instead of the generated ``_pb2_grpc``
module: three methods do not justify a second generated file, the binding stays typed for
``mypy --strict``, and messages are parsed leniently: an undecodable one becomes
:data:`UNDECODABLE` and then a :class:`~sovereign_ai.errors.SerializationError` with a clear reason,
instead of gRPC's internal error and a logged traceback per hostile message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError

from sovereign_ai.errors import (
    AuthenticationError,
    SerializationError,
    SovereignError,
    StaleMessageError,
    TransportError,
)
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._frames import DataFrame, chunk_parser, serialize
from sovereign_ai.federation.transports.grpc._wire_digest import Framed

__all__ = [
    "NODE_ID_METADATA",
    "SERVICE_NAME",
    "UNDECODABLE",
    "FederationServicer",
    "FederationStub",
    "Undecodable",
    "abort",
    "lenient",
    "service_handler",
    "translate_rpc_error",
]

SERVICE_NAME = "sovereign.federation.v1.Federation"
NODE_ID_METADATA = "sovereign-node-id"
"""Metadata key naming the node in plaintext test mode only (never trusted with TLS on)."""

M = TypeVar("M")


class Undecodable:
    """Stands in for a message that was not a valid protocol buffer (gRPC treats ``None`` as an
    internal error, so the lenient parsers return this instead)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDECODABLE"


UNDECODABLE = Undecodable()


def lenient(parse: Callable[[bytes], M]) -> Callable[[bytes], M | Undecodable]:
    """``parse``, with an invalid message becoming :data:`UNDECODABLE` instead of an error."""

    def deserialize(data: bytes) -> M | Undecodable:
        try:
            return parse(data)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return UNDECODABLE

    return deserialize


def _framed(parse: Callable[[bytes], M]) -> Callable[[bytes], Framed[M]]:
    def deserialize(data: bytes) -> Framed[M]:
        return Framed(parse(data), data)

    return deserialize


class FederationServicer(Protocol):
    """What the coordinator implements; undecodable requests arrive as :data:`UNDECODABLE`."""

    def pull_task(
        self, request: Framed[pb.PullRequest | Undecodable], context: Any
    ) -> Iterator[pb.TaskChunk | DataFrame]:
        """Long-poll for the calling node's next task."""
        ...

    def push_result(
        self, requests: Iterator[Framed[pb.ResultChunk | DataFrame | Undecodable]], context: Any
    ) -> pb.PushReply:
        """Receive one result stream."""
        ...

    def status(self, request: pb.StatusRequest | Undecodable, context: Any) -> pb.StatusReply:
        """Report what the coordinator is doing."""
        ...


def service_handler(servicer: FederationServicer) -> Any:
    """A ``grpc.GenericRpcHandler`` routing the service's three methods to ``servicer``.

    Requests of ``PullTask`` and ``PushResult`` arrive :class:`Framed`, with the bytes they were
    parsed from, so the coordinator can digest what it received (:mod:`._wire_digest`).
    """
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "PullTask": grpc.unary_stream_rpc_method_handler(
                servicer.pull_task,
                request_deserializer=_framed(lenient(pb.PullRequest.FromString)),
                response_serializer=serialize,
            ),
            "PushResult": grpc.stream_unary_rpc_method_handler(
                servicer.push_result,
                request_deserializer=_framed(lenient(chunk_parser(pb.ResultChunk))),
                response_serializer=pb.PushReply.SerializeToString,
            ),
            "Status": grpc.unary_unary_rpc_method_handler(
                servicer.status,
                request_deserializer=lenient(pb.StatusRequest.FromString),
                response_serializer=pb.StatusReply.SerializeToString,
            ),
        },
    )


class FederationStub:
    """Client-side callables of the service on ``channel``."""

    def __init__(self, channel: Any) -> None:
        prefix = f"/{SERVICE_NAME}/"
        self.pull_task = channel.unary_stream(
            prefix + "PullTask",
            request_serializer=pb.PullRequest.SerializeToString,
            response_deserializer=lenient(chunk_parser(pb.TaskChunk)),
        )
        self.push_result = channel.stream_unary(
            prefix + "PushResult",
            request_serializer=serialize,
            response_deserializer=pb.PushReply.FromString,
        )
        self.status = channel.unary_unary(
            prefix + "Status",
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusReply.FromString,
        )


_CODES: tuple[tuple[type[SovereignError], Any], ...] = (
    (AuthenticationError, grpc.StatusCode.PERMISSION_DENIED),
    (StaleMessageError, grpc.StatusCode.FAILED_PRECONDITION),
    (SerializationError, grpc.StatusCode.INVALID_ARGUMENT),
)


def abort(context: Any, error: SovereignError, *, code: Any = None) -> NoReturn:
    """End the call with the status that fits ``error`` and its message as details."""
    if code is None:
        code = next(
            (status for kind, status in _CODES if isinstance(error, kind)),
            grpc.StatusCode.INTERNAL,
        )
    context.abort(code, str(error)[:2000])
    raise AssertionError("unreachable")  # pragma: no cover - context.abort always raises


_AUTH_CODES = ("UNAUTHENTICATED", "PERMISSION_DENIED")


def translate_rpc_error(exc: grpc.RpcError, *, action: str, address: str) -> SovereignError:
    """The project's error for a failed call; use as ``raise translate_rpc_error(...) from exc``.

    ``UNAUTHENTICATED``/``PERMISSION_DENIED`` become :class:`AuthenticationError`,
    ``FAILED_PRECONDITION`` a :class:`StaleMessageError`, ``INVALID_ARGUMENT`` a
    :class:`SerializationError`, anything else (unreachable, deadline, reset, overload) a
    :class:`TransportError`.
    """
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    message = f"{action} at {address} failed ({name}): {details}"
    if name in _AUTH_CODES:
        return AuthenticationError(f"The coordinator at {address} refused the call: {details}")
    if name == "FAILED_PRECONDITION":
        return StaleMessageError(message)
    if name == "INVALID_ARGUMENT":
        return SerializationError(message)
    return TransportError(message)
