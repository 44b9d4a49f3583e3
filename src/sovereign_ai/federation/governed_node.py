"""A node's policy in the round: judged at a job's first task, before every task, on every answer.

:func:`enable_policy` puts a :class:`~sovereign_ai.governance.NodePolicy` in front of a
:class:`~sovereign_ai.federation.node.Node`, in two places:

- a **task check** (:meth:`Node.add_task_check`), run before any stage handler, so a refused
  task costs no training and no privacy budget;
- the **egress pipeline's policy slot**, which runs first, before privacy and masking: it checks
  the task again and the answer itself (rows behind statistics and metrics; which metrics leave).

At the **first task of a job** the node sees, it reads the terms the job declares with every task
(:data:`~sovereign_ai.federation.node.JOB_TERMS`: rounds, secure aggregation, privacy mode,
minimum cohort; with the model's settings) and the coordinator it is connected to, and decides
whether to join (:func:`~sovereign_ai.governance.check_job`). A refused job stays refused: every
later task of it is refused with the same code, without checking again. An accepted job is held
to its terms: a task whose model settings, secure aggregation, privacy mode or minimum cohort
differ from the first task's refuses the job from then on (``policy.terms_changed``), so a job
cannot switch off secure aggregation or grow its model half-way. Each task is then checked on
its own (:func:`~sovereign_ai.governance.check_task`): its round, the cohort its secure sum
holds, what it lets leave and, for an update under differential privacy, the job's ε, which
the node computes itself from the task's noise settings (RDP accounting at the policy's δ; for
``dpsgd``, from this node's own row count and the job's batch size and epochs).

A refusal raises :class:`~sovereign_ai.errors.PolicyRefusalError`: the transports send only its
code to the coordinator, which shows ``refused by its policy (<code>)`` among the round's
failures; the explanation goes to this node's log and to ``record``, the hook for the node's
audit log. If ``record`` raises, the task is refused: nothing leaves that was not recorded.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Final

from sovereign_ai.core import ConfigValue, Result, Stage, Task
from sovereign_ai.errors import PolicyRefusalError
from sovereign_ai.federation.node import JOB_TERMS, Node
from sovereign_ai.federation.private_node import calibrated_noise
from sovereign_ai.federation.secure_wire import node_list, split_model_and_shares
from sovereign_ai.governance import (
    CoordinatorIdentity,
    JobTerms,
    NodePolicy,
    Output,
    RefusalCode,
    TaskRequest,
    check_coordinator,
    check_job,
    check_task,
    release,
)
from sovereign_ai.learning import TrainConfig, dpsgd_schedule, get_parameters
from sovereign_ai.pki import certificate_fingerprint, certificate_jurisdiction
from sovereign_ai.privacy import (
    Accounting,
    PrivacyEvent,
    Sampler,
    epsilon_spent,
)

__all__ = ["PolicyGuard", "PolicyRecorder", "declared_terms", "enable_policy"]

logger = logging.getLogger(__name__)

PolicyRecorder = Callable[[str, dict[str, object]], None]
"""Receives each decision: ``(event, fields)``, event one of ``job_accepted``, ``job_refused``,
``task_refused``; fields name the job, round, stage and, for a refusal, its code and reason."""

_FIXED_SETTINGS: Final = (
    "model",
    "model_options",
    "model_plugin",
    "num_features",
    "num_classes",
    *(term for term in JOB_TERMS if term != "job_rounds"),
)
"""Task settings a job may not change after its first task (its rounds may grow on a resume,
and are checked against ``max_rounds`` at every task instead)."""

_PER_TASK_CODES: Final = frozenset(
    {
        RefusalCode.OUTPUT_NOT_ALLOWED,
        RefusalCode.TOO_FEW_ROWS,
        RefusalCode.COHORT_TOO_SMALL,
        RefusalCode.COORDINATOR_UNVERIFIED,
        RefusalCode.COORDINATOR_NOT_ALLOWED,
        RefusalCode.COORDINATOR_JURISDICTION,
    }
)
"""Codes that refuse one task of an accepted job; any other refuses the job from then on."""

_OUTPUTS: Final = {
    Stage.TRAIN: Output.UPDATE,
    Stage.STATISTICS: Output.STATISTICS,
    Stage.EVALUATE: Output.EVALUATION,
}
_KEY_STAGES: Final = frozenset(
    {Stage.SECAGG_ADVERTISE_KEYS, Stage.SECAGG_SHARE_KEYS, Stage.SECAGG_UNMASK}
)
_MAX_JOBS_REMEMBERED = 1024


@dataclasses.dataclass(frozen=True)
class _Decision:
    """A job's standing at this node: accepted on ``terms``, or refused for good."""

    terms: JobTerms
    fixed: tuple[ConfigValue | None, ...]
    refusal: PolicyRefusalError | None = None


