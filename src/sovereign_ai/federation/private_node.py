"""A node's part in differential privacy: the egress pipeline's privacy slot, and its ledger.

:func:`enable_differential_privacy` fills the node's ``privacy`` egress slot. For a train answer
of a job with ``[privacy]`` on (its task carries ``dp_*`` settings), the filter, in this order:

1. **accounts first**, in the node's own ledger for its dataset: the job's first task here
   records the whole job (``rounds`` steps of noise multiplier ``z`` at sampling rate ``q``:
   each round costs every node of the population, sampled in it or not, under Poisson
   amplification), which must fit the owner's budget, or the job is refused with the numbers;
   a round beyond the job's announced ones (a job resumed with more rounds) is recorded when it
   comes, and refused, answer withheld, once the budget cannot hold it. A job that stops early
   stays recorded in full: the safe side;
2. **clips** the update to L2 norm ``C``;
3. **noises** it in ``distributed`` mode with this node's share ``z C / sqrt(n_min)``, or in
   ``local`` mode with the whole ``z C`` (``central`` mode leaves the noise to the coordinator);
4. reports one example and no training metrics: under DP every node weighs the same, and its
   row count and training loss would be released without accounting otherwise.

With **adaptive clipping** (the task carries ``dp_count_noise``, ``σ_b``; Andrew et al. 2021,
:class:`~sovereign_ai.privacy.AdaptiveClip`) the answer also carries the tensor
:data:`UNCLIPPED_REPORT`: the node's centred bit ``[‖Δ‖ <= C] - 1/2``, taken *before* clipping.
The node splits the job's noise multiplier ``z`` itself (Theorem 1): the update gets
``z_Δ = (z^-2 - (2 σ_b)^-2)^(-1/2)`` in place of ``z``, and in ``distributed`` mode the bit gets
its share ``σ_b / sqrt(n_min)`` of the count noise, so that bits and update together cost one
Gaussian mechanism of multiplier ``z``: the ledger records the same one event per round. It
refuses a ``σ_b`` too small for that split (``σ_b <= z / 2``) before anything is recorded, and
adaptive clipping in ``local`` mode (its bit would leave without noise). Under secure aggregation
the report is scaled by :func:`report_scale` so that it, with its noise, fits the quantisation
range of the update.

Secure aggregation's masking slot runs after this one, so in ``distributed`` mode the noised
update is masked and only the noised sum is ever readable. The node computes its noise from the
settings it understands (``z``, ``C``, ``n_min``, ``σ_b``), never a standard deviation it is
handed, and refuses settings that would add less noise than the job's accounting claims
(``n_min < 1``). Feature statistics are refused under DP: they would leave without accounting.

In ``dpsgd`` mode (sample level) the node's trainer is replaced instead: the round is accounted
first (``steps`` Poisson-sampled steps at ``q = batch_size / n``, with the job's noise multiplier
or one this node calibrates for its own ``n`` from the job's target ε), then the model is trained
with DP-SGD (:func:`~sovereign_ai.learning.train_private`); the filter only drops the training
metrics. Only rounds this node trains in cost it, and the update keeps its row count as weight:
the number of rows is not what sample-level DP hides.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sovereign_ai.core import ConfigValue, Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.node import LocalTrainer, Node
from sovereign_ai.learning import (
    DpSgdConfig,
    DpSgdSchedule,
    TrainConfig,
    TrainReport,
    dpsgd_schedule,
    train_private,
)
from sovereign_ai.privacy import (
    Accounting,
    AdaptiveClip,
    PrivacyEvent,
    PrivacyLedger,
    Sampler,
    calibrate_noise_multiplier,
    clip_l2,
    distributed_noise_std,
    gaussian_noise,
    noise_generator,
)

__all__ = [
    "DP_SETTINGS",
    "LEDGER_FILE",
    "UNCLIPPED_REPORT",
    "NodePrivacySettings",
    "calibrated_noise",
    "enable_differential_privacy",
    "open_node_ledger",
    "report_scale",
]

LEDGER_FILE = "privacy-ledger.sqlite"
"""The ledger's file name in a node's kit folder."""


class NodePrivacySettings(BaseModel):
    """The ``[privacy]`` table of a node's ``node.toml``: the owner's budget for its dataset.

    Parameters
    ----------
    dataset
        The name the owner keeps this data under in the ledger (the same data in every job).
    max_epsilon
        The budget: the most ε all jobs together may spend on it.
    delta
        The δ of the budget.
    accounting
        ``rdp`` or ``pld``.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dataset: str = Field(min_length=1, max_length=200)
    max_epsilon: float = Field(gt=0.0, le=1e4)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    accounting: Literal["rdp", "pld"] = "rdp"

    @classmethod
    def parse(cls, table: object, *, source: str) -> NodePrivacySettings:
        """Validate the table, naming the key at fault.

        Raises
        ------
        ConfigError
            If a key is unknown or misspelt, missing, or out of range.
        """
        if not isinstance(table, dict):
            raise ConfigError(f"[privacy] in {source} must be a table.")
        try:
            return cls.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in error['loc'])}': {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(f"[privacy] in {source} is invalid: {problems}.") from exc


