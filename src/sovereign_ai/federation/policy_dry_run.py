"""A node's policy against a job file, before the node joins: ``sovereign node check --policy``.

The dry run judges the job on the terms its coordinator would write into every task
(:func:`~sovereign_ai.federation.assembly.stage_config`, read back with
:func:`~sovereign_ai.federation.governed_node.declared_terms`), with the rule functions the node
runs at every task (:func:`~sovereign_ai.governance.check_job`,
:func:`~sovereign_ai.governance.check_task`, :func:`~sovereign_ai.governance.release`): there is
no second copy of the rules here, only the facts a job file gives.

Some facts exist only once the node is connected: the coordinator's certificate (fingerprint and
certified jurisdiction), the noise each training task carries (ε), how many sites each secure sum
holds, and the rows each answer is computed over. :attr:`PolicyDryRun.at_connection` names the
rules that wait for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovereign_ai.errors import PolicyRefusalError
from sovereign_ai.federation.assembly import initial_parameters, stage_config
from sovereign_ai.federation.governed_node import declared_terms
from sovereign_ai.federation.job import JobSpec
from sovereign_ai.federation.node import EVALUATE_METRICS
from sovereign_ai.governance import (
    JobTerms,
    NodePolicy,
    Output,
    TaskRequest,
    check_job,
    check_task,
    release,
)

__all__ = ["PolicyDryRun", "TaskRefusal", "dry_run_policy"]


@dataclass(frozen=True)
class TaskRefusal:
    """A kind of task of an accepted job that the node would refuse (the job goes on).

    Parameters
    ----------
    output
        What those tasks would carry out of the node.
    refusal
        The refusal, with its code (what the coordinator sees) and detail (what only the node's
        log shows).
    """

    output: Output
    refusal: PolicyRefusalError


@dataclass(frozen=True)
class PolicyDryRun:
    """What a node's policy would decide about a job, as far as the job file tells.

    Parameters
    ----------
    terms
        The job's terms as the node would read them from its first task.
    refusal
        Why the node would refuse the job (``None``: it would join).
    task_refusals
        Kinds of task the node would refuse while taking part in the job.
    metrics_kept
        The evaluation metrics that would leave (the others are removed from the answers);
        ``None`` if the job asks for no evaluation or the node would refuse it.
    checked
        The rules judged now, in a few words each.
    at_connection
        The rules that need facts known only once the node is connected, in a few words each.
    """

    terms: JobTerms
    refusal: PolicyRefusalError | None
    task_refusals: tuple[TaskRefusal, ...]
    metrics_kept: tuple[str, ...] | None
    checked: tuple[str, ...]
    at_connection: tuple[str, ...]

    @property
    def is_accepted(self) -> bool:
        """Whether the node would join the job."""
        return self.refusal is None


def dry_run_policy(
    policy: NodePolicy,
    spec: JobSpec,
    *,
    num_features: int,
    num_classes: int,
    rows: int | None = None,
) -> PolicyDryRun:
    """Judge ``spec`` by ``policy`` as the node would at the job's first task.

    Parameters
    ----------
    policy
        The node's policy.
    spec
        The job.
    num_features, num_classes
        The model's input and output sizes, as the job deploys them.
    rows
        How many rows the node's data file holds (``None``: unknown). The node answers over part
        of them (some are kept back for local evaluation), so a file with fewer rows than
        ``min_rows_per_statistic`` is refused for certain; one with more is checked on every
        answer.

    Returns
    -------
    PolicyDryRun
        The decision, and which rules were and were not judged.

    Raises
    ------
    ConfigError
        If the job's model cannot be built on this machine (only when ``max_parameters`` needs
        its size).
    """
    config = stage_config(spec, num_features=num_features, num_classes=num_classes)
    size = None
    if policy.max_parameters is not None:  # as the node counts it: only when a rule needs it
        model = initial_parameters(spec, num_features=num_features, num_classes=num_classes)
        size = model.num_scalars
    terms = declared_terms(config, model_parameters=size)
    checked = _checked(policy, rows=rows)
    at_connection = _at_connection(policy, spec, rows=rows)
    try:
        check_job(policy, terms)
    except PolicyRefusalError as exc:
        return PolicyDryRun(terms, exc, (), None, checked, at_connection)
    refusals, kept = _task_refusals(policy, spec, terms, rows=rows)
    return PolicyDryRun(terms, None, refusals, kept, checked, at_connection)


def _requests(spec: JobSpec) -> list[TaskRequest]:
    """The kinds of task the job will send, as the node's policy reads them."""
    masked = spec.secure_aggregation.enabled
    requests = []
    if spec.coordinator.standardize_features:  # round 0: feature statistics
        requests.append(TaskRequest(round_number=0, output=Output.STATISTICS, is_masked=masked))
    requests.append(
        TaskRequest(
            round_number=1,
            output=Output.UPDATE,
            is_masked=masked,
            privacy_mode=spec.privacy.mode,
        )
    )
    # The last round always evaluates on the nodes, whatever evaluate_every says.
    requests.append(TaskRequest(round_number=1, output=Output.EVALUATION))
    return requests


