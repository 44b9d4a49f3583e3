"""Process transport: simulated nodes live in worker processes, one partition each.

The transport knows nothing of jobs or datasets. Its caller names a *node factory*, a module-level
function taking one string (for the simulation: the job spec as JSON) and returning the nodes;
each spawned worker imports the factory by its dotted name and calls it once, so every worker
holds the same nodes as long as the factory is deterministic. Only plain data crosses the process
boundary: the factory's name and its string argument once per worker, then tasks and results as
safetensors bytes and plain scalars. Used to measure threads against processes on this machine;
see docs/benchmarks.md.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sovereign_ai.core import Parameters, Result, Stage, StageOutcome, Task
from sovereign_ai.errors import ConfigError, PolicyRefusalError, SovereignError
from sovereign_ai.federation.transports.inmemory import TaskHandler

__all__ = ["NodeFactory", "ProcessTransport"]

NodeFactory = Callable[[str], Iterable[TaskHandler]]
"""Builds a worker's nodes from one string; must be a module-level function (imported by name)."""

_WORKER_NODES: dict[str, TaskHandler] = {}

_Wire = tuple[str, int, str, str, bytes, dict[str, Any]]
_WireResult = tuple[str, int, str, str, int, bytes, dict[str, float]]


def _factory_name(factory: NodeFactory) -> str:
    """``module:qualname`` of a module-level function, checked to import back to ``factory``."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    name = f"{module}:{qualname}"
    if module is None or qualname is None or _resolve(name) is not factory:
        raise ConfigError(
            "The 'node_factory' parameter of ProcessTransport must be a function defined at "
            f"module level, so each worker process can import it by name; got {factory!r} "
            "instead (a lambda, nested function or bound method cannot be imported)."
        )
    return name


def _resolve(name: str) -> object:
    module, _, qualname = name.partition(":")
    try:
        found: object = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return found


def _init_worker(factory_name: str, factory_input: str) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: threads inside a worker only contend
    factory = _resolve(factory_name)
    if not callable(factory):
        raise ConfigError(f"The node factory {factory_name!r} cannot be imported in a worker.")
    _WORKER_NODES.update({node.node_id: node for node in factory(factory_input)})


def _handle(wire: _Wire) -> _WireResult:
    job_id, round_number, stage, node_id, payload, config = wire
    node = _WORKER_NODES.get(node_id)
    if node is None:
        raise ConfigError(
            f"Node {node_id!r} is not among the nodes the worker's factory built "
            f"({', '.join(sorted(_WORKER_NODES))}); pass the factory's node ids as 'node_ids'."
        )
    task = Task(
        job_id=job_id,
        round_number=round_number,
        stage=Stage(stage),
        node_id=node_id,
        parameters=Parameters.from_bytes(payload),
        config=config,
    )
    result = node.handle(task)
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
    """Runs nodes' tasks in ``workers`` spawned processes, each holding every node.

    Every node's tasks go to the same worker, always: a node that keeps state between stages
    (secure aggregation's keys and shares, for one) keeps it in one process.

    Parameters
    ----------
    node_factory
        Module-level function that builds the nodes from ``factory_input``; each worker imports it
        by name and calls it once. It must return the same nodes in every process.
    factory_input
        The one string (JSON, typically) the factory builds the nodes from.
    node_ids
        The ids of the nodes the factory builds.
    workers
        Worker processes.
    """

    def __init__(
        self,
        node_factory: NodeFactory,
        *,
        factory_input: str,
        node_ids: Sequence[str],
        workers: int = 2,
    ) -> None:
        if workers <= 0:
            raise ConfigError(
                f"The 'workers' parameter of ProcessTransport must be > 0; got {workers}."
            )
        factory_name = _factory_name(node_factory)
        self._node_ids = sorted(node_ids)
        self._pools = [
            cf.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(factory_name, factory_input),
            )
            for _ in range(workers)
        ]
        self._home = {node: index % workers for index, node in enumerate(self._node_ids)}

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
            pool = self._pools[self._home.get(task.node_id, 0)]
            futures[pool.submit(_handle, wire)] = task.node_id
        done, pending = cf.wait(futures, timeout=timeout_s)
        results: list[Result] = []
        failures: dict[str, str] = {}
        for future in done:
            error = future.exception()
            if isinstance(error, PolicyRefusalError):  # its text is only the reason code
                failures[futures[future]] = str(error)
                continue
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
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)
