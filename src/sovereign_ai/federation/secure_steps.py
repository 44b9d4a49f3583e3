"""The steps of a secure round: SecAgg+'s four stages, then the strategy on the unmasked sum.

A secure train round is ``advertise keys → share keys → masked input (train) → unmask →
aggregate``, then the plain evaluate step; the job's set-up statistics are the same four stages
with ``statistics`` as the input, then the scaling of the starting model. The steps share one
:class:`~sovereign_ai.secagg.aggregation.CoordinatorSession` through the round state; every stage
goes on with the survivors of the one before. A node whose answer does not fit is that node's
failure (and, from stage 3 on, a dropout the unmasking recovers from); fewer than ``t`` survivors
raises :class:`~sovereign_ai.errors.BelowThresholdError`, and the coordinator retries the round
with fresh keys (a new session) — nothing of the failed attempt is ever unmasked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.core import ConfigValue, NodeInstruction, Parameters, Result, Stage, Strategy
from sovereign_ai.errors import (
    BelowThresholdError,
    ConfigError,
    InsufficientNodesError,
    InvalidAnswerError,
    SecureAggregationError,
)
from sovereign_ai.federation.answers import ReportedTensor, train_reports, with_reports
from sovereign_ai.federation.job import SecureAggregationSection
from sovereign_ai.federation.secure_wire import (
    advert_from_tensors,
    adverts_to_tensors,
    masked_from_tensors,
    reveal_from_tensors,
    sealed_from_tensors,
    with_shares,
)
from sovereign_ai.federation.steps import aggregate_with, record_stage, scaled_model
from sovereign_ai.federation.workflow import Accept, RoundState, RoundStep, StageRunner
from sovereign_ai.secagg.adverts import SessionId
from sovereign_ai.secagg.aggregation import CoordinatorSession
from sovereign_ai.secagg.encoding import (
    decode_exact_sum,
    decode_update_sum,
    encoded_length,
    exact_length,
)
from sovereign_ai.secagg.graph import Neighbourhood, choose_neighbourhood, communication_graph
from sovereign_ai.secagg.node_session import Reveal, check_threshold
from sovereign_ai.secagg.quantisation import check_fits

__all__ = [
    "SECURE_SUM_ID",
    "SecureAggregationSummary",
    "SecureRound",
    "modulus_bits",
    "secure_statistics_steps",
    "secure_train_steps",
    "summarise",
]

CohortChooser = Callable[[RoundState], list[NodeInstruction]]
"""Chooses a round's cohort (and each node's settings) from the round state."""

_KEY = "secure_aggregation"
SECURE_SUM_ID = "secure-aggregate"
"""The node id of the one result that stands for the survivors' summed updates."""


@dataclass
class SecureRound:
    """What the secure steps of one round attempt share: the session and the nodes' settings."""

    session: CoordinatorSession
    instructions: dict[str, NodeInstruction]
    settings: dict[str, ConfigValue]
    unmasked: NDArray[np.uint64] | None = None


def _secure(state: RoundState) -> SecureRound:
    secure = state.extras.get(_KEY)
    if not isinstance(secure, SecureRound):
        raise SecureAggregationError("The secure round has not advertised keys yet.")
    return secure


def _accepting(keep: Callable[[Result], object]) -> Accept:
    """An acceptance rule that keeps an answer with ``keep``; a secure-aggregation error it raises
    makes the answer that node's failure (:class:`InvalidAnswerError`)."""

    def accept(result: Result) -> Result:
        try:
            keep(result)
        except SecureAggregationError as exc:
            raise InvalidAnswerError(
                node_id=result.node_id, stage=result.stage.value,
                round_number=result.round_number, problem=str(exc),
            ) from exc  # fmt: skip
        return result

    return accept


def _neighbourhood(section: SecureAggregationSection, nodes: int) -> Neighbourhood:
    chosen = choose_neighbourhood(
        nodes, dropout_rate=section.dropout_rate, corruption_rate=section.corruption_rate
    )
    if section.threshold is None:
        return chosen
    check_threshold(section.threshold, chosen.holders, owner="[secure_aggregation]")
    return Neighbourhood(nodes=nodes, degree=chosen.degree, threshold=section.threshold)


