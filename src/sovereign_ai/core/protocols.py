"""Seams shared by features: how a strategy plugs into the round loop, and how tasks reach nodes.

The coordinator's one round loop (``sovereign_ai.federation``) drives a :class:`Strategy` and a
:class:`Transport`; it never knows which algorithm or which network is behind them. Simulation and
deployment differ only in the transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from sovereign_ai.core.parameters import FloatArray, Parameters
from sovereign_ai.core.records import ConfigValue, Result, Task

__all__ = ["NodeInstruction", "StageOutcome", "Strategy", "Transport"]


@dataclass(frozen=True)
class NodeInstruction:
    """A strategy's choice of one node for a stage, with the settings that node should use.

    Parameters
    ----------
    node_id
        The node chosen.
    config
        Scalars added to the job's stage settings for this node (e.g. a FedProx ``proximal_mu``).
    """

    node_id: str
    config: Mapping[str, ConfigValue] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    """How the global model is updated from nodes' results.

    A strategy fills four hooks; the coordinator runs the loop. ``aggregate_train`` receives
    *updates* (local minus global parameters) and returns the next global parameters, so the same
    hook works whether updates arrive one by one or already summed by secure aggregation.

    Notes
    -----
    Strategies may keep state across rounds (server momentum, adaptive moments). That state must be
    exposed by :meth:`state_dict` and restored by :meth:`load_state_dict`, so that a coordinator
    resumed from its checkpoint continues bit-for-bit.

    Every strategy also declares :attr:`needs_individual_updates`, because secure aggregation only
    ever gives the coordinator the *sum* of a round's updates: a strategy that must see each
    node's update (a median, Krum) cannot run under it, and
    ``sovereign_ai.strategies.check_secure_aggregation_compatible`` refuses the combination.
    """

    @property
    def needs_individual_updates(self) -> bool:
        """Whether :meth:`aggregate_train` needs each node's update, not only their sum.

        ``False`` for strategies that use the updates only through their example-weighted sum
        (FedAvg, FedAvgM, FedProx, the FedOpt family), which can therefore run under secure
        aggregation, where the coordinator never sees one node's update. ``True`` for strategies
        that compare, sort or select individual updates (median, trimmed mean, Krum, Bulyan).
        """
        ...

    @property
    def min_train_nodes(self) -> int:
        """Fewest train results with which a round may be aggregated."""
        ...

    @property
    def min_evaluate_nodes(self) -> int:
        """Fewest evaluate results with which a round's metrics are reported."""
        ...

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """Choose this round's training cohort from ``nodes`` and their settings."""
        ...

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Combine the cohort's updates with the current global ``parameters``."""
        ...

    def configure_evaluate(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """Choose the nodes that evaluate the new global model."""
        ...

    def aggregate_evaluate(
        self,
        *,
        round_number: int,
        results: Sequence[Result],
    ) -> dict[str, float]:
        """Combine the nodes' evaluation metrics into the round's metrics."""
        ...

    def state_dict(self) -> dict[str, FloatArray]:
        """State carried across rounds, as named float arrays (empty if stateless)."""
        ...

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        """Restore state written by :meth:`state_dict`."""
        ...


@dataclass(frozen=True)
class StageOutcome:
    """What came back from one stage's tasks before the deadline.

    Parameters
    ----------
    results
        Answers received in time (not yet checked against their tasks).
    failures
        Node id to a human-readable reason for every task that got no usable answer.
    """

    results: list[Result]
    failures: dict[str, str]


@runtime_checkable
class Transport(Protocol):
    """Carries tasks to nodes and their results back, for any stage.

    Implementations: in-memory (simulation, tests) and gRPC with mutual TLS (deployment).
    """

    def available_nodes(self) -> list[str]:
        """Nodes that can be given a task now, sorted."""
        ...

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        """Wait until ``count`` nodes are available or ``timeout_s`` passed; return those available.

        Transports whose nodes are all present from the start return at once.
        """
        ...

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> StageOutcome:
        """Deliver ``tasks`` and collect results until all answered or ``timeout_s`` elapsed."""
        ...

    def close(self) -> None:
        """Release the transport's threads, processes or sockets."""
        ...
