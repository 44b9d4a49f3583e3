"""The rules of a :class:`~sovereign_ai.governance.NodePolicy`, as pure checks over plain facts.

The federation layer reads the facts from a job's tasks
(:mod:`sovereign_ai.federation.governed_node`) and asks, in this order:

1. :func:`check_coordinator` — is the coordinator this node is connected to one it works for?
2. :func:`check_job` — at the first task of a job: may the node join it, on the terms the job
   declares with every task (:class:`JobTerms`)?
3. :func:`check_task` — before each task's handler runs: may what this task asks leave
   (:class:`TaskRequest`)?
4. :func:`release` — on the answer, before privacy and masking: is it computed over enough rows,
   and which of its metrics may leave?

Each check raises :class:`~sovereign_ai.errors.PolicyRefusalError` with a :class:`RefusalCode`
and a message for the node's own log; only the code goes back to the coordinator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sovereign_ai.errors import PolicyRefusalError
from sovereign_ai.governance.policy import NodePolicy

__all__ = [
    "CoordinatorIdentity",
    "JobTerms",
    "Output",
    "RefusalCode",
    "TaskRequest",
    "check_coordinator",
    "check_job",
    "check_task",
    "release",
]


class RefusalCode(StrEnum):
    """Why a node's policy refused: the only part of a refusal that leaves the node."""

    COORDINATOR_UNVERIFIED = "policy.coordinator_unverified"
    """The policy names coordinators or jurisdictions, and no coordinator certificate was
    verified (a simulation, or a connection without TLS)."""
    COORDINATOR_NOT_ALLOWED = "policy.coordinator_not_allowed"
    """The coordinator's certificate is not one of ``allowed_coordinators``."""
    COORDINATOR_JURISDICTION = "policy.coordinator_jurisdiction_not_allowed"
    """The coordinator's certified jurisdiction (or its lack of one) is not allowed."""
    SECURE_AGGREGATION_REQUIRED = "policy.secure_aggregation_required"
    """The job, or this task, would let an update or statistics leave unmasked."""
    PRIVACY_MODE_NOT_ALLOWED = "policy.privacy_mode_not_allowed"
    """The job's ``[privacy] mode`` is not one of ``required_privacy_modes``."""
    EPSILON_OVER_LIMIT = "policy.epsilon_over_limit"
    """The job would cost more than ``max_epsilon_per_job``, or has no differential privacy."""
    COHORT_TOO_SMALL = "policy.cohort_too_small"
    """The job's minimum cohort, or this round's secure sum, is smaller than ``min_cohort``."""
    TOO_FEW_ROWS = "policy.too_few_rows"
    """Statistics or metrics computed over fewer rows than ``min_rows_per_statistic``."""
    MODEL_NOT_ALLOWED = "policy.model_not_allowed"
    """The job's model is not one of ``allowed_models``."""
    MODEL_TOO_LARGE = "policy.model_too_large"
    """The job's model has more parameters than ``max_parameters``."""
    OUTPUT_NOT_ALLOWED = "policy.output_not_allowed"
    """This kind of answer may not leave (``[outputs]``)."""
    TOO_MANY_ROUNDS = "policy.too_many_rounds"
    """The job has, or this task is in, more rounds than ``max_rounds``."""
    TERMS_CHANGED = "policy.terms_changed"
    """A task contradicts the terms the job declared at its first task (model, secure
    aggregation, privacy mode, minimum cohort)."""
    TERMS_MISSING = "policy.terms_missing"
    """The task does not declare a term a rule of the policy needs (an older coordinator)."""


@dataclass(frozen=True)
class CoordinatorIdentity:
    """The coordinator a node is connected to, from its certificate as TLS verified it.

    Parameters
    ----------
    name
        The coordinator's name (its certificate's common name).
    fingerprint
        SHA-256 of the certificate's DER bytes, 64 lowercase hex digits.
    jurisdiction
        The jurisdiction the federation CA certified (``jurisdictionCountryName``), if any.
    """

    name: str
    fingerprint: str
    jurisdiction: str | None = None