@dataclass(frozen=True)
class SecureAggregationSummary:
    """SecAgg+'s parameters for a cohort of ``nodes``, in the terms the docs use.

    Parameters
    ----------
    nodes
        ``n``: nodes per round.
    neighbours
        ``k``: each node's neighbours (``n - 1``: every other node).
    threshold
        ``t``: shares needed to rebuild a node's secret, of its ``k + 1`` holders.
    modulus_bits
        The masked inputs live in ``Z_{2**b}``.
    tolerated_dropouts
        Holders of one node's shares that may drop out with the round still completing.
    """

    nodes: int
    neighbours: int
    threshold: int
    modulus_bits: int
    tolerated_dropouts: int

    def describe(self) -> str:
        """One sentence for a person."""
        return (
            f"SecAgg+ with n = {self.nodes} nodes per round, k = {self.neighbours} neighbours "
            f"each, threshold t = {self.threshold} of {self.neighbours + 1} share holders, "
            f"modulus 2^{self.modulus_bits}; up to {self.tolerated_dropouts} dropout(s) per "
            "neighbourhood tolerated"
        )


def summarise(section: SecureAggregationSection, nodes: int) -> SecureAggregationSummary:
    """The protocol's parameters for a cohort of ``nodes`` under ``section``."""
    neighbourhood = _neighbourhood(section, nodes)
    return SecureAggregationSummary(
        nodes=nodes,
        neighbours=neighbourhood.degree,
        threshold=neighbourhood.threshold,
        modulus_bits=modulus_bits(section, nodes),
        tolerated_dropouts=neighbourhood.tolerated_dropouts,
    )


def modulus_bits(section: SecureAggregationSection, cohort_size: int) -> int:
    """The job's modulus, or the smaller of 32 and 64 bits that the cohort's sum fits.

    Raises
    ------
    ConfigError
        If the sum does not fit the configured (or the largest) modulus, saying what to change.
    """
    candidates = [section.modulus_bits] if section.modulus_bits is not None else [32, 64]
    for bits in candidates:
        try:
            check_fits(
                cohort_size=cohort_size, quantisation_bits=section.quantisation_bits,
                modulus_bits=bits, max_weight=section.max_weight,
            )  # fmt: skip
        except ConfigError:
            if bits == candidates[-1]:
                raise
            continue
        return bits
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class AdvertiseKeysStep:
    """Stage 1: choose the cohort and its graph; every cohort node advertises signed keys.

    A train input is the update followed by the strategy's ``reports`` (summed with it).
    """

    job_id: str
    section: SecureAggregationSection
    input_stage: Stage
    choose_cohort: CohortChooser
    reports: tuple[ReportedTensor, ...] = ()

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Open the round's session and keep the advertisements that arrived."""
        instructions = {i.node_id: i for i in self.choose_cohort(state)}
        cohort = sorted(instructions)
        state.cohort = cohort
        if len(cohort) < 2:
            raise InsufficientNodesError(
                stage=Stage.SECAGG_ADVERTISE_KEYS.value, round_number=state.round_number,
                answered=cohort, missing=[], minimum=2,
                reason="Secure aggregation needs at least two nodes: one alone would be its sum.",
            )  # fmt: skip
        neighbourhood = _neighbourhood(self.section, len(cohort))
        bits = modulus_bits(self.section, len(cohort))
        model = state.parameters
        if self.input_stage is Stage.STATISTICS:
            if "input_mean" not in model or "input_std" not in model:
                raise ConfigError(
                    "standardize_features needs a model with 'input_mean' and 'input_std' "
                    f"tensors; this model has {', '.join(model)}."
                )
            width = 1 + 2 * int(model["input_mean"].size)  # count, sums, sums of squares
            length = exact_length(width, modulus_bits=bits, cohort_size=len(cohort))
        else:
            length = encoded_length(with_reports(model, self.reports).num_scalars)
        session = CoordinatorSession(
            session=SessionId(self.job_id, state.round_number, state.attempt),
            graph=communication_graph(cohort, degree=neighbourhood.degree, rng=state.rng),
            neighbourhood=neighbourhood, modulus_bits=bits, length=length,
        )  # fmt: skip
        settings: dict[str, ConfigValue] = {
            "secagg_attempt": state.attempt,
            "secagg_threshold": neighbourhood.threshold,
            "secagg_modulus_bits": bits,
        }
        secure = SecureRound(session=session, instructions=instructions, settings=settings)
        state.extras[_KEY] = secure

        def keep(result: Result) -> None:
            session.accept_advert(advert_from_tensors(result.node_id, result.parameters))

        accept = _accepting(keep)

        tasks = [
            NodeInstruction(
                node, {**settings, "secagg_neighbours": json.dumps(sorted(session.graph[node]))}
            )
            for node in cohort
        ]
        answered = stages(
            state, Stage.SECAGG_ADVERTISE_KEYS, tasks, parameters=Parameters({}), accept=accept
        )
        record_stage(state, answered)
        _require_threshold(state, session, "nodes that advertised keys")


