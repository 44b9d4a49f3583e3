"""Process transport: simulated nodes live in worker processes, one partition each.

Each worker rebuilds the simulation's nodes from the job spec (partitioning is deterministic per
seed, so every worker holds the same partitions), and tasks and results cross the process
boundary as safetensors bytes and plain scalars only. Used to measure threads against processes
on this machine; see docs/benchmarks.md.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sovereign_ai.core import Parameters, Result, Stage, StageOutcome, Task
from sovereign_ai.errors import ConfigError, SovereignError

if TYPE_CHECKING:
    from sovereign_ai.federation.job import JobSpec
    from sovereign_ai.federation.node import Node

__all__ = ["ProcessTransport"]

_WORKER_NODES: dict[str, Node] = {}

_Wire = tuple[str, int, str, str, bytes, dict[str, Any]]
_WireResult = tuple[str, int, str, str, int, bytes, dict[str, float]]


def _init_worker(spec_json: str) -> None:
    import torch

    from sovereign_ai.federation.job import JobSpec
    from sovereign_ai.federation.simulation import prepare_simulation

    torch.set_num_threads(1)
    setup = prepare_simulation(JobSpec.model_validate_json(spec_json))
    _WORKER_NODES.update({node.node_id: node for node in setup.nodes})


def _handle(wire: _Wire) -> _WireResult:
    job_id, round_number, stage, node_id, payload, config = wire
    task = Task(
        job_id=job_id,
        round_number=round_number,
        stage=Stage(stage),
        node_id=node_id,
        parameters=Parameters.from_bytes(payload),
        config=config,
    )
    result = _WORKER_NODES[node_id].handle(task)
    return (
        result.job_id,
        result.round_number,
        result.stage.value,
        result.node_id,
        result.num_examples,
        result.parameters.to_bytes(),
        dict(result.metrics),
    )


class ProcessTransport:
    """Runs simulated nodes' tasks in ``workers`` processes.

    Parameters
    ----------
    spec
        The job; each worker prepares the same simulated nodes from it.
    node_ids
        The simulated nodes' ids (as the caller's own preparation of ``spec`` named them).
    workers
        Worker processes.
    """

    def __init__(self, spec: JobSpec, *, node_ids: Sequence[str], workers: int = 2) -> None:
        if workers <= 0:
            raise ConfigError(
                f"The 'workers' parameter of ProcessTransport must be > 0; got {workers}."
            )
        self._node_ids = sorted(node_ids)
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec.model_dump_json(),),
        )

    def available_nodes(self) -> list[str]:
        """Every simulated node."""
        return list(self._node_ids)

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        """Simulated nodes are present from the start: return them at once."""
        del count, timeout_s
        return self.available_nodes()

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> StageOutcome:
        """Send tasks to the workers; collect what finishes within ``timeout_s``."""
        futures: dict[cf.Future[_WireResult], str] = {}
        for task in tasks:
            wire: _Wire = (
                task.job_id,
                task.round_number,
                task.stage.value,
                task.node_id,
                task.parameters.to_bytes(),
                dict(task.config),
            )
            futures[self._pool.submit(_handle, wire)] = task.node_id
        done, pending = cf.wait(futures, timeout=timeout_s)
        results: list[Result] = []
        failures: dict[str, str] = {}
        for future in done:
            error = future.exception()
            if error is not None:
                kind = "" if isinstance(error, SovereignError) else "unexpected "
                failures[futures[future]] = f"{kind}{type(error).__name__}: {error}"
                continue
            job_id, round_number, stage, node_id, count, payload, metrics = future.result()
            results.append(
                Result(
                    job_id=job_id,
                    round_number=round_number,
                    stage=Stage(stage),
                    node_id=node_id,
                    num_examples=count,
                    parameters=Parameters.from_bytes(payload),
                    metrics=metrics,
                )
            )
        for future in pending:
            future.cancel()
            failures[futures[future]] = f"no answer within {timeout_s:g} s"
        return StageOutcome(results=results, failures=failures)

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)
