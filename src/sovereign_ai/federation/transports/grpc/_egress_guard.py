"""The node's one way to the network: every call is recorded before a byte of it is sent.

:class:`EgressGuard` owns the node's connection to its coordinator. It alone dials (the pre-flight
TLS handshake and the gRPC channel) and it alone starts calls, in three kinds:

``connect``
    before each new connection: the address and the certificate chain this node presents;
``PullTask``
    each long-poll for a task (the node's name and how long it waits: no data);
``PushResult``
    each answer: its header (job, round, stage, examples, metrics, or the refusal's text) and its
    payload.

For each, the guard serialises the messages itself, hands a description with the call's wire
digest (:mod:`._wire_digest`) to the node's recorder, and only when the recorder returns sends
*those same bytes*: the channel's serialisers are identities, and a result is serialised again
while it streams out and checked against what was recorded, its last message held back until
the check passes. A recorder that raises stops the call before it starts (fail closed).

The channel is wrapped so that a call started by anything but the guard fails with
:class:`~sovereign_ai.errors.AuditError` before it reaches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from sovereign_ai.errors import AuditError, TransportError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._dial import (
    VerifiedCoordinator,
    open_channel,
    verify_coordinator,
)
from sovereign_ai.federation.transports.grpc._frames import DataFrame, chunk_parser
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._service import SERVICE_NAME, lenient
from sovereign_ai.federation.transports.grpc._wire_digest import WireDigest, WireTally
from sovereign_ai.pki import NodeKit

__all__ = ["Egress", "EgressGuard", "EgressRecorder"]

ResultMessage = pb.ResultChunk | DataFrame


@dataclass(frozen=True)
class Egress:
    """One call about to leave the node, described for its audit log.

    Parameters
    ----------
    rpc
        ``"connect"``, ``"PullTask"`` or ``"PushResult"``.
    address
        Where it goes (``host:port``).
    wire
        Digest and size of what is sent: the framed request messages (:mod:`._wire_digest`); for
        ``connect``, the DER certificate chain presented in the TLS handshake.
    job_id, round_number, stage
        The task a result answers (``PushResult`` only).
    details
        What the bytes say, read from the messages themselves: for a result its example count,
        metrics, payload SHA-256 and size, or the refusal's text.
    """

    rpc: str
    address: str
    wire: WireDigest
    job_id: str | None = None
    round_number: int | None = None
    stage: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)


EgressRecorder = Callable[[Egress], None]
"""Records an :class:`Egress` durably and returns, or raises to stop it from being sent."""


class _OnlyThroughGuard(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Refuses every call on the channel that the guard did not start itself."""

    def __init__(self, permit: threading.local) -> None:
        self._permit = permit

    def _check(self, details: Any) -> None:
        if not getattr(self._permit, "open", False):
            raise AuditError(
                f"Refused an unrecorded call to {details.method}: a node sends only through its "
                "egress guard, which records every call in the audit log first."
            )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._check(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._check(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._check(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._check(details)
        return continuation(details, requests)


class EgressGuard:
    """Dials the coordinator for one node and sends only what its recorder has recorded.

    Parameters
    ----------
    kit
        The node's startup kit (certificate, key, CA).
    address
        The coordinator's ``host:port``.
    limits
        Message limits of the channel.
    record
        The node's recorder (its audit log); ``None`` records nothing (tests and tools).
    allow_insecure
        Plaintext without the pre-flight handshake. **For tests only.**
    connect_timeout_s
        Deadline of the pre-flight TLS handshake.
    """

    def __init__(
        self,
        kit: NodeKit,
        *,
        address: str,
        limits: WireLimits,
        record: EgressRecorder | None,
        allow_insecure: bool = False,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._kit, self._address, self._limits = kit, address, limits
        self._record = record or (lambda egress: None)
        self._allow_insecure = allow_insecure
        self._connect_timeout_s = connect_timeout_s
        self._permit = threading.local()
        self._lock = threading.Lock()
        self._channel: Any = None
        self._guarded: Any = None
        self._pull: Any = None
        self._push: Any = None

    @property
    def is_connected(self) -> bool:
        """Whether a channel is open."""
        with self._lock:
            return self._channel is not None

    def connect(self) -> VerifiedCoordinator | None:
        """Record the connection, check who answers at the address, open the channel.

        Returns
        -------
        VerifiedCoordinator or None
            The coordinator the pre-flight handshake verified; ``None`` in plaintext test mode.

        Raises
        ------
        AuthenticationError, TransportError
            As :func:`~._dial.verify_coordinator`.
        """
        tally = WireTally()
        tally.add(self._kit.certificate.public_bytes(Encoding.DER))
        self._record(Egress("connect", self._address, tally.digest))
        verified = None
        if not self._allow_insecure:
            verified = verify_coordinator(
                self._kit, address=self._address, timeout_s=self._connect_timeout_s
            )
        channel = open_channel(
            self._kit,
            address=self._address,
            limits=self._limits,
            allow_insecure=self._allow_insecure,
        )
        guarded = grpc.intercept_channel(channel, _OnlyThroughGuard(self._permit))
        prefix = f"/{SERVICE_NAME}/"
        with self._lock:
            self._channel, self._guarded = channel, guarded
            self._pull = guarded.unary_stream(
                prefix + "PullTask",
                request_serializer=None,  # bytes: the guard serialised and recorded them
                response_deserializer=lenient(chunk_parser(pb.TaskChunk)),
            )
            self._push = guarded.stream_unary(
                prefix + "PushResult",
                request_serializer=None,
                response_deserializer=pb.PushReply.FromString,
            )
        return verified

    def close(self) -> None:
        """Close the channel (a call in flight is cancelled)."""
        with self._lock:
            channel, self._channel, self._guarded = self._channel, None, None
            self._pull = self._push = None
        if channel is not None:
            channel.close()

    @property
    def guarded_channel(self) -> Any:
        """The channel as the guard uses it: any call not started by the guard is refused."""
        with self._lock:
            return self._guarded

    @contextlib.contextmanager
    def _permitted(self) -> Iterator[None]:
        self._permit.open = True
        try:
            yield
        finally:
            self._permit.open = False

    def _callable(self, name: str) -> Any:
        with self._lock:
            method = self._pull if name == "PullTask" else self._push
        if method is None:
            raise TransportError("Not connected to the coordinator.")
        return method

    def pull(self, request: pb.PullRequest, *, timeout: float, metadata: Any) -> Any:
        """Record and start one long-poll; returns gRPC's call (iterate it, or cancel it)."""
        method = self._callable("PullTask")
        raw = request.SerializeToString()
        tally = WireTally()
        tally.add(raw)
        self._record(
            Egress(
                "PullTask",
                self._address,
                tally.digest,
                details={"node": request.node_id, "max_wait_ms": request.max_wait_ms},
            )
        )
        with self._permitted():
            return method(raw, timeout=timeout, metadata=metadata)

    def push(
        self,
        messages: Callable[[], Iterable[ResultMessage]],
        *,
        timeout: float,
        metadata: Any,
    ) -> pb.PushReply:
        """Record one answer, then stream exactly the recorded bytes.

        Parameters
        ----------
        messages
            Makes the answer's messages (header first); called twice, to record and to send, and
            must give the same messages both times.

        Raises
        ------
        AuditError
            If the messages sent differ from those recorded (the call is cancelled before its
            last message, so the coordinator never accepts them).
        grpc.RpcError
            If the call fails.
        """
        method = self._callable("PushResult")
        egress = _describe_result(self._address, messages())
        self._record(egress)
        stream = _SameAsRecorded(messages(), egress.wire)
        with self._permitted():
            try:
                reply: pb.PushReply = method(iter(stream), timeout=timeout, metadata=metadata)
            except grpc.RpcError:
                stream.raise_if_changed()
                raise
        return reply


def _describe_result(address: str, messages: Iterable[ResultMessage]) -> Egress:
    """What a result says and its wire digest, read from the messages that will be sent."""
    tally = WireTally()
    payload = hashlib.sha256()
    payload_bytes = 0
    header: pb.ResultHeader | None = None
    for message in messages:
        if isinstance(message, DataFrame):
            prefix, data = message.parts()
            tally.add(prefix, data)
            payload.update(data)
            payload_bytes += data.nbytes
            continue
        tally.add(message.SerializeToString())
        if header is None and message.WhichOneof("part") == "header":
            header = message.header
    if header is None:
        raise AuditError("A result stream without a header cannot be recorded; not sent.")
    details: dict[str, object] = {"to_task": header.task_id.hex()}
    if header.error:
        details["refusal"] = header.error
    else:
        details.update(
            num_examples=header.num_examples,
            metrics=dict(sorted(header.metrics.items())),
            payload_sha256=payload.hexdigest(),
            payload_bytes=payload_bytes,
        )
    return Egress(
        "PushResult",
        address,
        tally.digest,
        job_id=header.job_id,
        round_number=header.round_number,
        stage=header.stage,
        details=details,
    )


class _SameAsRecorded:
    """Serialises messages for sending and holds the last back until they match the record."""

    def __init__(self, messages: Iterable[ResultMessage], recorded: WireDigest) -> None:
        self._messages = messages
        self._recorded = recorded
        self.changed: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        tally = WireTally()
        held: bytes | None = None
        for message in self._messages:
            raw = message.SerializeToString()
            tally.add(raw)
            if tally.wire_bytes > self._recorded.wire_bytes:
                self._refuse(tally.digest)
            if held is not None:
                yield held
            held = raw
        if tally.digest != self._recorded:
            self._refuse(tally.digest)
        if held is not None:
            yield held

    def _refuse(self, sent: WireDigest) -> None:
        self.changed = (
            f"The answer changed after it was recorded ({self._recorded} recorded, {sent} "
            "serialised); it was not sent."
        )
        raise AuditError(self.changed)

    def raise_if_changed(self) -> None:
        if self.changed is not None:
            raise AuditError(self.changed)