def _task_refusals(
    policy: NodePolicy, spec: JobSpec, terms: JobTerms, *, rows: int | None
) -> tuple[tuple[TaskRefusal, ...], tuple[str, ...] | None]:
    # ε needs each training task's noise settings: judged at run time, left out here.
    without_epsilon = policy.model_copy(update={"max_epsilon_per_job": None})
    # Rows unknown: the row rule is judged at run time; here it is met by construction.
    answered_rows = rows if rows is not None else policy.min_rows_per_statistic
    refusals: list[TaskRefusal] = []
    kept: tuple[str, ...] | None = None
    for request in _requests(spec):
        output = request.output
        if output is None:
            continue
        computed = dict.fromkeys(EVALUATE_METRICS, 0.0) if output is Output.EVALUATION else {}
        try:
            check_task(without_epsilon, terms, request)
            metrics = release(policy, output, rows=answered_rows, metrics=computed)
        except PolicyRefusalError as exc:
            refusals.append(TaskRefusal(output, exc))
            continue
        if output is Output.EVALUATION:
            kept = tuple(metrics)
    return tuple(refusals), kept


def _checked(policy: NodePolicy, *, rows: int | None) -> tuple[str, ...]:
    set_rules = {
        "allowed_models": bool(policy.allowed_models),
        "max_parameters": policy.max_parameters is not None,
        "max_rounds": policy.max_rounds is not None,
        "require_secure_aggregation": policy.require_secure_aggregation,
        "required_privacy_modes": bool(policy.required_privacy_modes),
        "max_epsilon_per_job: that the job has differential privacy": (
            policy.max_epsilon_per_job is not None
        ),
        "min_cohort: the job's declared minimum of nodes": policy.min_cohort > 1,
        "min_rows_per_statistic: against all the file's rows": (
            policy.min_rows_per_statistic > 0 and rows is not None
        ),
    }
    outputs = "[outputs]: which kinds of answer may leave"
    return (*(rule for rule, is_set in set_rules.items() if is_set), outputs)


def _at_connection(policy: NodePolicy, spec: JobSpec, *, rows: int | None) -> tuple[str, ...]:
    later: list[str] = []
    if policy.allowed_coordinators:
        later.append("allowed_coordinators: the coordinator's certificate fingerprint")
    if policy.coordinator_jurisdictions:
        later.append("coordinator_jurisdictions: the jurisdiction certified for the coordinator")
    if policy.max_epsilon_per_job is not None and spec.privacy.mode != "none":
        later.append(
            "max_epsilon_per_job: the job's ε, from the noise settings of each training task"
        )
    if policy.min_cohort > 1 and spec.secure_aggregation.enabled:
        later.append("min_cohort: how many sites each round's secure sum actually holds")
    if policy.min_rows_per_statistic > 0:
        known = "" if rows is None else f" (the file holds {rows}; the node answers over part)"
        later.append(f"min_rows_per_statistic: the rows behind each answer{known}")
    later.append("that every later task keeps the job's terms (policy.terms_changed)")
    return tuple(later)