@dataclass(frozen=True)
class JobTerms:
    """What a job declares with every task: a node decides at the first task whether to join.

    ``None`` means the task did not declare that term; a rule that needs it then refuses
    (:attr:`RefusalCode.TERMS_MISSING`).

    Parameters
    ----------
    model
        The model's name.
    model_parameters
        How many parameters that model has, as this node builds it from the job's options
        (``None`` when no rule needs it).
    rounds
        The job's rounds.
    secure_aggregation
        Whether updates and statistics are summed under secure aggregation.
    privacy_mode
        The job's ``[privacy] mode`` (``"none"`` without differential privacy).
    min_nodes
        The fewest nodes whose updates the job aggregates in a round (its strategy's minimum).
    """

    model: str
    model_parameters: int | None = None
    rounds: int | None = None
    secure_aggregation: bool | None = None
    privacy_mode: str | None = None
    min_nodes: int | None = None


class Output(StrEnum):
    """What an answer carries out of the node, by kind."""

    UPDATE = "update"
    STATISTICS = "statistics"
    EVALUATION = "evaluation"


@dataclass(frozen=True)
class TaskRequest:
    """What one task asks the node to let leave, as the node reads it before answering.

    Parameters
    ----------
    round_number
        The task's round.
    output
        What the answer carries; ``None`` for secure aggregation's key and unmasking stages,
        which carry nothing computed from the node's rows.
    is_masked
        Whether the output leaves only masked, summed with the cohort's.
    cohort_size
        How many nodes' inputs the sum this task feeds holds, where the node is told (the
        masked-input stage's cohort, the unmasking stage's survivors).
    privacy_mode
        The task's privacy mode, for an update (``"none"`` without differential privacy).
    epsilon
        For an update under differential privacy: ε of the whole job at the policy's δ, as the
        node computed it from the task's noise settings (``None`` when no rule needs it).
    model_parameters
        How many values the model tensors the task carries hold (``None``: it carries none).
    """

    round_number: int
    output: Output | None
    is_masked: bool = False
    cohort_size: int | None = None
    privacy_mode: str = "none"
    epsilon: float | None = None
    model_parameters: int | None = None


def _refuse(code: RefusalCode, detail: str) -> PolicyRefusalError:
    return PolicyRefusalError(code, detail=detail)


def check_coordinator(policy: NodePolicy, coordinator: CoordinatorIdentity | None) -> None:
    """Refuse a coordinator that ``policy`` does not let this node work for.

    Raises
    ------
    PolicyRefusalError
        ``coordinator_unverified``, ``coordinator_not_allowed`` or
        ``coordinator_jurisdiction_not_allowed``.
    """
    if not (policy.allowed_coordinators or policy.coordinator_jurisdictions):
        return
    if coordinator is None:
        raise _refuse(
            RefusalCode.COORDINATOR_UNVERIFIED,
            "the policy names the coordinators or jurisdictions this node works for, but no "
            "coordinator certificate was verified on this connection (simulation, or TLS off)",
        )
    if policy.allowed_coordinators and coordinator.fingerprint not in policy.allowed_coordinators:
        raise _refuse(
            RefusalCode.COORDINATOR_NOT_ALLOWED,
            f"coordinator {coordinator.name!r} presents certificate SHA-256 "
            f"{coordinator.fingerprint}, which is not in allowed_coordinators (a renewed "
            "certificate has a new fingerprint: add it once you have checked it)",
        )
    allowed = policy.coordinator_jurisdictions
    if allowed and coordinator.jurisdiction not in allowed:
        certified = coordinator.jurisdiction or "no jurisdiction"
        raise _refuse(
            RefusalCode.COORDINATOR_JURISDICTION,
            f"coordinator {coordinator.name!r} is certified under {certified}; "
            f"coordinator_jurisdictions allows {', '.join(allowed)}",
        )


def _missing(term: str, rule: str) -> PolicyRefusalError:
    return _refuse(
        RefusalCode.TERMS_MISSING,
        f"the job does not declare its {term}, which rule {rule!r} needs (the coordinator runs "
        "an older version of the framework)",
    )


