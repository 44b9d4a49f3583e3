"""The node's end of the deployment transport: dial out, pull a task, answer it, push the result.

The node never listens on a port. It long-polls the coordinator, checks every task it receives
(addressed to this node, never seen before, payload of the declared size and digest), hands it to
its :class:`~sovereign_ai.federation.Node`, and pushes the answer back. When the coordinator is
unreachable or restarts, the client reconnects on its own with bounded, jittered exponential
backoff; a result it could not deliver is retried once the coordinator is back. When the
coordinator announces that its job ended, :meth:`GrpcNodeClient.run` returns the announcement
(:class:`JobEnd`), so the node can report and exit instead of polling a finished job forever.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from sovereign_ai.core import Result, Task
from sovereign_ai.errors import (
    AuthenticationError,
    ConfigError,
    PolicyRefusalError,
    SerializationError,
    SovereignError,
    StaleMessageError,
    TransportError,
)
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._codec import (
    check_task_header,
    decode_task,
    read_payload,
    refusal_message,
    result_messages,
)
from sovereign_ai.federation.transports.grpc._egress_guard import EgressGuard, EgressRecorder
from sovereign_ai.federation.transports.grpc._frames import DataFrame
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._service import (
    NODE_ID_METADATA,
    Undecodable,
    translate_rpc_error,
)
from sovereign_ai.federation.transports.inmemory import TaskHandler
from sovereign_ai.pki import NodeKit

__all__ = ["AnswerReport", "GrpcNodeClient", "JobEnd"]

logger = logging.getLogger(__name__)

_SEEN_TASK_IDS = 65_536
_MAX_WAIT_MS = 2**32 - 1  # PullRequest.max_wait_ms is a uint32


@dataclass
class _Backoff:
    """Exponential backoff with "equal jitter": a delay in [d/2, d], d doubling up to a cap."""

    initial_s: float
    max_s: float
    rng: random.Random
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class JobEnd:
    """The coordinator's announcement that its job is over.

    Parameters
    ----------
    job_id
        The job that ended.
    is_finished
        ``True`` if every round completed, ``False`` if the job failed.
    reason
        Why it failed (empty when finished).
    rounds_completed, total_rounds
        How far the job got.
    metrics
        The last completed round's metrics.
    """

    job_id: str
    is_finished: bool
    reason: str
    rounds_completed: int
    total_rounds: int
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: pb.JobEnded) -> JobEnd:
        """Parse the wire form (text bounded, non-finite metrics dropped)."""
        return cls(
            job_id=message.job_id[:200],
            is_finished=message.state == "finished",
            reason=message.reason[:2000],
            rounds_completed=int(message.rounds_completed),
            total_rounds=int(message.total_rounds),
            metrics={
                name[:64]: float(value)
                for name, value in sorted(message.metrics.items())[:64]
                if math.isfinite(value)
            },
        )


@dataclass(frozen=True)
class AnswerReport:
    """What this node did with one task and what it sent back (one line for the operator).

    Parameters
    ----------
    task
        The task answered.
    result
        The answer sent, or ``None`` if the node declined.
    refusal
        Why the node declined, if it did.
    payload_bytes
        Size of the tensors sent (0 for a refusal).
    """

    task: Task
    result: Result | None
    refusal: str | None
    payload_bytes: int


AnswerCallback = Callable[[AnswerReport], None]
CoordinatorCallback = Callable[[str, bytes], None]


@dataclass(frozen=True)
class _Answer:
    """What to push for one task: a result, or the reason the node declined."""

    header: pb.TaskHeader
    result: Result | None
    refusal: str | None
    task: Task | None = None


class GrpcNodeClient:
    """Connects one node to its coordinator and answers tasks until stopped.

    Parameters
    ----------
    kit
        The node's startup kit (certificate, key, CA, coordinator address).
    node
        Answers tasks; its ``node_id`` must be the kit's node name.
    address
        ``host:port`` to dial instead of the kit's coordinator address.
    allow_insecure
        Plaintext, naming the node in metadata. **For tests only.**
    limits
        Payload, chunk and header limits.
    poll_wait_s
        Longest one long-poll waits for a task.
    connect_timeout_s
        Deadline of the pre-flight TLS handshake that checks the coordinator's certificate.
    transfer_timeout_s
        Deadline for sending or receiving one payload.
    backoff_initial_s, backoff_max_s
        Reconnection delays double from the first up to the second (each jittered).
    max_auth_failures
        Consecutive refusals (of the coordinator's certificate, or of this node's) after which
        :meth:`run` gives up with :class:`~sovereign_ai.errors.AuthenticationError`.
    seed
        Seeds the backoff jitter (tests).
    on_answer
        Called after each answer the coordinator accepted, with what was sent.
    on_coordinator
        Called with the coordinator's name and certificate (DER) each time the pre-flight
        handshake has verified it, before any task comes over the new channel (a node's policy
        checks whom it works for: :class:`~sovereign_ai.federation.governed_node.PolicyGuard`).
        Never called without TLS.
    record_egress
        Records each call before it is sent (the node's audit log: see
        :func:`~sovereign_ai.federation.audited_node.egress_recorder`); if it raises, the call
        is not sent and :meth:`run` stops with that error. Every byte the client sends goes
        through its :class:`~._egress_guard.EgressGuard`.

    Raises
    ------
    ConfigError
        If ``node.node_id`` is not the kit's node name, or a setting is out of range.
    """

    def __init__(
        self,
        *,
        kit: NodeKit,
        node: TaskHandler,
        address: str | None = None,
        allow_insecure: bool = False,
        limits: WireLimits | None = None,
        poll_wait_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        transfer_timeout_s: float = 600.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_auth_failures: int = 3,
        seed: int | None = None,
        on_answer: AnswerCallback | None = None,
        on_coordinator: CoordinatorCallback | None = None,
        record_egress: EgressRecorder | None = None,
    ) -> None:
        if node.node_id != kit.name:
            raise ConfigError(
                f"The node's id {node.node_id!r} must be the kit's node name {kit.name!r}."
            )
        for name, value in (
            ("poll_wait_s", poll_wait_s),
            ("connect_timeout_s", connect_timeout_s),
            ("transfer_timeout_s", transfer_timeout_s),
            ("backoff_initial_s", backoff_initial_s),
            ("max_auth_failures", max_auth_failures),
        ):
            if not value > 0:
                raise ConfigError(
                    f"The {name!r} parameter of GrpcNodeClient must be > 0; got {value!r}."
                )
        if backoff_max_s < backoff_initial_s:
            raise ConfigError(
                f"The 'backoff_max_s' parameter of GrpcNodeClient must be >= backoff_initial_s "
                f"({backoff_initial_s}); got {backoff_max_s!r}."
            )
        self._kit, self._node = kit, node
        self._address = address or kit.coordinator_address
        self._allow_insecure = allow_insecure
        self._limits = limits or WireLimits()
        self._poll_wait_s = poll_wait_s
        self._guard = EgressGuard(
            kit,
            address=self._address,
            limits=self._limits,
            record=record_egress,
            allow_insecure=allow_insecure,
            connect_timeout_s=connect_timeout_s,
        )
        self._transfer_timeout_s = transfer_timeout_s
        self._backoff = _Backoff(backoff_initial_s, backoff_max_s, random.Random(seed))
        self._max_auth_failures = max_auth_failures
        self._metadata = ((NODE_ID_METADATA, kit.name),) if allow_insecure else ()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._pull_call: Any = None
        self._seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._unsent: _Answer | None = None
        self._on_answer = on_answer
        self._on_coordinator = on_coordinator
        self._ended: JobEnd | None = None
        self.tasks_handled = 0
        """Tasks this client answered (results and refusals the coordinator accepted)."""
        self.coordinator_name: str | None = None
        """The coordinator's name from its verified certificate, once connected."""
        if allow_insecure:
            logger.warning(
                "INSECURE: node %r dials %s in PLAINTEXT without checking who answers. Use "
                "allow_insecure=True only in tests.",
                kit.name,
                self._address,
            )

    @property
    def node_id(self) -> str:
        """The node this client runs."""
        return self._kit.name

    # Running ------------------------------------------------------------------------------------
    def serve_forever(self) -> JobEnd | None:
        """Run until the job ends or :meth:`stop` is called (from a thread or signal handler).

        Returns
        -------
        JobEnd or None
            The coordinator's announcement that its job ended; ``None`` if stopped first.
        """
        return self.run(self._stop)

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; a long-poll in flight is cancelled within 0.2 s.

        Safe to call from a signal handler: it only sets an event, and the client's watcher
        thread cancels the call.
        """
        self._stop.set()

    def run(self, stop_event: threading.Event) -> JobEnd | None:
        """Answer tasks until the coordinator announces the job's end or ``stop_event`` is set.

        Returns
        -------
        JobEnd or None
            The announcement, or ``None`` if ``stop_event`` was set first.

        Raises
        ------
        AuthenticationError
            After ``max_auth_failures`` consecutive refusals: the server is not this federation's
            coordinator, or the coordinator refuses this node (revoked, unknown, expired).
        """
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(stop_event, done), name="sovereign-node-stop", daemon=True
        )
        watcher.start()
        auth_failures = 0
        self._ended = None
        try:
            while not stop_event.is_set() and self._ended is None:
                try:
                    self._connect()
                    self._flush_unsent()
                    self._serve_one(stop_event)
                except AuthenticationError as exc:
                    self._disconnect()
                    auth_failures += 1
                    if auth_failures >= self._max_auth_failures:
                        raise
                    logger.warning(
                        "Refused (%d/%d): %s", auth_failures, self._max_auth_failures, str(exc)
                    )
                    stop_event.wait(self._backoff.next_delay())
                    continue
                except TransportError as exc:
                    self._disconnect()
                    if stop_event.is_set():
                        break
                    delay = self._backoff.next_delay()
                    logger.warning("%s; reconnecting in %.1f s", str(exc), delay)
                    stop_event.wait(delay)
                    continue
                except (StaleMessageError, SerializationError) as exc:
                    logger.warning("Skipped a message: %s", str(exc))
                auth_failures = 0
                self._backoff.reset()
        finally:
            done.set()
            self._disconnect()
        return self._ended

    def _watch(self, stop_event: threading.Event, done: threading.Event) -> None:
        while not done.is_set():
            if stop_event.wait(0.2):
                self._cancel_pull()
                return

    def _cancel_pull(self) -> None:
        with self._lock:
            call = self._pull_call
        if call is not None:
            call.cancel()

    # Connection ---------------------------------------------------------------------------------
    def _connect(self) -> None:
        if self._guard.is_connected:
            return
        verified = self._guard.connect()
        if verified is not None:
            self.coordinator_name = verified.name
            if self._on_coordinator is not None:
                self._on_coordinator(verified.name, verified.certificate)
        logger.info("Node %r connected to coordinator at %s", self.node_id, self._address)

    def _disconnect(self) -> None:
        self._guard.close()

    # One task -----------------------------------------------------------------------------------
    def _serve_one(self, stop_event: threading.Event) -> None:
        wait_ms = min(int(self._poll_wait_s * 1000), _MAX_WAIT_MS)
        request = pb.PullRequest(node_id=self.node_id, max_wait_ms=wait_ms)
        call = self._guard.pull(
            request,
            timeout=self._poll_wait_s + self._transfer_timeout_s,
            metadata=self._metadata,
        )
        with self._lock:
            self._pull_call = call
        try:
            if stop_event.is_set():
                call.cancel()
            answer = self._receive(iter(call))
        except grpc.RpcError as exc:
            raise translate_rpc_error(exc, action="PullTask", address=self._address) from exc
        finally:
            with self._lock:
                self._pull_call = None
            call.cancel()  # releases the stream if it was refused half-way
        if answer is not None:
            self._unsent = answer
            self._flush_unsent()

    def _receive(
        self, messages: Iterator[pb.TaskChunk | DataFrame | Undecodable]
    ) -> _Answer | None:
        first = next(messages, None)
        if first is None:
            return None  # no task within the long-poll
        if isinstance(first, pb.TaskChunk) and first.WhichOneof("part") == "ended":
            self._ended = JobEnd.from_message(first.ended)
            logger.info("The coordinator announced the end of job %r", self._ended.job_id)
            return None
        if not isinstance(first, pb.TaskChunk) or first.WhichOneof("part") != "header":
            raise SerializationError("The coordinator's task stream does not start with a header.")
        header = first.header
        check_task_header(header, limits=self._limits)
        if header.node_id != self.node_id:
            logger.warning(
                "Refused task %s addressed to node %r, not to this node %r.",
                header.task_id.hex(),
                header.node_id[:80],
                self.node_id,
            )
            return None
        if header.task_id in self._seen:
            logger.warning("Refused task %s: this node has seen it before.", header.task_id.hex())
            return None
        try:
            payload = read_payload(messages, declared_size=header.payload_size, limits=self._limits)
            task = decode_task(header, payload)
        except SerializationError as exc:
            self._remember(header.task_id)
            logger.warning("Refused task %s: %s", header.task_id.hex(), str(exc))
            return _Answer(header, None, f"the task was malformed: {exc}")
        self._remember(header.task_id)
        return self._handle(header, task)

    def _remember(self, task_id: bytes) -> None:
        self._seen[task_id] = None
        while len(self._seen) > _SEEN_TASK_IDS:
            self._seen.popitem(last=False)

    def _handle(self, header: pb.TaskHeader, task: Task) -> _Answer:
        try:
            result = self._node.handle(task)
            result.check_answers(task)
        except PolicyRefusalError as exc:  # only the code leaves; the policy logged the reason
            return _Answer(header, None, str(exc), task)
        except SovereignError as exc:
            logger.warning(
                "Declined %s task of round %d: %s", task.stage, task.round_number, str(exc)
            )
            return _Answer(header, None, f"{type(exc).__name__}: {exc}", task)
        except Exception as exc:  # the node keeps serving; the coordinator learns why at once
            logger.exception("The node failed on a %s task", task.stage)
            return _Answer(header, None, f"unexpected {type(exc).__name__}: {exc}", task)
        return _Answer(header, result, None, task)

    def _flush_unsent(self) -> None:
        """Push the pending answer; kept for a retry if the coordinator cannot be reached."""
        answer = self._unsent
        if answer is None:
            return
        messages: Callable[[], Iterator[pb.ResultChunk | DataFrame]] | None = None
        reason = answer.refusal or "declined"
        result = answer.result
        if result is not None:
            try:
                result_messages(result, task_id=answer.header.task_id, limits=self._limits)
                messages = functools.partial(
                    result_messages, result, task_id=answer.header.task_id, limits=self._limits
                )
            except SerializationError as exc:
                reason = f"the result cannot be sent: {exc}"
        sent = answer.result if messages is not None else None
        if messages is None:
            refusal = refusal_message(answer.header, reason=reason, limits=self._limits)
            messages = functools.partial(iter, [refusal])
        try:
            self._guard.push(messages, timeout=self._transfer_timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            error = translate_rpc_error(exc, action="PushResult", address=self._address)
            if isinstance(error, TransportError):
                raise error from exc  # unreachable or refused: keep the answer for a retry
            self._unsent = None
            raise error from exc
        self._unsent = None
        self.tasks_handled += 1
        if self._on_answer is not None and answer.task is not None:
            self._on_answer(
                AnswerReport(
                    task=answer.task,
                    result=sent,
                    refusal=None if sent is not None else reason,
                    payload_bytes=0
                    if sent is None
                    else sum(a.nbytes for a in sent.parameters.values()),
                )
            )
