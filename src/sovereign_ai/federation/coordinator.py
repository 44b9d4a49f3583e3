"""The coordinator: the one round loop, for simulation and deployment alike.

A round is a workflow of steps over one :class:`~sovereign_ai.federation.workflow.RoundState`
(:mod:`sovereign_ai.federation.steps`: train, then evaluate; feature statistics once, in round
0). The coordinator keeps only the generic work::

    wait until the strategy's minimum of nodes is connected
    for each step: step.run(state, stages)      # stages = bind tasks, deadline, accept answers
    adopt state.aggregate; store.save_round(...) # the round is durable before the next begins

Every answer is held to what its stage expects (:mod:`sovereign_ai.federation.answers`) before a
step sees it; an answer that does not fit is that node's failure, with the reason, and the stage
goes on with the others. A round whose step falls short of its quorum
(:class:`InsufficientNodesError`) or whose aggregate cannot be adopted (:class:`AggregationError`)
is retried from its first step with a fresh sample (up to ``max_round_attempts``); after that the
job stops with that error. Before each attempt the coordinator waits for the strategy's minimum
number of nodes to be connected, as long as ``max_node_wait_s`` allows.
"""

from __future__ import annotations

import hashlib
import logging
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
    InsufficientNodesError,
    InvalidAnswerError,
    SecureAggregationError,
    StaleMessageError,
)
from sovereign_ai.federation.answers import DEFAULT_MAX_EXAMPLES_PER_NODE, AnswerRules
from sovereign_ai.federation.checkpoint import CheckpointStore
from sovereign_ai.federation.job import SecureAggregationSection
from sovereign_ai.federation.node import EVALUATE_METRICS, TRAIN_METRICS
from sovereign_ai.federation.rounds import FederationHistory, RoundObserver, RoundReport
from sovereign_ai.federation.secure_steps import secure_statistics_steps, secure_train_steps
from sovereign_ai.federation.steps import (
    CentralEvaluator,
    EvaluateStep,
    StatisticsStep,
    TrainStep,
)
from sovereign_ai.federation.workflow import Accept, RoundState, RoundStep, StageResults
from sovereign_ai.strategies import check_secure_aggregation_compatible