def check_job(policy: NodePolicy, terms: JobTerms) -> None:
    """Refuse a job whose declared terms break ``policy``: the node does not join it.

    Raises
    ------
    PolicyRefusalError
        With the code of the first rule the job breaks.
    """
    if policy.allowed_models and terms.model not in policy.allowed_models:
        raise _refuse(
            RefusalCode.MODEL_NOT_ALLOWED,
            f"the job trains model {terms.model!r}; allowed_models lists "
            f"{', '.join(policy.allowed_models)}",
        )
    if policy.max_parameters is not None:
        if terms.model_parameters is None:
            raise _missing("model's size", "max_parameters")
        _check_parameters(policy, terms.model_parameters, what="the job's model")
    if policy.max_rounds is not None:
        if terms.rounds is None:
            raise _missing("rounds", "max_rounds")
        _check_rounds(policy, terms.rounds, what="the job has {} rounds")
    if policy.require_secure_aggregation:
        if terms.secure_aggregation is None:
            raise _missing("secure aggregation", "require_secure_aggregation")
        if not terms.secure_aggregation:
            raise _refuse(
                RefusalCode.SECURE_AGGREGATION_REQUIRED,
                "the job runs without secure aggregation: this node's updates would reach the "
                "coordinator one by one",
            )
    if policy.required_privacy_modes or policy.max_epsilon_per_job is not None:
        if terms.privacy_mode is None:
            raise _missing("privacy mode", "required_privacy_modes / max_epsilon_per_job")
        _check_privacy_mode(policy, terms.privacy_mode)
    if policy.min_cohort > 1:
        if terms.min_nodes is None:
            raise _missing("minimum cohort", "min_cohort")
        _check_cohort(policy, terms.min_nodes, what="the job aggregates as few as")


def check_task(policy: NodePolicy, terms: JobTerms, request: TaskRequest) -> None:
    """Refuse a task of an accepted job whose answer ``policy`` does not let leave.

    ``terms`` are those the job declared at its first task; a task that contradicts them is
    refused, so a job cannot switch off secure aggregation or privacy half-way.

    Raises
    ------
    PolicyRefusalError
        With the code of the first rule the task breaks.
    """
    if policy.max_rounds is not None:
        if terms.rounds is not None:  # a resumed job may declare more rounds than at first
            _check_rounds(policy, terms.rounds, what="the job now has {} rounds")
        _check_rounds(policy, request.round_number, what="this task is in round {}")
    if request.model_parameters is not None and policy.max_parameters is not None:
        _check_parameters(policy, request.model_parameters, what="the task's model")
    if request.cohort_size is not None:
        _check_cohort(policy, request.cohort_size, what="this round's secure sum holds")
    if request.output is None:
        return
    _check_output_allowed(policy, request.output)
    if request.output in (Output.UPDATE, Output.STATISTICS) and not request.is_masked:
        if policy.require_secure_aggregation:
            raise _refuse(
                RefusalCode.SECURE_AGGREGATION_REQUIRED,
                f"the task asks for this node's {request.output.value} unmasked",
            )
        if terms.secure_aggregation:
            raise _refuse(
                RefusalCode.TERMS_CHANGED,
                f"the job declared secure aggregation, but the task asks for this node's "
                f"{request.output.value} unmasked",
            )
    if request.output is Output.UPDATE:
        _check_update_privacy(policy, terms, request)