def open_node_ledger(folder: Path, settings: NodePrivacySettings) -> PrivacyLedger:
    """The node's ledger in ``folder`` (its kit), with the owner's budget set for the dataset.

    Raises
    ------
    ConfigError
        If the ledger records spending at another δ or accounting for the dataset.
    """
    ledger = PrivacyLedger(folder / LEDGER_FILE)
    try:
        ledger.set_budget(
            settings.dataset,
            max_epsilon=settings.max_epsilon,
            delta=settings.delta,
            accounting=Accounting(settings.accounting),
        )
    except BaseException:
        ledger.close()
        raise
    return ledger


DP_SETTINGS = (
    "dp_mode",
    "dp_clip",
    "dp_noise_multiplier",
    "dp_sampling_rate",
    "dp_min_contributors",
    "dp_rounds",
    "dp_target_epsilon",
    "dp_delta",
    "dp_accounting",
    "dp_count_noise",
)
"""Task settings of a job with differential privacy (``dp_count_noise``: adaptive clipping)."""

UNCLIPPED_REPORT = "dp_unclipped"
"""The ``(1,)`` tensor a train answer carries under adaptive clipping: the centred bit
``[‖Δ‖ <= C] - 1/2`` (plus its share of the count noise in ``distributed`` mode), times
:func:`report_scale` under secure aggregation."""

_MODES = ("central", "distributed", "local")
_NOISE_SHARE_COVERED = 6.0  # standard deviations: a share beyond them is clipped, p ≈ 2e-9


def report_scale(
    *, mode: str, count_noise: float, minimum_contributors: int, clipping_range: float
) -> float:
    """The factor a node's report is multiplied by before secure aggregation quantises it.

    Quantisation clips every value to ``[-R, R]`` (``R``, the ``clipping_range`` of
    ``[secure_aggregation]``). A report is ``±1/2``, plus in ``distributed`` mode the node's share
    of the count noise, of standard deviation ``σ_b / sqrt(n_min)``; its bound
    ``B = 1/2 + 6 σ_b / sqrt(n_min)`` (``1/2`` in ``central`` mode) is mapped onto ``R``. The
    coordinator divides the unmasked sum by the same factor, so any ``R`` carries the bit, at a
    quantisation step of ``2 B / (2**q - 1)`` in units of the bit.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    if not (math.isfinite(clipping_range) and clipping_range > 0):
        raise ConfigError(f"'clipping_range' must be a number > 0; got {clipping_range!r}.")
    bound = 0.5
    if mode == "distributed":
        bound += _NOISE_SHARE_COVERED * _count_noise_share(count_noise, minimum_contributors)
    return clipping_range / bound


def _count_noise_share(count_noise: float, minimum_contributors: int) -> float:
    """``σ_b / sqrt(n_min)``: the centred bits have sensitivity 1/2, so their noise multiplier is
    ``2 σ_b`` and each node's share is that of :func:`distributed_noise_std` at a clip of 1/2."""
    return distributed_noise_std(
        noise_multiplier=2 * count_noise, clip=0.5, minimum_contributors=minimum_contributors
    )


def _number(task: Task, key: str) -> float:
    value: ConfigValue | None = task.config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"The task's {key!r} setting must be a number; got {value!r}.")
    return float(value)


