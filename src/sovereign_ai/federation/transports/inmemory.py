"""In-memory transport: nodes as objects in this process, run on a thread pool.

For simulation and tests. Torch releases the GIL inside its kernels, so two worker threads keep
both cores busy once a model is large (about a million weights); for small models a task is
mostly Python and one worker is faster (measured in bench/backends.py, docs/benchmarks.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from sovereign_ai.core import Result, StageOutcome, Task
from sovereign_ai.errors import ConfigError, PolicyRefusalError, SovereignError

__all__ = ["InMemoryTransport", "TaskHandler"]


class TaskHandler(Protocol):
    """Anything that answers tasks for one node id (a :class:`~sovereign_ai.federation.Node`)."""

    node_id: str

    def handle(self, task: Task) -> Result:
        """Answer one task."""
        ...


class InMemoryTransport:
    """Delivers tasks by calling nodes directly on a pool of ``max_workers`` threads.

    Parameters
    ----------
    nodes
        The nodes reachable through this transport.
    max_workers
        Threads that run node tasks at once.
    """

    def __init__(self, nodes: Iterable[TaskHandler], *, max_workers: int = 1) -> None:
        if max_workers <= 0:
            raise ConfigError(
                f"The 'max_workers' parameter of InMemoryTransport must be > 0; got {max_workers}."
            )
        self._nodes: dict[str, TaskHandler] = {}
        for node in nodes:
            if node.node_id in self._nodes:
                raise ConfigError(f"Node id {node.node_id!r} appears twice.")
            self._nodes[node.node_id] = node
        self._offline: set[str] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a node went offline or came back
        self._pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="node")

    def available_nodes(self) -> list[str]:
        """Nodes not marked offline, sorted."""
        with self._lock:
            return sorted(set(self._nodes) - self._offline)

    def set_offline(self, node_id: str, *, is_offline: bool = True) -> None:
        """Simulate a node dropping out (or coming back)."""
        with self._changed:
            if is_offline:
                self._offline.add(node_id)
            else:
                self._offline.discard(node_id)
            self._changed.notify_all()

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        """Wait until ``count`` nodes are online (see :meth:`set_offline`) or ``timeout_s`` passed.

        Returns at once when they are, which is always so unless a test took nodes offline.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: len(set(self._nodes) - self._offline) >= count, timeout=timeout_s
            )
            return sorted(set(self._nodes) - self._offline)

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> StageOutcome:
        """Run every task on the pool; collect what finishes within ``timeout_s``."""
        failures: dict[str, str] = {}
        futures: dict[cf.Future[Result], str] = {}
        for task in tasks:
            node = self._nodes.get(task.node_id)
            if node is None or task.node_id in self._offline:
                failures[task.node_id] = "node is not connected"
                continue
            futures[self._pool.submit(node.handle, task)] = task.node_id
        done, pending = cf.wait(futures, timeout=timeout_s)
        results: list[Result] = []
        for future in done:
            node_id = futures[future]
            error = future.exception()
            if error is None:
                results.append(future.result())
            elif isinstance(error, PolicyRefusalError):  # its text is only the reason code
                failures[node_id] = str(error)
            elif isinstance(error, SovereignError):
                failures[node_id] = f"{type(error).__name__}: {error}"
            else:
                failures[node_id] = f"unexpected {type(error).__name__}: {error}"
        for future in pending:
            future.cancel()
            failures[futures[future]] = f"no answer within {timeout_s:g} s"
        return StageOutcome(results=results, failures=failures)

    def close(self) -> None:
        """Stop the worker threads (running tasks finish first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> InMemoryTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