class PolicyGuard:
    """A node's policy decisions, per job; built and installed by :func:`enable_policy`.

    Parameters
    ----------
    node
        The node whose tasks are checked.
    policy
        Its owner's policy.
    record
        Receives every decision (for the node's audit log); ``None``: only logged.
    """

    def __init__(
        self, node: Node, policy: NodePolicy, *, record: PolicyRecorder | None = None
    ) -> None:
        self.node = node
        self.policy = policy
        self._record = record
        self._jobs: collections.OrderedDict[str, _Decision] = collections.OrderedDict()
        self._lock = threading.RLock()
        self.coordinator: CoordinatorIdentity | None = None
        """The coordinator this node is connected to, once a TLS handshake verified it."""

    # The coordinator ----------------------------------------------------------------------------
    def coordinator_verified(self, name: str, certificate: bytes) -> None:
        """Take note of the coordinator whose certificate (DER or PEM) TLS has just verified.

        Pass it as ``on_coordinator`` of
        :class:`~sovereign_ai.federation.transports.grpc.GrpcNodeClient`.
        """
        identity = CoordinatorIdentity(
            name=name,
            fingerprint=certificate_fingerprint(certificate),
            jurisdiction=certificate_jurisdiction(certificate),
        )
        with self._lock:
            self.coordinator = identity
        logger.info(
            "Coordinator %r verified: certificate SHA-256 %s, jurisdiction %s",
            identity.name,
            identity.fingerprint,
            identity.jurisdiction or "not certified",
        )

    # The two places the policy runs -------------------------------------------------------------
    def check(self, task: Task) -> None:
        """The node's task check: refuse ``task`` before any work if the policy says so.

        Raises
        ------
        PolicyRefusalError
            If the job is refused (now or before), or this task is.
        """
        with self._lock:
            decision = self._decide_job(task)
            self._check_task(task, decision)

    def egress(self, task: Task, result: Result) -> Result:
        """The egress policy slot: ``result`` as it may leave (metrics the policy lets go).

        Raises
        ------
        PolicyRefusalError
            If the job or the task is refused, or the answer is computed over too few rows.
        """
        with self._lock:
            decision = self._decide_job(task)
            self._check_task(task, decision)
            output, _ = _output(task)
            try:
                metrics = release(
                    self.policy, output, rows=result.num_examples, metrics=result.metrics
                )
            except PolicyRefusalError as exc:
                self._refused(task, exc, job_wide=False)
                raise
        if metrics == dict(result.metrics):
            return result
        return dataclasses.replace(result, metrics=metrics)

    # Decisions ----------------------------------------------------------------------------------
    def _decide_job(self, task: Task) -> _Decision:
        decision = self._jobs.get(task.job_id)
        if decision is not None and decision.refusal is not None:
            refusal = decision.refusal
            self._emit("task_refused", task, code=refusal.code, reason="the job was refused")
            raise PolicyRefusalError(refusal.code, detail=f"job refused: {refusal.detail}")
        fixed = tuple(task.config.get(key) for key in _FIXED_SETTINGS)
        if decision is not None:
            if fixed != decision.fixed:
                pairs = zip(_FIXED_SETTINGS, fixed, decision.fixed, strict=True)
                changed = [key for key, now, first in pairs if now != first]
                refusal = PolicyRefusalError(
                    RefusalCode.TERMS_CHANGED,
                    detail=f"the task changes the job's {', '.join(changed)} from its first task",
                )
                self._refused(task, refusal, job_wide=True)
                raise refusal
            return decision
        terms = self._terms(task)
        try:
            check_coordinator(self.policy, self.coordinator)
            check_job(self.policy, terms)
        except PolicyRefusalError as exc:
            self._remember(task.job_id, _Decision(terms, fixed))
            self._refused(task, exc, job_wide=True)
            raise
        decision = _Decision(terms, fixed)
        self._remember(task.job_id, decision)
        logger.info("Joined job %s: its terms meet this node's policy.", task.job_id)
        self._emit(
            "job_accepted",
            task,
            model=terms.model,
            rounds=terms.rounds,
            secure_aggregation=terms.secure_aggregation,
            privacy_mode=terms.privacy_mode,
            coordinator=None if self.coordinator is None else self.coordinator.fingerprint,
        )
        return decision

    def _check_task(self, task: Task, decision: _Decision) -> None:
        try:
            check_coordinator(self.policy, self.coordinator)
            # A resumed job may have more rounds than it declared first: checked at every task.
            terms = dataclasses.replace(decision.terms, rounds=_integer(task, "job_rounds"))
            check_task(self.policy, terms, self._request(task))
        except PolicyRefusalError as exc:
            self._refused(task, exc, job_wide=RefusalCode(exc.code) not in _PER_TASK_CODES)
            raise

    def _refused(self, task: Task, refusal: PolicyRefusalError, *, job_wide: bool) -> None:
        """Log and record a refusal; a job-wide one refuses the job's later tasks too."""
        logger.warning(
            "Refused %s task of round %d of job %s (%s): %s",
            task.stage.value,
            task.round_number,
            task.job_id,
            refusal.code,
            refusal.detail,
        )
        if job_wide:
            previous = self._jobs.get(task.job_id)
            terms = previous.terms if previous is not None else JobTerms(model="")
            fixed = previous.fixed if previous is not None else ()
            self._remember(task.job_id, _Decision(terms, fixed, refusal))
            self._emit("job_refused", task, code=refusal.code, reason=refusal.detail)
        self._emit("task_refused", task, code=refusal.code, reason=refusal.detail)

    def _remember(self, job_id: str, decision: _Decision) -> None:
        self._jobs[job_id] = decision
        self._jobs.move_to_end(job_id)
        while len(self._jobs) > _MAX_JOBS_REMEMBERED:
            self._jobs.popitem(last=False)

    def _emit(self, event: str, task: Task, **fields: object) -> None:
        if self._record is None:
            return
        self._record(
            event,
            {
                "job_id": task.job_id,
                "round": task.round_number,
                "stage": task.stage.value,
                **fields,
            },
        )

    # Facts --------------------------------------------------------------------------------------
    def _terms(self, task: Task) -> JobTerms:
        """The terms ``task`` declares for its job (the model's size only if a rule needs it)."""
        size = None
        if self.policy.max_parameters is not None:
            size = get_parameters(self.node.model_for(task)).num_scalars
        return declared_terms(task.config, model_parameters=size)

    def _request(self, task: Task) -> TaskRequest:
        output, is_masked = _output(task)
        mode = str(task.config.get("dp_mode", "none"))
        epsilon = None
        if output is Output.UPDATE and mode != "none" and self.policy.max_epsilon_per_job:
            epsilon = self._epsilon(task, mode)
        return TaskRequest(
            round_number=task.round_number,
            output=output,
            is_masked=is_masked,
            cohort_size=_cohort_size(task),
            privacy_mode=mode,
            epsilon=epsilon,
            model_parameters=_model_values(task) if self.policy.max_parameters else None,
        )

    def _epsilon(self, task: Task, mode: str) -> float:
        """ε of the whole job for this node's data at the policy's δ, from the task's settings."""
        config = task.config
        rounds = max(_integer(task, "dp_rounds") or 0, task.round_number)
        noise = _number(config, "dp_noise_multiplier")
        delta = self.policy.epsilon_delta
        if mode != "dpsgd":
            rate = _number(config, "dp_sampling_rate")
            if noise is None or rate is None:
                return float("inf")  # noise settings the node cannot read: no bound
            return _job_epsilon(noise, rate, rounds, delta)
        defaults = TrainConfig()  # what the node's trainer uses for a setting the task lacks
        schedule = dpsgd_schedule(
            num_examples=len(self.node.data.train_labels),
            batch_size=_integer(task, "batch_size") or defaults.batch_size,
            local_epochs=_integer(task, "local_epochs") or defaults.local_epochs,
        )
        steps = rounds * schedule.steps
        if noise is None:
            target, job_delta = (
                _number(config, "dp_target_epsilon"),
                _number(config, "dp_delta"),
            )
            if target is None or job_delta is None:
                return float("inf")
            accounting = str(config.get("dp_accounting", "rdp"))
            noise = calibrated_noise(
                target_epsilon=target, delta=job_delta, sampling_rate=schedule.sampling_rate,
                steps=steps, accounting=accounting,
            )  # fmt: skip
        return _job_epsilon(noise, schedule.sampling_rate, steps, delta)


