"""The coordinator's side of the service: admit the caller, hand out tasks, take results in.

Every call is admitted afresh from the caller's client certificate (:mod:`._trust`). Refusals end
the call with a status code and a reason the node can print, are logged with the peer address,
and never disturb other calls:

==============================  ======================  =====================================
refusal                         status code             node-side error
==============================  ======================  =====================================
no client certificate           ``UNAUTHENTICATED``     :class:`AuthenticationError`
unknown, revoked, wrong role    ``PERMISSION_DENIED``   :class:`AuthenticationError`
malformed message or payload    ``INVALID_ARGUMENT``    :class:`SerializationError`
replayed, misrouted, stale      ``FAILED_PRECONDITION`` :class:`StaleMessageError`
too many calls from one node    ``RESOURCE_EXHAUSTED``  :class:`TransportError`
==============================  ======================  =====================================

Refusals are logged as text (``str(exc)``), never as exception objects: a log handler that keeps
records (a test's capture, a memory handler) would otherwise keep each refused call's frames,
and with them its HTTP/2 stream, alive.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sovereign_ai.core import Task
from sovereign_ai.errors import (
    AuthenticationError,
    SerializationError,
    StaleMessageError,
    TransportError,
)
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._book import Pending, TaskBook
from sovereign_ai.federation.transports.grpc._codec import (
    check_result_header,
    decode_result,
    read_payload,
    task_messages,
)
from sovereign_ai.federation.transports.grpc._frames import DataFrame
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._service import Undecodable, abort
from sovereign_ai.federation.transports.grpc._status import CoordinatorStatus
from sovereign_ai.federation.transports.grpc._trust import (
    Caller,
    PeerAuthenticator,
    UnauthenticatedError,
)
from sovereign_ai.federation.transports.grpc._wire_digest import (
    Framed,
    Received,
    ReceivedCallback,
    WireTally,
)

__all__ = ["CoordinatorServicer"]

logger = logging.getLogger(__name__)

_MAX_PUSHES_PER_NODE = 4


class CoordinatorServicer:
    """Implements ``PullTask``, ``PushResult`` and ``Status`` over a :class:`TaskBook`."""

    def __init__(
        self,
        *,
        book: TaskBook,
        authenticator: PeerAuthenticator,
        limits: WireLimits,
        poll_wait_s: float,
        status: Callable[[], CoordinatorStatus],
        on_received: ReceivedCallback | None = None,
        keep_received_bytes: bool = False,
    ) -> None:
        self._book = book
        self._on_received = on_received
        self._keep = keep_received_bytes
        self._auth = authenticator
        self._limits = limits
        self._poll_wait_s = poll_wait_s
        self._status = status
        self._pushes: collections.Counter[str] = collections.Counter()
        self._pushes_lock = threading.Lock()

    def _admit(self, context: Any, *, claimed: str = "", allow_coordinator: bool = False) -> Caller:
        try:
            return self._auth.identify(
                context, claimed=claimed, allow_coordinator=allow_coordinator
            )
        except UnauthenticatedError as exc:
            logger.warning("Refused a call from %s: %s", context.peer(), str(exc))
            abort(context, exc, code=grpc.StatusCode.UNAUTHENTICATED)
        except AuthenticationError as exc:
            logger.warning("Refused a call from %s: %s", context.peer(), str(exc))
            abort(context, exc)

    # PullTask -----------------------------------------------------------------------------------
    def _report(self, tally: WireTally, rpc: str, node_id: str, **binding: Any) -> None:
        if self._on_received is not None:
            self._on_received(
                Received(rpc, node_id, tally.digest, messages=tuple(tally.kept), **binding)
            )

    def pull_task(
        self, framed: Framed[pb.PullRequest | Undecodable], context: Any
    ) -> Iterator[pb.TaskChunk | DataFrame]:
        """Long-poll for the caller's next task; an empty stream means none arrived in time."""
        tally = WireTally(keep=self._keep)
        request = next(tally.unwrap([framed]))
        if not isinstance(request, pb.PullRequest):
            abort(context, SerializationError("The PullRequest is not a valid protocol buffer."))
        node_id = self._admit(context, claimed=request.node_id).name
        self._report(tally, "PullTask", node_id)
        self._book.touch(node_id)
        wait_s = self._poll_wait_s
        if request.max_wait_ms:
            wait_s = min(wait_s, request.max_wait_ms / 1000)
        try:
            pending = self._book.take(node_id, wait_s=wait_s, is_active=context.is_active)
        except TransportError as exc:
            logger.warning("%s", str(exc))
            abort(context, exc, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
        if pending is None:
            return
        if isinstance(pending, pb.JobEnded):
            yield pb.TaskChunk(ended=pending)
            return
        is_complete = False
        try:
            yield from task_messages(pending.header, pending.payload, limits=self._limits)
            is_complete = True
        finally:
            self._book.sent(pending, is_complete=is_complete)
        logger.debug("Sent task %s (%s) to %s", pending.task_id.hex(), pending.task.stage, node_id)

    # PushResult ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _push_slot(self, node_id: str, context: Any) -> Iterator[None]:
        with self._pushes_lock:
            if self._pushes[node_id] >= _MAX_PUSHES_PER_NODE:
                busy = TransportError(
                    f"Node {node_id!r} already has {_MAX_PUSHES_PER_NODE} results arriving."
                )
                abort(context, busy, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
            self._pushes[node_id] += 1
        try:
            yield
        finally:
            with self._pushes_lock:
                self._pushes[node_id] -= 1

    def push_result(
        self, framed: Iterator[Framed[pb.ResultChunk | DataFrame | Undecodable]], context: Any
    ) -> pb.PushReply:
        """Accept one result for an outstanding task issued to the caller, exactly once."""
        node_id = self._admit(context).name
        self._book.touch(node_id)
        tally = WireTally(keep=self._keep)
        requests = tally.unwrap(framed)
        binding: dict[str, Any] = {"refusal": "the result stream broke off"}
        try:
            reply = self._push(requests, context, node_id=node_id, binding=binding)
            binding["refusal"] = ""
            return reply
        finally:
            self._report(tally, "PushResult", node_id, **binding)

    def _push(
        self,
        requests: Iterator[pb.ResultChunk | DataFrame | Undecodable],
        context: Any,
        *,
        node_id: str,
        binding: dict[str, Any],
    ) -> pb.PushReply:
        with self._push_slot(node_id, context):
            try:
                first = next(requests, None)
                if not isinstance(first, pb.ResultChunk) or first.WhichOneof("part") != "header":
                    raise SerializationError("A result stream must start with its header.")
                header = first.header
                binding.update(
                    job_id=header.job_id[:200],
                    round_number=header.round_number,
                    stage=header.stage[:64],
                )
                check_result_header(header, limits=self._limits)
                pending = self._book.claim(header.task_id, node_id)
            except (SerializationError, StaleMessageError) as exc:
                logger.warning("Refused a result from %s: %s", node_id, str(exc))
                binding["refusal"] = str(exc)
                abort(context, exc)
            except grpc.RpcError:
                abort(context, TransportError("The result stream broke off."), code=_CANCELLED)
            self._receive(pending, header, requests, context, node_id=node_id, binding=binding)
        return pb.PushReply(task_id=header.task_id)

    def _receive(
        self,
        pending: Pending,
        header: pb.ResultHeader,
        requests: Iterator[pb.ResultChunk | DataFrame | Undecodable],
        context: Any,
        *,
        node_id: str,
        binding: dict[str, Any],
    ) -> None:
        refusal = "the result stream broke off"
        try:
            _check_binding(header, pending.task)
            if header.error:
                if next(requests, None) is not None:
                    raise SerializationError("A refusal must not be followed by data.")
                self._book.settle(pending, result=None, failure=header.error)
            else:
                payload = read_payload(
                    requests, declared_size=header.payload_size, limits=self._limits
                )
                result = decode_result(header, payload)
                result.check_answers(pending.task)
                self._book.settle(pending, result=result, failure=None)
            refusal = ""
        except (SerializationError, StaleMessageError) as exc:
            refusal = str(exc)
            logger.warning("Refused a result from %s: %s", node_id, str(exc))
            abort(context, exc)
        except grpc.RpcError:
            abort(context, TransportError(refusal), code=_CANCELLED)
        finally:
            binding["refusal"] = refusal
            if refusal:
                self._book.release(pending, refusal=refusal)
        logger.debug("Accepted the result of task %s from %s", pending.task_id.hex(), node_id)

    # Status -------------------------------------------------------------------------------------
    def status(self, request: pb.StatusRequest | Undecodable, context: Any) -> pb.StatusReply:
        """The coordinator's status, for admitted nodes and the coordinator's own certificate."""
        self._admit(context, allow_coordinator=True)
        if not isinstance(request, pb.StatusRequest):
            abort(context, SerializationError("The StatusRequest is not a valid protocol buffer."))
        return self._status().to_message()


_CANCELLED = grpc.StatusCode.CANCELLED


def _check_binding(header: pb.ResultHeader, task: Task) -> None:
    """Refuse before reading the payload a result bound to another job, round, stage or node."""
    expected = (task.job_id, task.round_number, task.stage.value, task.node_id)
    got = (header.job_id, header.round_number, header.stage, header.node_id)
    if got != expected:
        raise StaleMessageError(
            f"Result bound to (job, round, stage, node)={got!r} does not answer its task "
            f"{expected!r}; a replayed or misrouted message is refused."
        )