def _is_train_answer(task: Task) -> bool:
    if task.stage is Stage.TRAIN:
        return True
    return task.stage is Stage.SECAGG_MASKED_INPUT and task.config.get("secagg_input") == "train"


def _adaptive_clip(task: Task, *, mode: str, clip: float) -> AdaptiveClip | None:
    """The round's adaptive clip if the task asks for adaptive clipping, its settings checked."""
    if "dp_count_noise" not in task.config:
        return None
    if mode == "local":
        raise ConfigError(
            "The task asks for adaptive clipping in 'local' mode, where this node's bit (whether "
            "its update fit the clip) would leave without noise; refused."
        )
    count_noise = _number(task, "dp_count_noise")
    return AdaptiveClip(clip=clip, count_noise_std=count_noise)


def _scale(task: Task, adaptive: AdaptiveClip, *, mode: str, minimum: int) -> float:
    """The report's factor: :func:`report_scale` for a secure input, else 1."""
    if task.stage is not Stage.SECAGG_MASKED_INPUT:
        return 1.0
    return report_scale(
        mode=mode,
        count_noise=adaptive.count_noise_std,
        minimum_contributors=minimum,
        clipping_range=_number(task, "secagg_clipping_range"),
    )


def _report(adaptive: AdaptiveClip, *, norm: float, mode: str, minimum: int) -> float:
    """The node's centred bit of its update's norm (before clipping), with its noise share."""
    report = adaptive.report(norm)  # ±1/2
    if mode == "distributed":
        std = _count_noise_share(adaptive.count_noise_std, minimum)
        report += float(gaussian_noise((), std=std, rng=noise_generator()))
    return report


def enable_differential_privacy(node: Node, *, ledger: PrivacyLedger, dataset: str) -> None:
    """Apply and account differential privacy on ``node``'s answers, in its ``ledger``.

    Parameters
    ----------
    node
        The node; its ``privacy`` egress slot is filled.
    ledger
        The node's own ledger; ``dataset`` must have a budget there.
    dataset
        The name the owner keeps this node's data under in the ledger.

    Raises
    ------
    ConfigError
        If the dataset has no budget in the ledger.
    """
    if ledger.budget(dataset) is None:
        raise ConfigError(
            f"Dataset {dataset!r} has no privacy budget in {ledger.path}; set one first "
            "(PrivacyLedger.set_budget)."
        )

    def private(task: Task, result: Result) -> Result:
        mode = task.config.get("dp_mode")
        if mode is None:
            return result
        if task.stage is Stage.STATISTICS or task.config.get("secagg_input") == "statistics":
            raise ConfigError(
                "A job with differential privacy asked for feature statistics, which would leave "
                "this node without privacy accounting; refused."
            )
        if not _is_train_answer(task):
            return result
        if mode == "dpsgd":  # trained, clipped, noised and accounted by the trainer below
            return dataclasses.replace(result, metrics={})
        clip = _number(task, "dp_clip")
        noise_multiplier = _number(task, "dp_noise_multiplier")
        rate = _number(task, "dp_sampling_rate")
        minimum = int(_number(task, "dp_min_contributors"))
        rounds = int(_number(task, "dp_rounds"))
        if mode not in _MODES:
            raise ConfigError(f"Unknown privacy mode {mode!r} in the task; refused.")
        # Adaptive clipping's settings are checked before anything is recorded or computed.
        adaptive = _adaptive_clip(task, mode=str(mode), clip=clip)
        update_multiplier, scale = noise_multiplier, 1.0
        if adaptive is not None:
            update_multiplier = adaptive.update_noise_multiplier(noise_multiplier)
            scale = _scale(task, adaptive, mode=str(mode), minimum=minimum)
        sampler = Sampler.for_rate(rate)
        last = ledger.last_round(dataset, job_id=task.job_id)
        if task.round_number > last:
            # Every round of the job costs every node of the population, sampled in it or not
            # (amplification by Poisson sampling counts each round with probability q, a
            # priori). So the first task reserves the job's rounds through its last one, which
            # must fit the budget; a round beyond them (a job resumed with more rounds) is
            # recorded when it comes. No round goes unrecorded, however few this node trains in.
            through = max(rounds, task.round_number)
            event = PrivacyEvent(noise_multiplier, rate, through - last, sampler)
            ledger.spend(dataset, event, job_id=task.job_id, round_number=through)
        update, norm = clip_l2(result.parameters.flatten(), clip=clip)
        if mode in ("distributed", "local"):
            std = (
                distributed_noise_std(
                    noise_multiplier=update_multiplier, clip=clip, minimum_contributors=minimum
                )
                if mode == "distributed"
                else noise_multiplier * clip
            )
            update = update + gaussian_noise(update.shape, std=std, rng=noise_generator())
        parameters = result.parameters.with_vector(update)
        if adaptive is not None:
            report = scale * _report(adaptive, norm=norm, mode=str(mode), minimum=minimum)
            parameters = Parameters({**parameters, UNCLIPPED_REPORT: np.array([report])})
        return dataclasses.replace(result, parameters=parameters, num_examples=1, metrics={})

    node.egress.install("privacy", private)
    node.register_settings(DP_SETTINGS)
    node.trainer = _sample_level_trainer(node, node.trainer, ledger=ledger, dataset=dataset)


