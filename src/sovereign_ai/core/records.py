"""Typed messages of a round: what the coordinator asks of a node, and what the node answers.

Every task and result is bound to ``(job_id, round_number, stage, node_id)``; a result that does not
match the task it answers is rejected (see :meth:`Result.check_answers`). Only tensors (as
:class:`~sovereign_ai.core.parameters.Parameters`) and plain scalars travel: no code, no pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from sovereign_ai.core.parameters import Parameters
from sovereign_ai.errors import StaleMessageError

__all__ = ["ConfigValue", "Metrics", "Result", "Stage", "Task"]

ConfigValue = bool | int | float | str
"""A scalar that may travel in a task's configuration."""

Metrics = Mapping[str, float]
"""Named scalar metrics, e.g. ``{"loss": 0.31, "accuracy": 0.92}``."""


class Stage(StrEnum):
    """A step of a round. Capabilities add stages; the round loop carries any of them."""

    STATISTICS = "statistics"
    """Federated feature statistics (count, sum, sum of squares) before round 1."""
    TRAIN = "train"
    """Local training; the result carries the update."""
    EVALUATE = "evaluate"
    """Local evaluation of the global model; the result carries metrics only."""
    SECAGG_ADVERTISE_KEYS = "secagg-advertise-keys"
    """Secure aggregation, stage 1: the node's signed public keys for the round."""
    SECAGG_SHARE_KEYS = "secagg-share-keys"
    """Secure aggregation, stage 2: the node's secret shares, encrypted to each neighbour."""
    SECAGG_MASKED_INPUT = "secagg-masked-input"
    """Secure aggregation, stage 3: the node's input (update or statistics), masked."""
    SECAGG_UNMASK = "secagg-unmask"
    """Secure aggregation, stage 4: the shares that remove the survivors' and dropouts' masks."""


@dataclass(frozen=True)
class Task:
    """What the coordinator asks one node to do in one stage of one round.

    Parameters
    ----------
    job_id
        The job this task belongs to.
    round_number
        The round, counting from 1.
    stage
        Which stage of the round.
    node_id
        The node the task is addressed to.
    parameters
        Global model parameters the node starts from (may be empty for stages without a model).
    config
        Scalar settings for this stage (learning rate, local epochs, seeds, ...).
    """

    job_id: str
    round_number: int
    stage: Stage
    node_id: str
    parameters: Parameters
    config: Mapping[str, ConfigValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What a node answers to a :class:`Task`.

    Parameters
    ----------
    job_id, round_number, stage, node_id
        Copied from the task this answers; checked on receipt.
    num_examples
        How many local examples the answer is based on (weights aggregation).
    parameters
        For ``train``: the update (local parameters minus the global ones). Empty otherwise.
    metrics
        Named scalars the node chose to report.
    contributors
        How many nodes' answers this result stands for: 1 for a node's own answer (the only
        value the wire carries); the number of survivors for the secure aggregate of a round,
        whose ``parameters`` are then the example-weighted mean update of them all and
        ``num_examples`` their summed weight.
    """

    job_id: str
    round_number: int
    stage: Stage
    node_id: str
    num_examples: int
    parameters: Parameters = field(default_factory=lambda: Parameters({}))
    metrics: Metrics = field(default_factory=dict)
    contributors: int = 1

    def check_answers(self, task: Task) -> None:
        """Raise unless this result answers ``task`` exactly.

        Raises
        ------
        StaleMessageError
            If job, round, stage or node differ, the example count is negative, or a float
            tensor or a metric holds a non-finite value (integer tensors are always finite).
        """
        expected = (task.job_id, task.round_number, task.stage, task.node_id)
        got = (self.job_id, self.round_number, self.stage, self.node_id)
        if got != expected:
            raise StaleMessageError(
                f"Result bound to (job, round, stage, node)={got!r} does not answer the task "
                f"{expected!r}; a replayed or misrouted message is refused."
            )
        if self.num_examples < 0:
            raise StaleMessageError(
                f"Result from {self.node_id!r} reports {self.num_examples} examples; must be >= 0."
            )
        for name, array in self.parameters.items():
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                raise StaleMessageError(
                    f"Result from {self.node_id!r} carries non-finite values in tensor {name!r}; "
                    "the update is refused."
                )
        for name, value in self.metrics.items():
            if not math.isfinite(value):
                raise StaleMessageError(
                    f"Result from {self.node_id!r} reports metric {name!r}={value!r}; "
                    "metrics must be finite numbers."
                )
