"""The coordinator's book of outstanding tasks: queues per node, delivery, answers and liveness.

Every task gets a random 128-bit id when its stage opens. A result is accepted only for an
outstanding id, from the node the task was issued to, and only once; the id is then retired, so a
replayed result finds nothing to answer. Ids of ended stages are remembered (bounded) to explain
a late or replayed result instead of calling it unknown.

Notes
-----
Delivery is at most once: a task whose stream broke before its last chunk went out is queued
again (the node cannot have acted on a partial payload, whose digest it checks), but a delivered
task is never re-sent. A node that crashes while working simply misses the stage's deadline, which
the round loop already treats as a drop-out.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from sovereign_ai.core import Parameters, Result, StageOutcome, Task
from sovereign_ai.errors import StaleMessageError, TransportError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._codec import Payload, new_task_id, task_header

__all__ = ["NodeActivity", "Pending", "StageRun", "TaskBook"]

_RETIRED_IDS = 65_536  # remembered ids of answered or expired tasks, for clear refusals


class _State(Enum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    RECEIVING = "receiving"


@dataclass(eq=False)
class Pending:
    """One issued task awaiting its answer."""

    task_id: bytes
    task: Task
    header: pb.TaskHeader
    payload: Payload
    run: StageRun
    state: _State = _State.QUEUED
    refusal: str | None = None  # why the last result pushed for it was refused


@dataclass(eq=False)
class StageRun:
    """The tasks of one ``run_stage`` call and what came back."""

    timeout_s: float
    pending: list[Pending] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    open_count: int = 0


@dataclass(frozen=True)
class NodeActivity:
    """When a node was last heard from, and whether it holds an unanswered task."""

    node_id: str
    seconds_since_seen: float
    is_busy: bool


class TaskBook:
    """Thread-safe bookkeeping shared by the servicer threads and ``run_stage``.

    Parameters
    ----------
    liveness_window_s
        A node counts as connected if it called within this window, is waiting in a long-poll
        right now, or holds a task it has not answered.
    max_pulls_per_node
        Concurrent long-polls one node may hold (bounds the server threads one node can tie up).
    """

    def __init__(self, *, liveness_window_s: float, max_pulls_per_node: int = 4) -> None:
        self._window_s = liveness_window_s
        self._max_pulls = max_pulls_per_node
        self._cond = threading.Condition()
        self._queues: dict[str, collections.deque[Pending]] = collections.defaultdict(
            collections.deque
        )
        self._outstanding: dict[bytes, Pending] = {}
        self._retired: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self._last_seen: dict[str, float] = {}
        self._pulls: collections.Counter[str] = collections.Counter()
        self._is_closed = False
        self._ended: pb.JobEnded | None = None
        self._told_ended: set[str] = set()

    # Liveness -----------------------------------------------------------------------------------
    def touch(self, node_id: str) -> None:
        """Record that ``node_id`` called just now."""
        with self._cond:
            self._last_seen[node_id] = time.monotonic()

    def _busy_locked(self) -> set[str]:
        return {p.task.node_id for p in self._outstanding.values() if p.state is not _State.QUEUED}

    def _is_live_locked(self, node_id: str, now: float, busy: set[str]) -> bool:
        seen = self._last_seen.get(node_id)
        is_recent = seen is not None and now - seen <= self._window_s
        return is_recent or self._pulls[node_id] > 0 or node_id in busy

    def live_nodes(self) -> list[str]:
        """Connected nodes, sorted."""
        with self._cond:
            now, busy = time.monotonic(), self._busy_locked()
            return sorted(n for n in self._last_seen if self._is_live_locked(n, now, busy))

    def activity(self) -> list[NodeActivity]:
        """Every connected node's activity, sorted by node id."""
        with self._cond:
            now, busy = time.monotonic(), self._busy_locked()
            return [
                NodeActivity(node, now - self._last_seen[node], node in busy)
                for node in sorted(self._last_seen)
                if self._is_live_locked(node, now, busy)
            ]

    def wait_until(self, predicate: Callable[[], bool], *, timeout_s: float) -> bool:
        """Block until ``predicate()`` holds (re-checked on every change), or the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._is_closed:
                    return predicate()
                self._cond.wait(min(remaining, 0.5))
            return True

    # The coordinator's side ---------------------------------------------------------------------
    def open_stage(
        self, tasks: Sequence[Task], *, encode: Callable[[Parameters], Payload], timeout_s: float
    ) -> StageRun:
        """Queue each task for its node; nodes not connected fail at once.

        Raises
        ------
        SerializationError
            If a task's settings cannot be sent (then nothing is queued).
        """
        run = StageRun(timeout_s=timeout_s)
        payloads: dict[int, Payload] = {}  # one encoding per distinct Parameters object
        issued: list[Pending] = []
        for task in tasks:  # encode outside the lock: a large model takes a while to serialise
            payload = payloads.get(id(task.parameters))
            if payload is None:
                payload = payloads[id(task.parameters)] = encode(task.parameters)
            task_id = new_task_id()
            header = task_header(task, task_id=task_id, payload=payload)
            issued.append(Pending(task_id, task, header, payload, run))
        with self._cond:
            now, busy = time.monotonic(), self._busy_locked()
            for pending in issued:
                node_id = pending.task.node_id
                if self._is_closed or not self._is_live_locked(node_id, now, busy):
                    run.failures[node_id] = "node is not connected"
                    continue
                run.pending.append(pending)
                run.open_count += 1
                self._outstanding[pending.task_id] = pending
                self._queues[node_id].append(pending)
            self._cond.notify_all()
        return run

    def wait(
        self, run: StageRun, *, is_admitted: Callable[[str], bool] = lambda node_id: True
    ) -> StageOutcome:
        """Wait for every answer of ``run`` or its deadline, then retire what is left.

        A task whose node is no longer admitted (revoked meanwhile) fails at once instead of at
        the deadline; admission is re-checked every half second.
        """
        deadline = time.monotonic() + run.timeout_s
        with self._cond:
            while run.open_count and not self._is_closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._retire_unadmitted_locked(run, is_admitted)
                if run.open_count:
                    self._cond.wait(min(remaining, 0.5))
            for pending in run.pending:
                if pending.task_id in self._outstanding:
                    run.failures[pending.task.node_id] = self._why_unanswered(pending)
                    self._retire_locked(pending, "its stage ended before it was answered")
            self._cond.notify_all()
        return StageOutcome(results=list(run.results), failures=dict(run.failures))

    def _retire_unadmitted_locked(self, run: StageRun, is_admitted: Callable[[str], bool]) -> None:
        for pending in run.pending:
            node_id = pending.task.node_id
            if pending.task_id in self._outstanding and not is_admitted(node_id):
                run.failures[node_id] = (
                    "the node's certificate was revoked (or it left the roster) during the stage"
                )
                self._retire_locked(pending, "its node is no longer admitted")

    def _why_unanswered(self, pending: Pending) -> str:
        timeout = f"{pending.run.timeout_s:g} s"
        if self._is_closed:
            reason = "the coordinator transport was closed"
        elif pending.state is _State.QUEUED:
            reason = f"node did not fetch its task within {timeout}"
        elif pending.state is _State.RECEIVING:
            reason = f"its result was still arriving after {timeout}"
        else:
            reason = f"no answer within {timeout}"
        if pending.refusal is not None:
            reason += f"; its last result was refused: {pending.refusal}"
        return reason

    def _retire_locked(self, pending: Pending, reason: str) -> None:
        self._outstanding.pop(pending.task_id, None)
        queue = self._queues.get(pending.task.node_id)
        if queue is not None and pending in queue:
            queue.remove(pending)
        pending.run.open_count -= 1
        self._retired[pending.task_id] = reason
        while len(self._retired) > _RETIRED_IDS:
            self._retired.popitem(last=False)

    # The nodes' side ----------------------------------------------------------------------------
    def take(
        self, node_id: str, *, wait_s: float, is_active: Callable[[], bool]
    ) -> Pending | pb.JobEnded | None:
        """Wait up to ``wait_s`` for ``node_id``'s next task; ``None`` if none came.

        Once the job has ended (:meth:`end_job`), returns the announcement instead.

        Raises
        ------
        TransportError
            If the node already holds ``max_pulls_per_node`` long-polls.
        """
        deadline = time.monotonic() + wait_s
        with self._cond:
            if self._pulls[node_id] >= self._max_pulls:
                raise TransportError(
                    f"Node {node_id!r} already holds {self._max_pulls} long-polls; refusing more."
                )
            self._pulls[node_id] += 1
            try:
                while True:
                    if self._ended is not None:
                        self._told_ended.add(node_id)
                        self._cond.notify_all()
                        return self._ended
                    queue = self._queues.get(node_id)
                    if queue:
                        pending = queue.popleft()
                        pending.state = _State.SENDING
                        return pending
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._is_closed or not is_active():
                        return None
                    self._cond.wait(min(remaining, 0.5))  # wake to notice a cancelled call
            finally:
                self._pulls[node_id] -= 1
                self._last_seen[node_id] = time.monotonic()

    def sent(self, pending: Pending, *, is_complete: bool) -> None:
        """Record whether the whole task reached the wire; a broken send is queued again."""
        with self._cond:
            if pending.state is not _State.SENDING or pending.task_id not in self._outstanding:
                return
            if is_complete:
                pending.state = _State.DELIVERED
            else:
                pending.state = _State.QUEUED
                self._queues[pending.task.node_id].appendleft(pending)
            self._cond.notify_all()

    def claim(self, task_id: bytes, node_id: str) -> Pending:
        """Reserve the outstanding task ``task_id`` for a result arriving from ``node_id``.

        Raises
        ------
        StaleMessageError
            If the id is unknown, retired (answered, or its stage ended), issued to another node,
            or another result for it is arriving right now.
        """
        with self._cond:
            pending = self._outstanding.get(task_id)
            if pending is None:
                retired = self._retired.get(task_id)
                if retired is not None:
                    raise StaleMessageError(
                        f"Task {task_id.hex()} is no longer open ({retired}); a late or replayed "
                        "result is refused."
                    )
                raise StaleMessageError(
                    f"Task {task_id.hex()[:64]} was never issued by this coordinator process; "
                    "result refused."
                )
            if pending.task.node_id != node_id:
                raise StaleMessageError(
                    f"Task {task_id.hex()} was issued to another node, not {node_id!r}; a "
                    "misrouted result is refused."
                )
            if pending.state is _State.RECEIVING:
                raise StaleMessageError(
                    f"Another result for task {task_id.hex()} is arriving; this one is refused."
                )
            if pending.state is _State.QUEUED:
                self._queues[node_id].remove(pending)
            pending.state = _State.RECEIVING
            self._touch_locked(node_id)
            return pending

    def _touch_locked(self, node_id: str) -> None:
        self._last_seen[node_id] = time.monotonic()

    def release(self, pending: Pending, *, refusal: str) -> None:
        """Refuse a claimed result; the task stays open for a correct one until its deadline."""
        with self._cond:
            if pending.task_id in self._outstanding:
                pending.state = _State.DELIVERED
                pending.refusal = refusal

    def settle(self, pending: Pending, *, result: Result | None, failure: str | None) -> None:
        """Accept ``result`` (or the node's stated ``failure``) for a claimed task, exactly once.

        Raises
        ------
        StaleMessageError
            If the task's stage ended while the result was arriving.
        """
        with self._cond:
            if pending.task_id not in self._outstanding:
                raise StaleMessageError(
                    f"Task {pending.task_id.hex()} closed while its result was arriving (stage "
                    "deadline); result refused."
                )
            if result is not None:
                pending.run.results.append(result)
            else:
                pending.run.failures[pending.task.node_id] = f"node declined: {failure}"
            self._retire_locked(pending, "it was already answered")
            self._touch_locked(pending.task.node_id)
            self._cond.notify_all()

    def end_job(self, announcement: pb.JobEnded) -> None:
        """From now on, answer every long-poll with ``announcement``: the job is over."""
        with self._cond:
            self._ended = announcement
            self._told_ended.clear()
            self._cond.notify_all()

    def told_ended(self) -> set[str]:
        """Nodes that have heard the job ended."""
        with self._cond:
            return set(self._told_ended)

    def close(self) -> None:
        """Wake every waiter; open stages end with every task failed."""
        with self._cond:
            self._is_closed = True
            self._cond.notify_all()