def _sample_level_trainer(
    node: Node, plain: LocalTrainer, *, ledger: PrivacyLedger, dataset: str
) -> LocalTrainer:
    """``plain``, or DP-SGD accounted in ``ledger`` *before* it trains for a ``dpsgd`` task.

    A round is recorded before its training starts: a round that would exceed the budget is
    refused before any work, and one that fails afterwards is counted although nothing left
    (the safe side). At the job's first task the whole job's projection must fit.
    """

    def trainer(task: Task, model: Any, config: TrainConfig) -> TrainReport:
        if task.config.get("dp_mode") != "dpsgd":
            return plain(task, model, config)
        features, labels = node.data.train_features, node.data.train_labels
        schedule = dpsgd_schedule(
            num_examples=len(labels),
            batch_size=config.batch_size,
            local_epochs=config.local_epochs,
        )
        rounds = int(_number(task, "dp_rounds"))
        noise_multiplier = _sample_level_noise(task, schedule, rounds=rounds)
        sampler = Sampler.for_rate(schedule.sampling_rate)

        def event(steps: int) -> PrivacyEvent:
            return PrivacyEvent(noise_multiplier, schedule.sampling_rate, steps, sampler)

        if ledger.last_round(dataset, job_id=task.job_id) == 0:
            ledger.check(dataset, [event(rounds * schedule.steps)])
        ledger.spend(
            dataset,
            event(schedule.steps),
            job_id=task.job_id,
            round_number=task.round_number,
            what="dpsgd",
        )
        privacy = DpSgdConfig(noise_multiplier, max_grad_norm=_number(task, "dp_clip"))
        return train_private(model, features, labels, config=config, privacy=privacy)

    return trainer


def _sample_level_noise(task: Task, schedule: DpSgdSchedule, *, rounds: int) -> float:
    """The job's noise multiplier, or the one this node calibrates for its own data size."""
    if "dp_noise_multiplier" in task.config:
        return _number(task, "dp_noise_multiplier")
    accounting = task.config.get("dp_accounting", "rdp")
    if accounting not in ("rdp", "pld"):
        raise ConfigError(f"Unknown accounting {accounting!r} in the task; refused.")
    return calibrated_noise(
        target_epsilon=_number(task, "dp_target_epsilon"),
        delta=_number(task, "dp_delta"),
        sampling_rate=schedule.sampling_rate,
        steps=rounds * schedule.steps,
        accounting=str(accounting),
    )


@functools.lru_cache(maxsize=64)
def calibrated_noise(
    *, target_epsilon: float, delta: float, sampling_rate: float, steps: int, accounting: str
) -> float:
    """The noise multiplier a node uses for a DP-SGD job's target ε over its ``steps``
    (cached: every task of a job asks again)."""
    return calibrate_noise_multiplier(
        target_epsilon=target_epsilon,
        delta=delta,
        sampling_rate=sampling_rate,
        steps=steps,
        sampler=Sampler.for_rate(sampling_rate),
        method=Accounting(accounting),
    )
