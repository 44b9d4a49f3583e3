"""A round is a workflow of steps over one round state; the coordinator only runs stages for them.

A step is a small object with one method, ``run(state, stages)``. It reads and writes the
:class:`RoundState` (who is in the cohort, who survived so far, the answers of its stage, the
aggregate, the metrics), and asks nodes for answers through the :class:`StageRunner` it is handed.
The runner does the generic work that every step shares: binding each task to (job, round, stage,
node), the deadline, holding every answer to the step's acceptance rule (an answer that does not
fit is that node's failure), and telling observers. A step raises ``InsufficientNodesError`` or
``AggregationError`` (:mod:`sovereign_ai.errors`) when its quorum or its aggregate fails; the
coordinator then retries the whole round.

A plain round is ``[TrainStep, EvaluateStep]`` (:mod:`sovereign_ai.federation.steps`), preceded
once per job by ``StatisticsStep`` in round 0. Capabilities add steps (secure aggregation's
advertise-keys, share-keys, masked-input and unmask) rather than branches in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sovereign_ai.core import NodeInstruction, Parameters, Result, Stage

__all__ = ["RoundState", "RoundStep", "StageResults", "StageRunner"]

Accept = Callable[[Result], Result]
"""Holds one answer to what its stage expects: returns it (possibly normalised) or raises."""


@dataclass
class StageResults:
    """The answers of one stage that were accepted, and why the others were not.

    Parameters
    ----------
    results
        Accepted answers, one per node, sorted by node id.
    failures
        Node id to the reason it has no accepted answer (did not answer, declined, refused).
    """

    results: list[Result]
    failures: dict[str, str]

    @property
    def node_ids(self) -> list[str]:
        """The nodes whose answers were accepted, sorted."""
        return [r.node_id for r in self.results]


class StageRunner(Protocol):
    """Runs one stage for a step: tasks out, accepted answers back."""

    def __call__(
        self,
        state: RoundState,
        stage: Stage,
        instructions: Sequence[NodeInstruction],
        *,
        parameters: Parameters | Callable[[str], Parameters],
        accept: Accept,
    ) -> StageResults:
        """Send each instructed node a task of ``stage`` and collect the accepted answers.

        ``parameters`` is what every node is sent, or a function giving each node its own
        (per-recipient payloads). Failures are also added to ``state.failures``.
        """
        ...


@dataclass
class RoundState:
    """Everything one attempt of one round knows, carried from step to step.

    Parameters
    ----------
    round_number
        The round (0 for the job's set-up steps).
    attempt
        Which attempt of the round this is, from 1.
    rng
        Seeded by ``(job seed, round, attempt)``: cohort sampling reproduces on resume.
    parameters
        The global model the round starts from.
    nodes
        The nodes connected when the round started.
    cohort
        The nodes the round's first stage asked.
    survivors
        The nodes whose answers every stage so far accepted.
    answers
        The accepted answers of the latest stage, by node id.
    aggregate
        The next global model, once a step formed it.
    metrics
        The round's metrics so far.
    failures
        Node id to why it dropped out of the round (the first reason per node).
    extras
        What a capability's steps share within the attempt (secure aggregation's session), by
        the capability's key.
    """

    round_number: int
    attempt: int
    rng: np.random.Generator
    parameters: Parameters
    nodes: list[str]
    cohort: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    answers: dict[str, Result] = field(default_factory=dict)
    aggregate: Parameters | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    extras: dict[str, object] = field(default_factory=dict)


class RoundStep(Protocol):
    """One step of a round's workflow."""

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Advance ``state``, asking nodes through ``stages``.

        Raises
        ------
        InsufficientNodesError
            If too few nodes remain for this step (the round is retried).
        AggregationError
            If this step's aggregate cannot be adopted (the round is retried).
        """
        ...
