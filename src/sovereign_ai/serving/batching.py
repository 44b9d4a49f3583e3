"""Adaptive micro-batching: concurrent requests to one model share one ONNX Runtime call.

A worker per model takes the first waiting request and, while other requests to the model are
in flight (being read or queued), waits for them up to ``max_wait_ms`` or until the batch holds
``max_batch`` rows; then it runs one session call on the stacked inputs and hands each request its
own rows. A lone request (nothing else in flight) never waits: the latency bound costs nothing
when there is no concurrency. Requests that arrive while a call runs queue up and form the next
batch by themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sovereign_ai.errors import ConfigError
from sovereign_ai.serving.model import Feeds, ServedModel

__all__ = ["BatchingConfig", "MicroBatcher"]


@dataclass(frozen=True)
class BatchingConfig:
    """How requests to one model are batched.

    Parameters
    ----------
    is_enabled
        ``False``: every request is its own session call.
    max_batch
        Most rows in one session call (a larger request still runs, alone).
    max_wait_ms
        The latency bound: the longest the first request of a batch waits for others.
    """

    is_enabled: bool = True
    max_batch: int = 64
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(
                f"The 'max_batch' parameter of BatchingConfig must be >= 1; got {self.max_batch}."
            )
        if not 0 <= self.max_wait_ms <= 1000:
            raise ConfigError(
                "The 'max_wait_ms' parameter of BatchingConfig must be in [0, 1000]; got "
                f"{self.max_wait_ms}."
            )


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    done: asyncio.Future[Feeds] = field(repr=False)


class MicroBatcher:
    """Batches one model's concurrent requests (see the module's docstring).

    Parameters
    ----------
    model
        The model; it must be batchable (:attr:`ServedModel.is_batchable`).
    config
        Batch size and latency bound.
    executor
        Where session calls run, off the event loop.
    on_batch
        Called with (requests, rows) after each session call, e.g. for metrics.
    """

    def __init__(
        self,
        model: ServedModel,
        *,
        config: BatchingConfig,
        executor: Executor,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self._executor = executor
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._in_flight = 0  # requests admitted and not yet taken into a batch
        self._worker: asyncio.Task[None] | None = None

    def admit(self) -> None:
        """Count a request from when it arrives (before it is parsed), so the worker waits."""
        self._in_flight += 1

    def release(self) -> None:
        """Uncount an admitted request that will not be submitted (it was refused)."""
        self._in_flight -= 1

    async def submit(self, feeds: Feeds) -> Feeds:
        """Queue an admitted request's checked inputs; return its own rows of every output."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        rows = next(iter(feeds.values())).shape[0]
        pending = _Pending(feeds, rows, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.done

    async def close(self) -> None:
        """Stop the worker (requests still queued are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            await self._fill(batch)
            self._in_flight -= len(batch)
            stacked = {
                name: np.concatenate([p.feeds[name] for p in batch], axis=0)  # (rows, ...)
                for name in batch[0].feeds
            }
            try:
                results = await loop.run_in_executor(self._executor, self.model.run, stacked)
            except Exception as exc:  # one failure answers every request of the batch
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            rows = sum(p.rows for p in batch)
            if self._on_batch is not None:
                self._on_batch(len(batch), rows)
            start = 0
            for pending in batch:
                own: dict[str, Any] = {
                    k: v[start : start + pending.rows] for k, v in results.items()
                }
                start += pending.rows
                if not pending.done.done():
                    pending.done.set_result(own)

    async def _fill(self, batch: list[_Pending]) -> None:
        """Add queued requests to ``batch``; wait for more only while others are in flight."""
        rows = batch[0].rows
        deadline = time.perf_counter() + self.config.max_wait_ms / 1e3
        while rows < self.config.max_batch:
            if not self._queue.empty():
                pending = self._queue.get_nowait()
            elif self._in_flight > len(batch) and (left := deadline - time.perf_counter()) > 0:
                try:
                    pending = await asyncio.wait_for(self._queue.get(), timeout=left)
                except TimeoutError:
                    return
            else:
                return
            if rows + pending.rows > self.config.max_batch:
                self._queue.put_nowait(pending)  # goes last; it leads a later batch
                return
            batch.append(pending)
            rows += pending.rows