@dataclass(frozen=True)
class ShareKeysStep:
    """Stage 2: each node gets its neighbours' keys and sends them its encrypted shares."""

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Relay the advertisements; keep the encrypted shares."""
        secure = _secure(state)
        session = secure.session

        def keep(result: Result) -> None:
            session.accept_shares(result.node_id, sealed_from_tensors(result.parameters))

        accept = _accepting(keep)

        tasks = [NodeInstruction(node, dict(secure.settings)) for node in state.survivors]
        answered = stages(
            state, Stage.SECAGG_SHARE_KEYS, tasks, accept=accept,
            parameters=lambda node: adverts_to_tensors(session.adverts_for(node)),
        )  # fmt: skip
        record_stage(state, answered)
        for node, why in session.close_shares().items():
            state.failures.setdefault(node, f"dropped from secure aggregation: {why}")
        state.survivors = sorted(session.sealed)
        _require_threshold(state, session, "nodes that shared their secrets")


@dataclass(frozen=True)
class MaskedInputStep:
    """Stage 3: each node computes its input (train or statistics) and sends it masked."""

    input_stage: Stage
    section: SecureAggregationSection

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Send each survivor the model and its shares; keep the masked inputs."""
        secure = _secure(state)
        session = secure.session

        def keep(result: Result) -> None:
            session.accept_masked(result.node_id, masked_from_tensors(result.parameters))

        accept = _accepting(keep)

        settings: dict[str, ConfigValue] = {
            **secure.settings,
            "secagg_input": self.input_stage.value,
            "secagg_cohort_size": len(state.cohort),
            "secagg_clipping_range": self.section.clipping_range,
            "secagg_quantisation_bits": self.section.quantisation_bits,
            "secagg_max_weight": self.section.max_weight,
        }
        model = state.parameters if self.input_stage is Stage.TRAIN else Parameters({})
        tasks = [
            NodeInstruction(node, {**secure.instructions[node].config, **settings})
            for node in state.survivors
        ]
        answered = stages(
            state, Stage.SECAGG_MASKED_INPUT, tasks, accept=accept,
            parameters=lambda node: with_shares(model, session.shares_for(node)),
        )  # fmt: skip
        record_stage(state, answered)
        _require_threshold(state, session, "nodes that sent their masked input")


@dataclass(frozen=True)
class UnmaskStep:
    """Stage 4: survivors reveal the shares that remove every mask; the sum is unmasked."""

    minimum: int

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Collect the revealed shares and unmask the sum of the survivors' inputs."""
        secure = _secure(state)
        session = secure.session
        survivors = session.survivors
        if len(survivors) < self.minimum:
            raise InsufficientNodesError(
                stage=Stage.SECAGG_MASKED_INPUT.value, round_number=state.round_number,
                answered=survivors, missing=sorted(set(state.cohort) - set(survivors)),
                minimum=self.minimum,
            )  # fmt: skip
        reveals: dict[str, Reveal] = {}

        def keep(result: Result) -> None:
            reveals[result.node_id] = reveal_from_tensors(result.parameters)

        accept = _accepting(keep)

        tasks = []
        for node in survivors:
            alive, dropped = session.unmask_request(node)
            config = {
                **secure.settings,
                "secagg_survivors": json.dumps(alive),
                "secagg_dropped": json.dumps(dropped),
            }
            tasks.append(NodeInstruction(node, config))
        answered = stages(
            state, Stage.SECAGG_UNMASK, tasks, parameters=Parameters({}), accept=accept
        )
        for node, why in answered.failures.items():
            state.failures.setdefault(node, why)
        secure.unmasked = session.unmask(reveals)
        state.survivors = survivors  # whose inputs the sum holds


