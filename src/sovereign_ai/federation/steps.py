"""The steps of a plain round: feature statistics (once, before round 1), train, evaluate.

Each is a :class:`~sovereign_ai.federation.workflow.RoundStep`: it chooses whom to ask, holds
each answer to its stage's rules (:mod:`sovereign_ai.federation.answers`) through the runner, and
folds the accepted answers into the round state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import NodeInstruction, Parameters, Result, Stage, Strategy
from sovereign_ai.errors import (
    AggregationError,
    ConfigError,
    FederationError,
    InsufficientNodesError,
    SerializationError,
)
from sovereign_ai.federation.answers import (
    AnswerRules,
    check_evaluation,
    check_statistics,
    check_update,
    train_reports,
)
from sovereign_ai.federation.workflow import RoundState, StageResults, StageRunner

__all__ = [
    "CentralEvaluator",
    "EvaluateStep",
    "StatisticsStep",
    "TrainStep",
    "aggregate_with",
    "record_stage",
    "require_quorum",
    "scaled_model",
]

logger = logging.getLogger(__name__)

CentralEvaluator = Callable[[Parameters], Mapping[str, float]]
"""Evaluates global parameters on a test set the coordinator holds (simulation, benchmarks)."""


def require_quorum(stage: Stage, state: RoundState, answered: StageResults, minimum: int) -> None:
    """Raise, naming the missing nodes and their reasons, if fewer than ``minimum`` answered."""
    if len(answered.results) < minimum:
        raise InsufficientNodesError(
            stage=stage.value,
            round_number=state.round_number,
            answered=answered.node_ids,
            missing=sorted(answered.failures),
            minimum=minimum,
            reason=_failure_summary(answered.failures),
        )


@dataclass(frozen=True)
class StatisticsStep:
    """Federated feature statistics: the federation-wide mean and deviation of every input.

    Every connected node sends its row count, per-feature sums and sums of squares (never rows);
    the step writes the pooled mean and standard deviation into the model's ``input_mean`` and
    ``input_std``, so every node and the final model scale inputs identically. Its aggregate is
    the starting model of round 1.
    """

    rules: AnswerRules
    minimum: int

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Gather the statistics and set ``state.aggregate`` to the scaled starting model."""
        model = state.parameters
        if "input_mean" not in model or "input_std" not in model:
            raise ConfigError(
                "standardize_features needs a model with 'input_mean' and 'input_std' tensors; "
                f"this model has {', '.join(model)}."
            )
        width = int(model["input_mean"].size)

        def accept(result: Result) -> Result:
            check_statistics(result, width=width, rules=self.rules)
            return result

        state.cohort = list(state.nodes)
        answered = stages(
            state,
            Stage.STATISTICS,
            [NodeInstruction(node_id=node) for node in state.nodes],
            parameters=Parameters({}),
            accept=accept,
        )
        record_stage(state, answered)
        require_quorum(Stage.STATISTICS, state, answered, self.minimum)
        results = answered.results
        state.aggregate = scaled_model(
            model,
            count=math.fsum(float(r.parameters["count"][0]) for r in results),
            total=np.sum([np.asarray(r.parameters["sum"], np.float64) for r in results], axis=0),
            total_sq=np.sum(
                [np.asarray(r.parameters["sum_sq"], np.float64) for r in results], axis=0
            ),
        )


def scaled_model(
    model: Parameters,
    *,
    count: float,
    total: npt.NDArray[np.float64],
    total_sq: npt.NDArray[np.float64],
) -> Parameters:
    """``model`` with ``input_mean``/``input_std`` from pooled row count, sums and sums of squares.

    Raises
    ------
    AggregationError
        If the count is not positive or the statistics are not finite.
    """
    if not count > 0 or not np.all(np.isfinite(total)) or not np.all(np.isfinite(total_sq)):
        raise AggregationError(
            f"The pooled feature statistics are unusable (row count {count}); not adopted."
        )
    mean = total / count  # (d,)
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))  # (d,)
    std = np.where(std > 1e-12, std, 1.0)
    tensors = dict(model)
    tensors["input_mean"] = mean.astype(np.float32).reshape(model["input_mean"].shape)
    tensors["input_std"] = std.astype(np.float32).reshape(model["input_std"].shape)
    return Parameters(tensors)