__all__ = ["CentralEvaluator", "Coordinator", "node_seed"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


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
    secure_aggregation
        SecAgg+ settings; when enabled, every round's updates (and the feature statistics) are
        summed under masks, so the coordinator sees only their sum
        (:mod:`sovereign_ai.federation.secure_steps`). The strategy must use only that sum.
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
        secure_aggregation: SecureAggregationSection | None = None,
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
        self.secure_aggregation = (
            secure_aggregation if secure_aggregation and secure_aggregation.enabled else None
        )
        if self.secure_aggregation is not None:
            check_secure_aggregation_compatible(strategy)
            train: list[RoundStep] = secure_train_steps(
                job_id=job_id, section=self.secure_aggregation, strategy=strategy
            )
        else:
            train = [TrainStep(strategy=strategy, rules=self.rules)]
        self.workflow: list[RoundStep] = [
            *train,
            EvaluateStep(
                strategy=strategy,
                rules=self.rules,
                evaluate_every=evaluate_every,
                total_rounds=rounds,
                central_evaluator=central_evaluator,
            ),
        ]
        """The steps of every round, in order; capabilities add theirs."""

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
        self._notify("on_starting_model", start, parameters)
        history = FederationHistory(resumed_from=start)
        for round_number in range(start + 1, self.rounds + 1):
            self._notify("on_round_start", round_number, self.rounds)
            report, parameters = self._run_round(round_number, parameters)
            # Before the round is saved: an observer that raises (an audit log that cannot be
            # written) stops the job with the round not durable, so it is run again on resume.
            self._notify("on_round_adopted", report, parameters)
            if self.store is not None:
                self.store.save_round(
                    round_number=round_number,
                    parameters=parameters,
                    strategy_state=self.strategy.state_dict(),
                    metrics=report.metrics,
                    record=report.record(),
                )
            history.rounds.append(report)
            self._notify("on_round_end", report)
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
            self._notify("on_waiting", nodes, minimum, waited_s)
            slice_s = self.wait_report_s
            if limit_s is not None:
                slice_s = max(min(slice_s, limit_s - waited_s), 1e-3)
            nodes = self.transport.wait_for_nodes(minimum, timeout_s=slice_s)
        return nodes

    def _with_feature_scaling(self, parameters: Parameters) -> Parameters:
        """Round 0: the set-up workflow (feature statistics) gives round 1's starting model."""
        minimum = self.strategy.min_train_nodes
        steps: list[RoundStep] = [StatisticsStep(rules=self.rules, minimum=minimum)]
        if self.secure_aggregation is not None:
            steps = secure_statistics_steps(
                job_id=self.job_id, section=self.secure_aggregation, minimum=minimum
            )
        return self._run_workflow(0, parameters, steps)[1]

    def _with_retries(self, round_number: int, attempt: Callable[[int], _T]) -> _T:
        """Run ``attempt(number)`` until it succeeds or ``max_round_attempts`` are spent.

        An attempt fails for want of nodes (:class:`InsufficientNodesError`), because its
        aggregate could not be adopted (:class:`AggregationError`), or because secure aggregation
        could not unmask the sum (:class:`SecureAggregationError`, e.g. fewer survivors than its
        threshold: the next attempt runs with fresh keys); the last failure is raised.
        Running out of the wait for nodes to connect is raised at once.
        """
        for number in range(1, self.max_round_attempts + 1):
            try:
                return attempt(number)
            except (InsufficientNodesError, AggregationError, SecureAggregationError) as exc:
                if isinstance(exc, InsufficientNodesError) and exc.stage == "connect":
                    raise  # the operator's wait limit is spent; another attempt would wait again
                logger.warning("Round %d attempt %d: %s", round_number, number, exc)
                self._notify("on_attempt_failed", round_number, number, str(exc))
                if number == self.max_round_attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _run_round(
        self, round_number: int, parameters: Parameters
    ) -> tuple[RoundReport, Parameters]:
        return self._run_workflow(round_number, parameters, self.workflow)

    def _run_workflow(
        self, round_number: int, parameters: Parameters, steps: Sequence[RoundStep]
    ) -> tuple[RoundReport, Parameters]:
        """Run ``steps`` over a fresh round state, retrying the whole round as needed."""

        def attempt(number: int) -> tuple[RoundReport, Parameters]:
            state = RoundState(
                round_number=round_number,
                attempt=number,
                rng=np.random.default_rng([self.seed, round_number, number]),
                parameters=parameters,
                nodes=self._connected_nodes(round_number),
            )
            for step in steps:
                step.run(state, self._run_stage)
            if state.aggregate is None:
                raise AggregationError(
                    f"Round {round_number}: no step of the workflow formed a new model."
                )
            report = RoundReport(
                round_number=round_number,
                cohort=state.cohort,
                answered=state.survivors,
                failures=state.failures,
                metrics=state.metrics,
                attempts=number,
            )
            return report, state.aggregate

        return self._with_retries(round_number, attempt)

    # Stages -------------------------------------------------------------------------------------
    def _run_stage(
        self,
        state: RoundState,
        stage: Stage,
        instructions: Sequence[NodeInstruction],
        *,
        parameters: Parameters | Callable[[str], Parameters],
        accept: Accept,
    ) -> StageResults:
        """Bind one task per instructed node, collect until the deadline, accept the answers."""
        tasks = [
            Task(
                job_id=self.job_id,
                round_number=state.round_number,
                stage=stage,
                node_id=instruction.node_id,
                parameters=parameters(instruction.node_id) if callable(parameters) else parameters,
                config={
                    **self.stage_config,
                    **instruction.config,
                    "seed": node_seed(self.seed, state.round_number, instruction.node_id),
                },
            )
            for instruction in instructions
        ]
        outcome = self.transport.run_stage(tasks, timeout_s=self.round_timeout_s)
        answered = self._accepted(
            outcome, instructions, stage=stage, round_number=state.round_number, accept=accept
        )
        self._notify("on_stage_end", state.round_number, stage, answered)
        return answered

    def _accepted(
        self,
        outcome: StageOutcome,
        instructions: Sequence[NodeInstruction],
        *,
        stage: Stage,
        round_number: int,
        accept: Accept,
    ) -> StageResults:
        """Results that answer this stage's tasks as the stage expects, sorted by node id.

        Sorting makes aggregation independent of arrival order, so a resumed run reproduces an
        uninterrupted one bit for bit. A result for another job, round, stage or node, a second
        answer from the same node, or an answer ``accept`` refuses is counted as that node's
        failure, with the reason, and the stage goes on with the others.
        """
        expected = {i.node_id for i in instructions}
        accepted: dict[str, Result] = {}
        failures = dict(outcome.failures)
        for result in outcome.results:
            if (
                result.node_id not in expected
                or result.node_id in accepted
                or result.contributors != 1
            ):
                logger.warning("Refused an unexpected or duplicate result from %r", result.node_id)
                continue
            probe = Task(self.job_id, round_number, stage, result.node_id, Parameters({}))
            try:
                result.check_answers(probe)
                accepted[result.node_id] = accept(result)
            except (StaleMessageError, InvalidAnswerError) as exc:
                logger.warning("%s", exc)
                reason = exc.problem if isinstance(exc, InvalidAnswerError) else str(exc)
                failures[result.node_id] = f"answer refused: {reason}"
        return StageResults([accepted[node] for node in sorted(accepted)], failures)

    def _notify(self, event: str, *args: object) -> None:
        """Tell the observer, if it listens for ``event`` (observers implement what they need)."""
        handler = getattr(self.observer, event, None)
        if handler is not None:
            handler(*args)