@dataclass(frozen=True)
class SecureAggregateStep:
    """The strategy's next model from the unmasked example-weighted sum of the updates.

    The mean handed to the strategy holds the model's tensors, then the strategy's reports
    (:func:`~sovereign_ai.federation.answers.train_reports`), each the mean of the survivors'.
    """

    strategy: Strategy
    section: SecureAggregationSection

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Decode the sum, hand the strategy its weighted mean, and set ``state.aggregate``."""
        secure = _secure(state)
        weighted_sum, total_weight = decode_update_sum(
            _unmasked(secure), clipping_range=self.section.clipping_range,
            quantisation_bits=self.section.quantisation_bits,
        )  # fmt: skip
        answer = with_reports(state.parameters, train_reports(self.strategy))
        mean = answer.with_vector(weighted_sum / total_weight)
        summed = Result(
            job_id=secure.session.session.job_id,
            round_number=state.round_number, stage=Stage.TRAIN, node_id=SECURE_SUM_ID,
            num_examples=total_weight, parameters=mean, contributors=len(state.survivors),
        )  # fmt: skip
        state.aggregate = aggregate_with(self.strategy, state, [summed])
        state.metrics["train_nodes"] = float(len(state.survivors))


@dataclass(frozen=True)
class SecureStatisticsStep:
    """The starting model scaled by the federation's feature statistics, summed securely."""

    def run(self, state: RoundState, stages: StageRunner) -> None:
        """Decode count, sums and sums of squares; set ``state.aggregate``."""
        secure = _secure(state)
        totals = decode_exact_sum(
            _unmasked(secure),
            modulus_bits=secure.session.modulus_bits,
            cohort_size=len(state.cohort),
        )
        width = int(state.parameters["input_mean"].size)
        count = float(totals[0])
        state.aggregate = scaled_model(
            state.parameters, count=count, total=totals[1 : 1 + width], total_sq=totals[1 + width :]
        )


def _unmasked(secure: SecureRound) -> NDArray[np.uint64]:
    if secure.unmasked is None:
        raise SecureAggregationError("The round's sum was not unmasked; run UnmaskStep first.")
    return secure.unmasked


def _require_threshold(state: RoundState, session: CoordinatorSession, what: str) -> None:
    if len(state.survivors) < session.threshold:
        raise BelowThresholdError(
            what=what, available=len(state.survivors), threshold=session.threshold
        )


def secure_train_steps(
    *, job_id: str, section: SecureAggregationSection, strategy: Strategy
) -> list[RoundStep]:
    """The steps of a secure train round (evaluation follows as in a plain round)."""

    def cohort(state: RoundState) -> list[NodeInstruction]:
        return strategy.configure_train(
            round_number=state.round_number, parameters=state.parameters, nodes=state.nodes,
            rng=state.rng,
        )  # fmt: skip

    return [
        AdvertiseKeysStep(job_id, section, Stage.TRAIN, cohort, train_reports(strategy)),
        ShareKeysStep(),
        MaskedInputStep(Stage.TRAIN, section),
        UnmaskStep(minimum=strategy.min_train_nodes),
        SecureAggregateStep(strategy, section),
    ]


def secure_statistics_steps(
    *, job_id: str, section: SecureAggregationSection, minimum: int
) -> list[RoundStep]:
    """The set-up steps of a secure job: feature statistics summed under masks."""

    def everyone(state: RoundState) -> list[NodeInstruction]:
        return [NodeInstruction(node) for node in state.nodes]

    return [
        AdvertiseKeysStep(job_id, section, Stage.STATISTICS, everyone),
        ShareKeysStep(),
        MaskedInputStep(Stage.STATISTICS, section),
        UnmaskStep(minimum=minimum),
        SecureStatisticsStep(),
    ]