def release(
    policy: NodePolicy, output: Output | None, *, rows: int, metrics: Mapping[str, float]
) -> dict[str, float]:
    """The metrics of an answer that may leave; refuse an answer over too few rows.

    Parameters
    ----------
    policy
        The node's policy.
    output
        What the answer carries.
    rows
        How many of the node's rows the answer was computed over (its example count).
    metrics
        The metrics the answer carries.

    Raises
    ------
    PolicyRefusalError
        ``too_few_rows``, or ``output_not_allowed`` if no metric of an evaluation may leave.
    """
    if output in (Output.STATISTICS, Output.EVALUATION) and rows < policy.min_rows_per_statistic:
        raise _refuse(
            RefusalCode.TOO_FEW_ROWS,
            f"the {output.value} would be computed over {rows} row(s); min_rows_per_statistic "
            f"is {policy.min_rows_per_statistic}",
        )
    if output is Output.EVALUATION:
        allowed = policy.outputs.evaluation_metrics(tuple(metrics))
        if metrics and not allowed:
            raise _refuse(
                RefusalCode.OUTPUT_NOT_ALLOWED,
                f"none of the evaluation metrics {', '.join(metrics)} may leave ([outputs] "
                "evaluate)",
            )
        return {name: metrics[name] for name in allowed}
    if output is Output.UPDATE and not policy.outputs.train_metrics:
        return {}
    return dict(metrics)


def _check_parameters(policy: NodePolicy, count: int, *, what: str) -> None:
    if policy.max_parameters is not None and count > policy.max_parameters:
        raise _refuse(
            RefusalCode.MODEL_TOO_LARGE,
            f"{what} has {count:,} parameters; max_parameters is {policy.max_parameters:,}",
        )


def _check_rounds(policy: NodePolicy, rounds: int, *, what: str) -> None:
    """``what`` says what ``rounds`` counts, e.g. ``"the job has {} rounds"``."""
    if policy.max_rounds is not None and rounds > policy.max_rounds:
        raise _refuse(
            RefusalCode.TOO_MANY_ROUNDS,
            f"{what.format(rounds)}; max_rounds is {policy.max_rounds}",
        )


def _check_cohort(policy: NodePolicy, size: int, *, what: str) -> None:
    if size < policy.min_cohort:
        raise _refuse(
            RefusalCode.COHORT_TOO_SMALL,
            f"{what} {size} node(s); min_cohort is {policy.min_cohort}",
        )


def _check_privacy_mode(policy: NodePolicy, mode: str) -> None:
    modes = policy.required_privacy_modes
    if modes and mode not in modes:
        raise _refuse(
            RefusalCode.PRIVACY_MODE_NOT_ALLOWED,
            f"the job's privacy mode is {mode!r}; required_privacy_modes allows {', '.join(modes)}",
        )
    if policy.max_epsilon_per_job is not None and mode == "none":
        raise _refuse(
            RefusalCode.EPSILON_OVER_LIMIT,
            "the job has no differential privacy, so its ε is unbounded; max_epsilon_per_job "
            f"is {policy.max_epsilon_per_job:g}",
        )


def _check_output_allowed(policy: NodePolicy, output: Output) -> None:
    allowed = {
        Output.UPDATE: policy.outputs.train,
        Output.STATISTICS: policy.outputs.statistics,
        Output.EVALUATION: policy.outputs.allows_evaluation,
    }[output]
    if not allowed:
        raise _refuse(
            RefusalCode.OUTPUT_NOT_ALLOWED,
            f"[outputs] does not let this node's {output.value} leave",
        )


def _check_update_privacy(policy: NodePolicy, terms: JobTerms, request: TaskRequest) -> None:
    """An update's privacy: the job's declared mode, an allowed one, within the ε limit."""
    if terms.privacy_mode is not None and request.privacy_mode != terms.privacy_mode:
        raise _refuse(
            RefusalCode.TERMS_CHANGED,
            f"the job declared privacy mode {terms.privacy_mode!r}, but the task asks for an "
            f"update in mode {request.privacy_mode!r}",
        )
    _check_privacy_mode(policy, request.privacy_mode)
    limit = policy.max_epsilon_per_job
    if limit is None or request.privacy_mode == "none":
        return
    if request.epsilon is None:
        raise _missing("noise settings", "max_epsilon_per_job")
    if not request.epsilon <= limit:  # also refuses a NaN
        raise _refuse(
            RefusalCode.EPSILON_OVER_LIMIT,
            f"the job's noise settings cost this node's data ε = {request.epsilon:.3f} at "
            f"δ = {policy.epsilon_delta:g} over its rounds; max_epsilon_per_job is {limit:g}",
        )