def declared_terms(
    config: Mapping[str, ConfigValue], *, model_parameters: int | None = None
) -> JobTerms:
    """The terms a job declares in a task's settings, as a node's policy judges them.

    Parameters
    ----------
    config
        A task's settings: the coordinator writes the job's terms into every task
        (:data:`~sovereign_ai.federation.node.JOB_TERMS`, ``assembly.stage_config``).
    model_parameters
        How many parameters the job's model has as this node builds it (``None``: not counted).

    Returns
    -------
    JobTerms
        A term the settings lack, or hold with the wrong type, is ``None``: a rule that needs it
        then refuses (``policy.terms_missing``).
    """
    mode = config.get("job_privacy_mode")
    secure = config.get("job_secure_aggregation")
    return JobTerms(
        model=str(config.get("model", "")),
        model_parameters=model_parameters,
        rounds=_setting_integer(config, "job_rounds"),
        secure_aggregation=secure if isinstance(secure, bool) else None,
        privacy_mode=mode if isinstance(mode, str) else None,
        min_nodes=_setting_integer(config, "job_min_nodes"),
    )


def _integer(task: Task, key: str) -> int | None:
    return _setting_integer(task.config, key)


def _setting_integer(config: Mapping[str, ConfigValue], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(config: Mapping[str, ConfigValue], key: str) -> float | None:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _output(task: Task) -> tuple[Output | None, bool]:
    """What ``task``'s answer carries, and whether it leaves masked.

    A stage the policy does not know is treated as carrying an update: refused unless updates
    may leave (fail closed).
    """
    if task.stage in _OUTPUTS:
        return _OUTPUTS[task.stage], False
    if task.stage in _KEY_STAGES:
        return None, False
    if task.stage is Stage.SECAGG_MASKED_INPUT:
        if task.config.get("secagg_input") == Stage.STATISTICS.value:
            return Output.STATISTICS, True
        return Output.UPDATE, True
    return Output.UPDATE, False


def _cohort_size(task: Task) -> int | None:
    """How many nodes' inputs the secure sum this task feeds holds, where the task says."""
    if task.stage is Stage.SECAGG_MASKED_INPUT:
        return _integer(task, "secagg_cohort_size")
    if task.stage is Stage.SECAGG_UNMASK:
        return len(node_list(task.config, "secagg_survivors"))
    return None


def _model_values(task: Task) -> int | None:
    """How many values the model tensors ``task`` carries hold (shares excluded)."""
    if task.stage is Stage.SECAGG_MASKED_INPUT:
        model, _ = split_model_and_shares(task.parameters)
        return model.num_scalars
    if task.stage in (Stage.TRAIN, Stage.EVALUATE):
        return task.parameters.num_scalars
    return None


@functools.lru_cache(maxsize=256)
def _job_epsilon(noise: float, rate: float, steps: int, delta: float) -> float:
    if not (noise > 0 and 0 < rate <= 1 and steps >= 1):
        return float("inf")
    event = PrivacyEvent(noise, rate, steps, Sampler.for_rate(rate))
    return epsilon_spent([event], delta=delta, method=Accounting.RDP)


def enable_policy(
    node: Node, policy: NodePolicy, *, record: PolicyRecorder | None = None
) -> PolicyGuard:
    """Hold ``node`` to its owner's ``policy``: before every task, and on every answer.

    Parameters
    ----------
    node
        The node; gains a task check and a filled ``policy`` egress slot.
    policy
        The owner's policy (:meth:`NodePolicy.parse` of the kit's ``policy.toml``).
    record
        Called with each decision (``job_accepted``, ``job_refused``, ``task_refused``) and its
        fields, e.g. to append it to the node's audit log.

    Returns
    -------
    PolicyGuard
        Its :meth:`~PolicyGuard.coordinator_verified` must hear of the coordinator's certificate
        for rules about coordinators to accept anything.

    Raises
    ------
    ConfigError
        If the node's policy egress slot is already filled.
    """
    guard = PolicyGuard(node, policy, record=record)
    node.egress.install("policy", guard.egress)
    node.add_task_check(guard.check)
    return guard
