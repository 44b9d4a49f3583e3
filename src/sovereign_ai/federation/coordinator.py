"""The coordinator: the one round loop, for simulation and deployment alike.

Each round is a sequence of stages carried by a :class:`~sovereign_ai.core.Transport`::

    cohort = strategy.configure_train(...)      # who trains, with which settings
    results = transport.run_stage(train tasks)  # collect until the deadline
    parameters = strategy.aggregate_train(...)  # only if at least the minimum cohort answered
    metrics = evaluate (federated, weighted by examples; and centrally if a test set is given)
    store.save_round(...)                        # the round is durable before the next begins

Every answer is checked against what its stage expects (:mod:`sovereign_ai.federation.answers`)
before anything is aggregated; an answer that does not fit is that node's failure, with the
reason, and the stage goes on with the others. A round that falls short of the minimum cohort, or
whose aggregate is not finite, is retried with a fresh sample (up to ``max_round_attempts``);
after that the job stops with :class:`InsufficientNodesError` (naming the missing nodes and
why) or :class:`AggregationError`. Before each attempt the coordinator waits for the strategy's
minimum number of nodes to be connected, as long as ``max_node_wait_s`` allows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from sovereign_ai.core import (
    ConfigValue,
    NodeInstruction,
    Parameters,
    Result,
    Stage,
    StageOutcome,
    Strategy,
    Task,
    Transport,
)
from sovereign_ai.errors import (
    AggregationError,
    ConfigError,
    FederationError,
    InsufficientNodesError,
    InvalidAnswerError,
    SerializationError,
    StaleMessageError,
)
from sovereign_ai.federation.answers import (
    DEFAULT_MAX_EXAMPLES_PER_NODE,
    AnswerRules,
    check_evaluation,
    check_statistics,
    check_update,
)
from sovereign_ai.federation.checkpoint import CheckpointStore
from sovereign_ai.federation.node import EVALUATE_METRICS, TRAIN_METRICS
from sovereign_ai.federation.rounds import FederationHistory, RoundObserver, RoundReport

__all__ = ["CentralEvaluator", "Coordinator", "node_seed"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CentralEvaluator = Callable[[Parameters], Mapping[str, float]]
"""Evaluates global parameters on a test set the coordinator holds (simulation, benchmarks)."""


def node_seed(seed: int, round_number: int, node_id: str) -> int:
    """A node's training seed for one round, derived so that any resume reproduces it."""
    digest = hashlib.sha256(f"{seed}:{round_number}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Coordinator:
    """Runs a job's rounds over a transport with a strategy.

    Parameters
    ----------
    job_id
        The id every task and result is bound to.
    strategy
        How the global model is updated.
    transport
        How tasks reach nodes (in-memory for simulation, gRPC for deployment).
    initial_parameters
        The global model before round 1.
    rounds
        Number of rounds to run in total (a resumed job continues up to this number).
    seed
        Seeds cohort sampling and every node's local training.
    stage_config
        Scalars sent with every task (model name, local epochs, learning rate, ...).
    store
        Durable state; without one, nothing survives the process.
    round_timeout_s
        Deadline for each stage's answers.
    max_round_attempts
        Tries per round before the job stops for want of nodes.
    evaluate_every
        Federated evaluation cadence in rounds (0 = never; the last round always evaluates).
    central_evaluator
        Optional evaluation on a coordinator-held test set, reported as ``central_*`` metrics.
    observer
        Optional progress receiver.
    standardize_features
        Before round 1, gather feature statistics from every available node (count, sum, sum of
        squares; never rows) and write the federation-wide mean and standard deviation into the
        model's ``input_mean`` and ``input_std`` tensors, so every node and the final model scale
        inputs identically.
    wait_for_nodes
        Before each round, wait for this many connected nodes (at least the strategy's minimum)
        for up to ``wait_for_nodes_s``; then go on with those that are there, if they meet the
        strategy's minimum.
    wait_for_nodes_s
        How long to wait for ``wait_for_nodes`` nodes before each round.
    max_node_wait_s
        How long to wait, in all, for the strategy's minimum to connect before an attempt;
        ``None`` waits as long as it takes (deployment: sites come online over hours), 0 does
        not wait (simulation).
    wait_report_s
        While waiting for the minimum, how often the observer hears who is connected.
    max_examples_per_node
        The largest example count a node may report; answers above it are refused. Counts
        weight the mean, so without a cap one node could claim 2^63 rows and own the model.
    """

    def __init__(
        self,
        *,
        job_id: str,
        strategy: Strategy,
        transport: Transport,
        initial_parameters: Parameters,
        rounds: int,
        seed: int = 0,
        stage_config: Mapping[str, ConfigValue] | None = None,
        store: CheckpointStore | None = None,
        round_timeout_s: float = 600.0,
        max_round_attempts: int = 3,
        evaluate_every: int = 1,
        central_evaluator: CentralEvaluator | None = None,
        observer: RoundObserver | None = None,
        standardize_features: bool = False,
        wait_for_nodes: int = 0,
        wait_for_nodes_s: float = 60.0,
        max_node_wait_s: float | None = 0.0,
        wait_report_s: float = 30.0,
        max_examples_per_node: int = DEFAULT_MAX_EXAMPLES_PER_NODE,
    ) -> None:
        if rounds <= 0:
            raise ConfigError(f"The 'rounds' parameter of Coordinator must be > 0; got {rounds}.")
        if round_timeout_s <= 0:
            raise ConfigError(
                "The 'round_timeout_s' parameter of Coordinator must be > 0; "
                f"got {round_timeout_s}."
            )
        if max_round_attempts <= 0:
            raise ConfigError(
                "The 'max_round_attempts' parameter of Coordinator must be > 0; "
                f"got {max_round_attempts}."
            )
        self.job_id = job_id
        self.strategy = strategy
        self.transport = transport
        self.initial_parameters = initial_parameters
        self.rounds = rounds
        self.seed = seed
        self.stage_config = dict(stage_config or {})
        self.store = store
        self.round_timeout_s = round_timeout_s
        self.max_round_attempts = max_round_attempts
        self.evaluate_every = evaluate_every
        self.central_evaluator = central_evaluator
        self.observer = observer
        self.standardize_features = standardize_features
        if max_node_wait_s is not None and max_node_wait_s < 0:
            raise ConfigError(
                "The 'max_node_wait_s' parameter of Coordinator must be >= 0 or None; "
                f"got {max_node_wait_s}."
            )
        if not wait_report_s > 0:
            raise ConfigError(
                f"The 'wait_report_s' parameter of Coordinator must be > 0; got {wait_report_s}."
            )
        self.wait_for_nodes = wait_for_nodes
        self.wait_for_nodes_s = wait_for_nodes_s
        self.max_node_wait_s = max_node_wait_s
        self.wait_report_s = wait_report_s
        self.rules = AnswerRules(
            max_examples_per_node=max_examples_per_node,
            train_metrics=TRAIN_METRICS,
            evaluate_metrics=EVALUATE_METRICS,
        )

    # The loop -----------------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> FederationHistory:
        """Run the remaining rounds and return the history.

        Parameters
        ----------
        resume
            Continue from the store's last durable round instead of refusing existing state.

        Raises
        ------
        InsufficientNodesError
            If a round could not gather the minimum cohort in ``max_round_attempts`` tries, or
            the minimum never connected within ``max_node_wait_s``.
        AggregationError
            If no attempt of a round produced an aggregate that could be adopted.
        CheckpointError
            If the store holds state that cannot be resumed.
        """
        parameters, start = self._starting_point(resume=resume)
        history = FederationHistory(resumed_from=start)
        for round_number in range(start + 1, self.rounds + 1):
            if self.observer is not None:
                self.observer.on_round_start(round_number, self.rounds)
            report, parameters = self._run_round(round_number, parameters)
            if self.store is not None:
                self.store.save_round(
                    round_number=round_number,
                    parameters=parameters,
                    strategy_state=self.strategy.state_dict(),
                    metrics=report.metrics,
                    record=report.record(),
                )
            history.rounds.append(report)
            if self.observer is not None:
                self.observer.on_round_end(report)
        history.parameters = parameters
        return history

    def _starting_point(self, *, resume: bool) -> tuple[Parameters, int]:
        latest = self.store.latest() if self.store is not None else None
        if latest is not None and latest.round_number == 0 and not resume:
            # Only the starting model is durable (the job stopped in round 1): nothing trained
            # is lost by starting afresh, so do not make the operator say --resume for it.
            logger.info("Starting job %s afresh: no round was completed before.", self.job_id)
            latest = None
        if latest is None:
            initial = self.initial_parameters
            if self.standardize_features:
                initial = self._with_feature_scaling(initial)
            if self.store is not None:
                self.store.save_round(
                    round_number=0,
                    parameters=initial,
                    strategy_state=self.strategy.state_dict(),
                    metrics={},
                )
            return initial, 0
        if not resume:
            folder = str(self.store.directory) if self.store is not None else "?"
            raise ConfigError(
                f"The state folder {folder!r} already holds round "
                f"{latest.round_number} of this job; resume it (--resume on the command line) "
                "or choose an empty folder to start over."
            )
        self.strategy.load_state_dict(latest.strategy_state)
        logger.info("Resuming job %s after round %d", self.job_id, latest.round_number)
        return latest.parameters, latest.round_number

    def _require_cohort(
        self, stage: Stage, round_number: int, results: Sequence[Result], outcome: StageOutcome
    ) -> None:
        """Raise, naming the missing nodes and their reasons, if fewer than the minimum answered."""
        if len(results) < self.strategy.min_train_nodes:
            raise InsufficientNodesError(
                stage=stage.value,
                round_number=round_number,
                answered=sorted(r.node_id for r in results),
                missing=sorted(outcome.failures),
                minimum=self.strategy.min_train_nodes,
                reason=_failure_summary(outcome.failures),
            )

    def _connected_nodes(self, round_number: int) -> list[str]:
        """The connected nodes once at least the strategy's minimum is there.

        Waits up to ``wait_for_nodes_s`` for ``wait_for_nodes`` nodes, then goes on with those
        present if they meet the minimum; otherwise keeps waiting for the minimum, telling the
        observer who is connected every ``wait_report_s``, for at most ``max_node_wait_s``.
        """
        minimum = self.strategy.min_train_nodes
        wanted = max(self.wait_for_nodes, minimum)
        if self.wait_for_nodes_s > 0:
            nodes = self.transport.wait_for_nodes(wanted, timeout_s=self.wait_for_nodes_s)
        else:
            nodes = self.transport.available_nodes()
        started = time.monotonic()
        while len(nodes) < minimum:
            waited_s = time.monotonic() - started
            limit_s = self.max_node_wait_s
            if limit_s is not None and waited_s >= limit_s:
                raise InsufficientNodesError(
                    stage="connect",
                    round_number=round_number,
                    answered=nodes,
                    missing=[],
                    minimum=minimum,
                    reason=f"Waited {waited_s:.0f} s for nodes to connect.",
                )
            if self.observer is not None:
                self.observer.on_waiting(nodes, minimum, waited_s)
            slice_s = self.wait_report_s
            if limit_s is not None:
                slice_s = max(min(slice_s, limit_s - waited_s), 1e-3)
            nodes = self.transport.wait_for_nodes(minimum, timeout_s=slice_s)
        return nodes

    def _with_feature_scaling(self, parameters: Parameters) -> Parameters:
        if "input_mean" not in parameters or "input_std" not in parameters:
            raise ConfigError(
                "standardize_features needs a model with 'input_mean' and 'input_std' tensors; "
                f"this model has {', '.join(parameters)}."
            )
        width = int(parameters["input_mean"].size)

        def accept(result: Result) -> Result:
            check_statistics(result, width=width, rules=self.rules)
            return result

        def attempt(number: int) -> list[Result]:
            nodes = self._connected_nodes(0)
            instructions = [NodeInstruction(node_id=node) for node in nodes]
            outcome = self._run_stage(Stage.STATISTICS, 0, Parameters({}), instructions)
            results = self._accepted(outcome, instructions, Stage.STATISTICS, 0, accept)
            self._require_cohort(Stage.STATISTICS, 0, results, outcome)
            return results

        results, _ = self._with_retries(0, attempt)
        count = math.fsum(float(r.parameters["count"][0]) for r in results)
        total = np.sum([np.asarray(r.parameters["sum"], np.float64) for r in results], axis=0)
        total_sq = np.sum([np.asarray(r.parameters["sum_sq"], np.float64) for r in results], axis=0)
        mean = total / count  # (d,)
        std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))  # (d,)
        std = np.where(std > 1e-12, std, 1.0)
        tensors = dict(parameters)
        tensors["input_mean"] = mean.astype(np.float32).reshape(parameters["input_mean"].shape)
        tensors["input_std"] = std.astype(np.float32).reshape(parameters["input_std"].shape)
        return Parameters(tensors)

    def _with_retries(self, round_number: int, attempt: Callable[[int], _T]) -> tuple[_T, int]:
        """Run ``attempt(number)`` until it succeeds or ``max_round_attempts`` are spent.

        An attempt fails for want of nodes (:class:`InsufficientNodesError`) or because its
        aggregate could not be adopted (:class:`AggregationError`); the last failure is raised.
        Running out of the wait for nodes to connect is raised at once.
        """
        for number in range(1, self.max_round_attempts + 1):
            try:
                return attempt(number), number
            except (InsufficientNodesError, AggregationError) as exc:
                if isinstance(exc, InsufficientNodesError) and exc.stage == "connect":
                    raise  # the operator's wait limit is spent; another attempt would wait again
                logger.warning("Round %d attempt %d: %s", round_number, number, exc)
                if self.observer is not None:
                    self.observer.on_attempt_failed(round_number, number, str(exc))
                if number == self.max_round_attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _run_round(
        self, round_number: int, parameters: Parameters
    ) -> tuple[RoundReport, Parameters]:
        def accept(result: Result) -> Result:
            return check_update(result, model=parameters, rules=self.rules)

        def attempt(number: int) -> tuple[RoundReport, Parameters]:
            rng = np.random.default_rng([self.seed, round_number, number])
            nodes = self._connected_nodes(round_number)
            instructions = self.strategy.configure_train(
                round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
            )
            outcome = self._run_stage(Stage.TRAIN, round_number, parameters, instructions)
            results = self._accepted(outcome, instructions, Stage.TRAIN, round_number, accept)
            self._require_cohort(Stage.TRAIN, round_number, results, outcome)
            new_parameters = self._aggregate(round_number, parameters, results)
            evaluation, evaluate_failures = self._evaluate(round_number, new_parameters, rng)
            metrics = {
                "train_nodes": float(len(results)),
                **_weighted_train_metrics(results),
                **evaluation,
            }
            failures = {node: f"evaluate: {why}" for node, why in evaluate_failures.items()}
            report = RoundReport(
                round_number=round_number,
                cohort=[i.node_id for i in instructions],
                answered=[r.node_id for r in results],
                failures={**failures, **outcome.failures},
                metrics=metrics,
                attempts=number,
            )
            return report, new_parameters

        return self._with_retries(round_number, attempt)[0]

    def _aggregate(
        self, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        """The strategy's next global model, adopted only if it is finite and of the model's spec.

        Raises
        ------
        AggregationError
            Otherwise; the strategy's state is then as it was before the attempt.
        """
        saved_state = self.strategy.state_dict()
        try:
            new_parameters = self.strategy.aggregate_train(
                round_number=round_number, parameters=parameters, results=results
            )
            if new_parameters.spec != parameters.spec:
                raise AggregationError(
                    f"Round {round_number}: the strategy returned parameters of spec "
                    f"{new_parameters.spec}; expected the model's {parameters.spec}."
                )
            if not np.isfinite(new_parameters.flatten()).all():
                raise AggregationError(
                    f"Round {round_number}: the aggregate holds non-finite values; it is not "
                    "adopted."
                )
        except (FederationError, SerializationError) as exc:
            self.strategy.load_state_dict(saved_state)
            if isinstance(exc, AggregationError):
                raise
            raise AggregationError(
                f"Round {round_number}: the aggregate could not be formed: {exc}"
            ) from exc
        return new_parameters

    def _evaluate(
        self, round_number: int, parameters: Parameters, rng: np.random.Generator
    ) -> tuple[dict[str, float], dict[str, str]]:
        """The round's evaluation metrics, and the nodes whose evaluation failed, with why."""
        metrics: dict[str, float] = {}
        failures: dict[str, str] = {}
        is_due = self.evaluate_every > 0 and round_number % self.evaluate_every == 0
        if is_due or round_number == self.rounds:
            metrics.update(self._federated_evaluation(round_number, parameters, rng, failures))
            if self.central_evaluator is not None:
                central = self.central_evaluator(parameters)
                metrics.update({f"central_{k}": float(v) for k, v in central.items()})
        return metrics, failures

    def _federated_evaluation(
        self,
        round_number: int,
        parameters: Parameters,
        rng: np.random.Generator,
        failures: dict[str, str],
    ) -> dict[str, float]:
        """``federated_*`` metrics (none when too few nodes could evaluate); fills ``failures``."""

        def accept(result: Result) -> Result:
            check_evaluation(result, rules=self.rules)
            return result

        try:
            instructions = self.strategy.configure_evaluate(
                round_number=round_number,
                parameters=parameters,
                nodes=self.transport.available_nodes(),
                rng=rng,
            )
            if not instructions:
                return {}
            outcome = self._run_stage(Stage.EVALUATE, round_number, parameters, instructions)
            answered = self._accepted(outcome, instructions, Stage.EVALUATE, round_number, accept)
            failures.update(outcome.failures)
            results = [r for r in answered if r.num_examples > 0]  # nodes without test rows
            if len(results) < self.strategy.min_evaluate_nodes:
                logger.warning(
                    "Round %d: %d node(s) evaluated, fewer than the %d needed; no federated "
                    "metrics this round.",
                    round_number,
                    len(results),
                    self.strategy.min_evaluate_nodes,
                )
                return {}
            aggregated = self.strategy.aggregate_evaluate(
                round_number=round_number, results=results
            )
        except FederationError as exc:
            logger.warning("Round %d: no federated evaluation: %s", round_number, exc)
            return {}
        return {f"federated_{k}": float(v) for k, v in aggregated.items()}

    # Stages -------------------------------------------------------------------------------------
    def _run_stage(
        self,
        stage: Stage,
        round_number: int,
        parameters: Parameters,
        instructions: Sequence[NodeInstruction],
    ) -> StageOutcome:
        tasks = [
            Task(
                job_id=self.job_id,
                round_number=round_number,
                stage=stage,
                node_id=instruction.node_id,
                parameters=parameters,
                config={
                    **self.stage_config,
                    **instruction.config,
                    "seed": node_seed(self.seed, round_number, instruction.node_id),
                },
            )
            for instruction in instructions
        ]
        return self.transport.run_stage(tasks, timeout_s=self.round_timeout_s)

    def _accepted(
        self,
        outcome: StageOutcome,
        instructions: Sequence[NodeInstruction],
        stage: Stage,
        round_number: int,
        accept: Callable[[Result], Result],
    ) -> list[Result]:
        """Results that answer this stage's tasks as the stage expects, sorted by node id.

        Sorting makes aggregation independent of arrival order, so a resumed run reproduces an
        uninterrupted one bit for bit. A result for another job, round, stage or node, a second
        answer from the same node, or an answer ``accept`` refuses is counted as that node's
        failure, with the reason, and the stage goes on with the others.
        """
        expected = {i.node_id for i in instructions}
        accepted: dict[str, Result] = {}
        for result in outcome.results:
            if result.node_id not in expected or result.node_id in accepted:
                logger.warning("Refused an unexpected or duplicate result from %r", result.node_id)
                continue
            probe = Task(self.job_id, round_number, stage, result.node_id, Parameters({}))
            try:
                result.check_answers(probe)
                accepted[result.node_id] = accept(result)
            except (StaleMessageError, InvalidAnswerError) as exc:
                logger.warning("%s", exc)
                reason = exc.problem if isinstance(exc, InvalidAnswerError) else str(exc)
                outcome.failures[result.node_id] = f"answer refused: {reason}"
        return [accepted[node] for node in sorted(accepted)]


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


def _weighted_train_metrics(results: Sequence[Result]) -> dict[str, float]:
    """Example-weighted mean of what nodes reported about their local training."""
    total = sum(r.num_examples for r in results)
    if total == 0:
        return {}
    names = sorted(set.intersection(*(set(r.metrics) for r in results)))
    return {
        name: float(sum(r.metrics[name] * r.num_examples for r in results) / total)
        for name in names
    }
