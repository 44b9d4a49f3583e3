"""The base class of the built-in strategies, public for users' own: sampling, checks, stacking.

A concrete strategy subclasses :class:`BaseStrategy`, declares ``needs_individual_updates`` and
writes only ``aggregate_train`` (plus its state, if it keeps any). Updates are aggregated as one
``(n, d)`` float64 matrix built by :meth:`BaseStrategy._stack_updates` (or streamed into a
weighted mean by :meth:`BaseStrategy._weighted_mean_update`), refusing updates that do not fit the
global model.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import FloatArray, NodeInstruction, Parameters, Result
from sovereign_ai.errors import (
    CheckpointError,
    FederationError,
    InsufficientNodesError,
    SerializationError,
)
from sovereign_ai.strategies._metrics import weighted_metrics
from sovereign_ai.strategies._validation import CohortOptions

__all__ = [
    "BaseStrategy",
    "Matrix",
    "UpdateStack",
    "Vector",
    "describe",
]

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UpdateStack:
    """A round's updates as one matrix, rows ordered by node id.

    Parameters
    ----------
    round_number
        The round the updates belong to.
    node_ids
        One id per row, sorted.
    updates
        Shape ``(n, d)``, float64.
    weights
        Shape ``(n,)``, float64: each node's ``num_examples``.
    """

    round_number: int
    node_ids: tuple[str, ...]
    updates: Matrix
    weights: Vector


class BaseStrategy(ABC):
    """Cohort sampling, evaluation averaging and checkpoint plumbing; subclasses write the rule.

    Every built-in strategy is a subclass, and so may yours be: write :meth:`aggregate_train`,
    set ``needs_individual_updates``, and inherit the rest of the
    :class:`~sovereign_ai.core.Strategy` protocol, which passes
    :func:`sovereign_ai.testing.check_strategy`.

    Parameters
    ----------
    fraction_train
        Share of available nodes sampled to train each round, in ``(0, 1]``.
    fraction_evaluate
        Share of available nodes sampled to evaluate, in ``[0, 1]``; 0 turns evaluation off.
    min_train_nodes
        Fewest nodes sampled for, and results aggregated in, a train stage.
    min_evaluate_nodes
        Fewest nodes sampled for, and results averaged in, an evaluate stage.

    Notes
    -----
    What a subclass sets or calls (protected: for subclasses, not for callers of a strategy):

    ``needs_individual_updates``
        Class attribute. ``True`` (the default: fail closed) unless the rule uses the updates only
        through :meth:`_weighted_mean_update`; set it to ``False`` then, so that the strategy may
        run under secure aggregation, which gives the coordinator only the sum of the updates.
    :meth:`_weighted_mean_update`
        The example-weighted mean update, shape ``(d,)`` float64, streamed in ``O(d)`` memory.
    :meth:`_stack_updates`
        The updates as rows of one ``(n, d)`` float64 matrix with their weights and node ids.
    :meth:`_apply_update`
        The global parameters moved by a ``(d,)`` update, refused if not finite in float32.
    :meth:`_quorum`
        The fewest updates the rule needs and why (Krum's ``2f + 3``); raises
        ``min_train_nodes`` to it.
    ``_STATE_KEYS``, :meth:`state_dict`, :meth:`_restore_state`
        State kept across rounds: name the keys, return float32 copies, adopt checked arrays.

    All of them check their input (spec, finiteness, duplicates, quorum) and raise the
    framework's errors, so a subclass need not.
    """

    needs_individual_updates: bool = True
    """Whether :meth:`aggregate_train` needs each update, not only their example-weighted sum."""

    _STATE_KEYS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 1,
    ) -> None:
        self._cohort = CohortOptions.create(
            owner=type(self).__name__,
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
        )

    def __repr__(self) -> str:
        return describe(self)

    # Settings -----------------------------------------------------------------------------------
    @property
    def fraction_train(self) -> float:
        """Share of available nodes sampled to train each round."""
        return self._cohort.fraction_train

    @property
    def fraction_evaluate(self) -> float:
        """Share of available nodes sampled to evaluate each round."""
        return self._cohort.fraction_evaluate

    @property
    def min_train_nodes(self) -> int:
        """Fewest train results aggregated: the configured minimum or the algorithm's quorum."""
        quorum = self._quorum()
        return max(self._cohort.min_train_nodes, 0 if quorum is None else quorum[0])

    @property
    def min_evaluate_nodes(self) -> int:
        """Fewest evaluate results whose metrics are reported."""
        return self._cohort.min_evaluate_nodes

    def _quorum(self) -> tuple[int, str] | None:
        """The fewest updates the algorithm itself needs, and why; ``None`` if any number does."""
        return None

    # Hooks of the Strategy protocol -------------------------------------------------------------
    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """Sample ``max(min_train_nodes, ceil(fraction_train * len(nodes)))`` nodes, sorted.

        Raises
        ------
        InsufficientNodesError
            If fewer than ``min_train_nodes`` distinct nodes are available.
        """
        cohort = self._sample(
            stage="train",
            round_number=round_number,
            nodes=nodes,
            fraction=self.fraction_train,
            minimum=self.min_train_nodes,
            rng=rng,
        )
        return [NodeInstruction(node_id=node_id, config={}) for node_id in cohort]

    @abstractmethod
    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Combine the cohort's updates with the current global ``parameters``."""

    def configure_evaluate(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """Sample evaluating nodes like :meth:`configure_train`; none if ``fraction_evaluate`` is 0.

        Raises
        ------
        InsufficientNodesError
            If fewer than ``min_evaluate_nodes`` distinct nodes are available.
        """
        if self.fraction_evaluate == 0.0:
            return []
        cohort = self._sample(
            stage="evaluate",
            round_number=round_number,
            nodes=nodes,
            fraction=self.fraction_evaluate,
            minimum=self.min_evaluate_nodes,
            rng=rng,
        )
        return [NodeInstruction(node_id=node_id, config={}) for node_id in cohort]

    def aggregate_evaluate(
        self,
        *,
        round_number: int,
        results: Sequence[Result],
    ) -> dict[str, float]:
        """Example-weighted mean of every metric reported, plus the total ``num_examples``.

        A metric only some nodes report is averaged over those nodes. With ``min_evaluate_nodes=0``
        and no results, the only entry is ``num_examples = 0``.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than ``min_evaluate_nodes``.
        FederationError
            If a node reports a metric named ``num_examples`` or a non-finite metric, or the nodes
            reporting a metric hold zero examples between them.
        """
        if len(results) < self.min_evaluate_nodes:
            raise InsufficientNodesError(
                stage="evaluate",
                round_number=round_number,
                answered=sorted(r.node_id for r in results),
                missing=[],
                minimum=self.min_evaluate_nodes,
            )
        return weighted_metrics(round_number=round_number, results=results)

    def state_dict(self) -> dict[str, FloatArray]:
        """State carried across rounds, as float32 copies; empty for a stateless strategy."""
        return {}

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        """Restore state written by :meth:`state_dict`; an empty mapping resets to a fresh start.

        Raises
        ------
        CheckpointError
            If ``state`` holds keys this strategy does not write, misses some it does, or holds
            something other than float arrays.
        """
        owner = type(self).__name__
        unexpected = sorted(set(state) - set(self._STATE_KEYS))
        missing = sorted(set(self._STATE_KEYS) - set(state))
        if unexpected or (state and missing):
            raise CheckpointError(
                f"The 'state' parameter of {owner}.load_state_dict must hold exactly the keys "
                f"{list(self._STATE_KEYS)} (or none); got unexpected {unexpected} and missing "
                f"{missing if state else []} instead."
            )
        arrays: dict[str, FloatArray] = {}
        for key, value in state.items():
            if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
                raise CheckpointError(
                    f"The 'state' parameter of {owner}.load_state_dict must map {key!r} to a "
                    f"float array; got {type(value).__name__} instead."
                )
            arrays[key] = np.array(value, dtype=np.float32, copy=True)
        self._restore_state(arrays)

    def _restore_state(self, state: dict[str, FloatArray]) -> None:
        """Adopt state whose keys were checked; ``{}`` means "start fresh"."""
        return  # stateless by default: the key check already refused anything but {}

    # Building blocks for subclasses -------------------------------------------------------------
    def _sample(
        self,
        *,
        stage: str,
        round_number: int,
        nodes: Sequence[str],
        fraction: float,
        minimum: int,
        rng: np.random.Generator,
    ) -> list[str]:
        available = sorted(set(nodes))
        if len(available) < minimum:
            self._raise_insufficient(
                stage=stage, round_number=round_number, answered=available, minimum=minimum
            )
        # round() first so that 0.28 * 25 == 7.000000000000001 asks for 7 nodes, not 8
        wanted = math.ceil(round(fraction * len(available), 9))
        count = min(len(available), max(minimum, wanted))
        chosen = rng.choice(len(available), size=count, replace=False)  # (count,), int64
        return sorted(available[int(i)] for i in chosen)

    def _raise_insufficient(
        self, *, stage: str, round_number: int, answered: list[str], minimum: int
    ) -> NoReturn:
        quorum = self._quorum()
        is_quorum = stage == "train" and quorum is not None and minimum == quorum[0]
        raise InsufficientNodesError(
            stage=stage,
            round_number=round_number,
            answered=answered,
            missing=[],
            minimum=minimum,
            reason=quorum[1] if is_quorum and quorum is not None else None,
        )

    def _checked_results(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> list[Result]:
        """The round's results sorted by node id, once each, with updates of the global spec.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than :attr:`min_train_nodes` (or none).
        FederationError
            If a node answers twice or reports a negative example count.
        SerializationError
            If an update's names or shapes differ from the global parameters'.
        """
        ordered = sorted(results, key=lambda r: r.node_id)
        node_ids = [r.node_id for r in ordered]
        minimum = max(1, self.min_train_nodes)
        if sum(max(1, r.contributors) for r in ordered) < minimum:
            self._raise_insufficient(
                stage="train", round_number=round_number, answered=node_ids, minimum=minimum
            )
        duplicates = sorted(n for n, count in Counter(node_ids).items() if count > 1)
        if duplicates:
            raise FederationError(
                f"Round {round_number}: node(s) {', '.join(duplicates)} answered more than once; "
                "each node's update may count only once."
            )
        spec = parameters.spec
        for result in ordered:
            if result.parameters.spec != spec:
                raise SerializationError(
                    f"Round {round_number}: the update of node {result.node_id!r} has spec "
                    f"{result.parameters.spec}; expected the global model's {spec}."
                )
            if result.num_examples < 0:
                raise FederationError(
                    f"Round {round_number}: node {result.node_id!r} reports "
                    f"{result.num_examples} examples; must be >= 0."
                )
        return ordered

    def _stack_updates(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> UpdateStack:
        """Check the round's updates (see :meth:`_checked_results`) and stack them as rows.

        Raises
        ------
        FederationError
            Also if an update holds non-finite values.
        """
        ordered = self._checked_results(
            round_number=round_number, parameters=parameters, results=results
        )
        summed = [r.node_id for r in ordered if r.contributors != 1]
        if summed:
            raise FederationError(
                f"Round {round_number}: {type(self).__name__} needs each node's update, but "
                f"{summed[0]!r} is the secure aggregate of {ordered[0].contributors} nodes; turn "
                "secure aggregation off or choose a strategy that uses only their sum."
            )
        updates = np.empty((len(ordered), parameters.num_scalars), dtype=np.float64)  # (n, d)
        for row, result in enumerate(ordered):
            updates[row] = _update_vector(round_number, result)
        return UpdateStack(
            round_number=round_number,
            node_ids=tuple(r.node_id for r in ordered),
            updates=updates,
            weights=np.array([r.num_examples for r in ordered], dtype=np.float64),
        )

    def _weighted_mean_update(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Vector:
        """The example-weighted mean update, shape ``(d,)``, summed in node-id order.

        Streams the updates, so memory stays ``O(d)`` however many nodes answered.

        Raises
        ------
        FederationError
            Also if an update holds non-finite values, or every node reports 0 examples.
        """
        ordered = self._checked_results(
            round_number=round_number, parameters=parameters, results=results
        )
        total = float(sum(r.num_examples for r in ordered))
        if total <= 0.0:
            raise FederationError(
                f"Round {round_number}: every update reports 0 examples "
                f"({', '.join(r.node_id for r in ordered)}); an example-weighted mean is undefined."
            )
        weighted_sum = np.zeros(parameters.num_scalars, dtype=np.float64)  # (d,)
        for result in ordered:
            weighted_sum += result.num_examples * _update_vector(round_number, result)
        return weighted_sum / total

    def _apply_update(
        self, *, round_number: int, parameters: Parameters, update: Vector
    ) -> Parameters:
        """Global parameters moved by ``update`` (shape ``(d,)``), computed in float64."""
        moved = (parameters.flatten().astype(np.float64) + update).astype(np.float32)  # (d,)
        if not np.isfinite(moved).all():
            raise FederationError(
                f"Round {round_number}: {type(self).__name__} produced non-finite parameters "
                "(the aggregated update overflowed float32)."
            )
        return parameters.with_vector(moved)


def _update_vector(round_number: int, result: Result) -> Vector:
    """``result``'s update as one float64 vector, refused if any value is not finite."""
    vector = result.parameters.flatten().astype(np.float64)  # (d,)
    if not np.isfinite(vector).all():
        raise FederationError(
            f"Round {round_number}: the update of node {result.node_id!r} holds non-finite "
            "values; it cannot be aggregated."
        )
    return vector


def describe(strategy: object) -> str:
    """``Name(option=value, ...)`` from the constructor's parameters the object keeps as attributes.

    A parameter not kept under its own name is left out rather than failing the ``repr``.
    """
    signature = inspect.signature(type(strategy))
    options = ", ".join(
        f"{name}={getattr(strategy, name)!r}"
        for name in signature.parameters
        if hasattr(strategy, name)
    )
    return f"{type(strategy).__name__}({options})"