@dataclass(frozen=True)
class TrainStep:
    """Local training on the strategy's cohort, then the strategy's aggregate of the updates."""

    strategy: Strategy
    rules: AnswerRules

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Train, aggregate, and set ``state.aggregate`` and the train metrics.

        Raises
        ------
        InsufficientNodesError
            If fewer than the strategy's minimum sent an acceptable update.
        AggregationError
            If the aggregate is not finite or not of the model's spec (the strategy's state is
            then as before).
        """
        parameters = state.parameters
        reports = train_reports(self.strategy)

        def accept(result: Result) -> Result:
            return check_update(result, model=parameters, rules=self.rules, reports=reports)

        instructions = self.strategy.configure_train(
            round_number=state.round_number,
            parameters=parameters,
            nodes=state.nodes,
            rng=state.rng,
        )
        state.cohort = [i.node_id for i in instructions]
        answered = stages(state, Stage.TRAIN, instructions, parameters=parameters, accept=accept)
        record_stage(state, answered)
        require_quorum(Stage.TRAIN, state, answered, self.strategy.min_train_nodes)
        state.aggregate = aggregate_with(self.strategy, state, answered.results)
        state.metrics.update(
            {"train_nodes": float(len(answered.results)), **_weighted_metrics(answered.results)}
        )


def aggregate_with(strategy: Strategy, state: RoundState, results: Sequence[Result]) -> Parameters:
    """The strategy's next model from ``results``, adopted only if finite and of the model's spec.

    Raises
    ------
    AggregationError
        If the aggregate is not finite, not of the model's spec, or could not be formed; the
        strategy's state is then as before.
    """
    parameters = state.parameters
    saved_state = strategy.state_dict()
    try:
        new_parameters = strategy.aggregate_train(
            round_number=state.round_number, parameters=parameters, results=results
        )
        if new_parameters.spec != parameters.spec:
            raise AggregationError(
                f"Round {state.round_number}: the strategy returned parameters of spec "
                f"{new_parameters.spec}; expected the model's {parameters.spec}."
            )
        if not np.isfinite(new_parameters.flatten()).all():
            raise AggregationError(
                f"Round {state.round_number}: the aggregate holds non-finite values; it is "
                "not adopted."
            )
    except (FederationError, SerializationError) as exc:
        strategy.load_state_dict(saved_state)
        if isinstance(exc, AggregationError):
            raise
        raise AggregationError(
            f"Round {state.round_number}: the aggregate could not be formed: {exc}"
        ) from exc
    return new_parameters


@dataclass(frozen=True)
class EvaluateStep:
    """Federated evaluation of the new model (and on a coordinator-held test set, if any).

    Runs every ``evaluate_every`` rounds and in the last; too few evaluations leave the round
    without federated metrics (logged) rather than failing it.
    """

    strategy: Strategy
    rules: AnswerRules
    evaluate_every: int
    total_rounds: int
    central_evaluator: CentralEvaluator | None = None

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Add ``federated_*`` (and ``central_*``) metrics of ``state.aggregate`` when due."""
        is_due = self.evaluate_every > 0 and state.round_number % self.evaluate_every == 0
        if not (is_due or state.round_number == self.total_rounds) or state.aggregate is None:
            return
        state.metrics.update(self._federated(state, stages, state.aggregate))
        if self.central_evaluator is not None:
            central = self.central_evaluator(state.aggregate)
            state.metrics.update({f"central_{k}": float(v) for k, v in central.items()})

    def _federated(
        self, state: RoundState, stages: StageRunner, model: Parameters
    ) -> dict[str, float]:
        def accept(result: Result) -> Result:
            check_evaluation(result, rules=self.rules)
            return result

        try:
            instructions = self.strategy.configure_evaluate(
                round_number=state.round_number,
                parameters=model,
                nodes=state.nodes,
                rng=state.rng,
            )
            if not instructions:
                return {}
            answered = stages(state, Stage.EVALUATE, instructions, parameters=model, accept=accept)
            for node, why in answered.failures.items():
                state.failures.setdefault(node, f"evaluate: {why}")
            results = [r for r in answered.results if r.num_examples > 0]  # no test rows
            if len(results) < self.strategy.min_evaluate_nodes:
                logger.warning(
                    "Round %d: %d node(s) evaluated, fewer than the %d needed; no federated "
                    "metrics this round.",
                    state.round_number,
                    len(results),
                    self.strategy.min_evaluate_nodes,
                )
                return {}
            aggregated = self.strategy.aggregate_evaluate(
                round_number=state.round_number, results=results
            )
        except FederationError as exc:
            logger.warning("Round %d: no federated evaluation: %s", state.round_number, exc)
            return {}
        return {f"federated_{k}": float(v) for k, v in aggregated.items()}


def record_stage(state: RoundState, answered: StageResults) -> None:
    """Carry a stage's outcome into the round state: survivors, answers, failures."""
    state.survivors = answered.node_ids
    state.answers = {r.node_id: r for r in answered.results}
    for node, why in answered.failures.items():
        state.failures.setdefault(node, why)


def _failure_summary(failures: Mapping[str, str], *, limit: int = 3) -> str | None:
    """The reasons nodes gave for failing, grouped, so the person sees *why* a round fell short."""
    if not failures:
        return None
    by_reason: dict[str, list[str]] = {}
    for node, reason in sorted(failures.items()):
        by_reason.setdefault(reason, []).append(node)
    parts = [
        f"{', '.join(nodes[:limit])}{' and others' if len(nodes) > limit else ''}: {reason}"
        for reason, nodes in list(by_reason.items())[:limit]
    ]
    return "Reasons: " + "; ".join(parts)


def _weighted_metrics(results: Sequence[Result]) -> dict[str, float]:
    """Example-weighted mean of what nodes reported about their local training."""
    total = sum(r.num_examples for r in results)
    if total == 0:
        return {}
    names = sorted(set.intersection(*(set(r.metrics) for r in results)))
    return {
        name: float(sum(r.metrics[name] * r.num_examples for r in results) / total)
        for name in names
    }
