"""Client-level DP-FedAvg around any strategy that uses only the sum of the updates.

McMahan, Ramage, Talwar and Zhang, "Learning Differentially Private Recurrent Language Models",
ICLR 2018 (DP-FedAvg with the fixed-denominator estimator), composed with the job's strategy
rather than subclassing it:

- **cohorts by Poisson sampling**: each connected node takes part in a round independently with
  probability ``q`` (the strategy's ``fraction_train``), the sampling the accountant's
  amplification assumes; the instructions carry the DP settings the node's privacy filter applies
  (clip, noise) and accounts in its own ledger (:mod:`sovereign_ai.federation.private_node`);
- **aggregate**: the sum ``S`` of the clipped updates (re-clipped here when the coordinator sees
  them one by one; under secure aggregation only their sum exists), plus ``N(0, (z C)²)`` in
  ``central`` mode (in ``distributed`` and ``local`` modes the nodes added it), divided by the
  *expected* cohort ``q N`` rather than the number that answered (which would itself depend on
  who took part). The inner strategy receives that mean as one result standing for the
  contributors, and applies it as it would any mean update (FedAvgM's momentum, FedAdam's
  moments, ...).

With ``clipping = "adaptive"`` (Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private
Learning with Adaptive Clipping", NeurIPS 2021; :class:`~sovereign_ai.privacy.AdaptiveClip`)
each round's instructions carry the current clip and the count noise ``σ_b`` (the job's
``count_noise``, or the expected cohort / 20); each node reports its centred bit
``[‖Δ‖ <= C] - 1/2`` beside its update (:data:`~sovereign_ai.federation.private_node.
UNCLIPPED_REPORT`). The coordinator sums the bits — one by one, or from the secure sum — noises
the sum with ``σ_b`` in ``central`` mode (in ``distributed`` mode each node added its share),
and moves the clip towards the target quantile. The update's noise multiplier becomes
``z_Δ = (z^-2 - (2 σ_b)^-2)^(-1/2)`` (Theorem 1), so bits and updates together cost exactly
the accounted ``z``. The clip is part of :meth:`DifferentiallyPrivate.state_dict`, so a resumed
job goes on from the clip it had reached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.core import (
    ConfigValue,
    FloatArray,
    NodeInstruction,
    Parameters,
    Result,
    Strategy,
)
from sovereign_ai.errors import (
    AggregationError,
    CheckpointError,
    ConfigError,
    InsufficientNodesError,
)
from sovereign_ai.federation.answers import ReportedTensor
from sovereign_ai.federation.job import PrivacySection, SecureAggregationSection
from sovereign_ai.federation.private_node import UNCLIPPED_REPORT, report_scale
from sovereign_ai.privacy import (
    Accounting,
    AdaptiveClip,
    Sampler,
    calibrate_noise_multiplier,
    clip_l2,
    gaussian_noise,
    noise_generator,
)
from sovereign_ai.strategies import StrategyWrapper

__all__ = ["DifferentiallyPrivate"]

_CLIP_STATE = "adaptive_clip"
_INNER_PREFIX = "inner."
_CLIP_RANGE = (1e-30, 1e30)  # a numerical guard: the clip stays a positive float32


@dataclass(frozen=True)
class _RoundPlan:
    """What one round's instructions said, for its aggregation."""

    expected_cohort: float
    clip: float
    minimum: int
    count_noise: float = 0.0  # σ_b of adaptive clipping; 0 with a fixed clip


class DifferentiallyPrivate(StrategyWrapper):
    """DP-FedAvg (client level) around ``inner``, with a fixed or an adaptive clip.

    Parameters
    ----------
    inner
        A strategy whose ``needs_individual_updates`` is ``False``.
    section
        The job's ``[privacy]`` settings (mode, noise multiplier or target ε, δ, clip, clipping).
    rounds
        The job's rounds: a target ε is calibrated for all of them.
    secure_aggregation
        The job's ``[secure_aggregation]``, when on: with adaptive clipping, the nodes' bits
        arrive summed and scaled into its quantisation range, and are scaled back here.

    Raises
    ------
    ConfigError
        If ``inner`` needs individual updates, privacy is off, or the count noise is too small
        for the noise multiplier.

    Notes
    -----
    A node's bit is untrusted input. Seen on its own (``central`` mode without secure
    aggregation) an answer whose bit lies outside ``[-1/2, 1/2]`` is refused at receipt
    (:attr:`train_reports`), and the bit is clamped to that range here as well, so one node moves
    the clip no further than an honest node could. Under secure aggregation only the sum is seen:
    in ``central`` mode it is clamped to what the survivors could honestly send; a node can still
    send any value the quantisation range admits (``±B``, :func:`~sovereign_ai.federation.
    private_node.report_scale`), as it can for its update. Whatever the bits, the fraction within
    the clip is clamped to ``[0, 1]``, so one round moves the clip by at most a factor
    ``exp(η max(γ, 1 - γ))``.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        section: PrivacySection,
        rounds: int,
        secure_aggregation: SecureAggregationSection | None = None,
    ) -> None:
        super().__init__(inner)
        if not section.enabled:
            raise ConfigError("DifferentiallyPrivate needs a [privacy] mode other than 'none'.")
        if inner.needs_individual_updates:
            raise ConfigError(
                f"[privacy] mode {section.mode!r} needs a strategy that uses only the sum of the "
                f"updates (DP-FedAvg clips and noises that sum); {type(inner).__name__} needs "
                "each update. Choose fedavg, fedavgm, fedprox or the FedOpt family."
            )
        self.section = section
        self.secure_aggregation = (
            secure_aggregation if secure_aggregation is not None and secure_aggregation.enabled
            else None
        )  # fmt: skip
        self.sampling_rate = float(getattr(inner, "fraction_train", 1.0))
        self.rounds = rounds
        sampler = Sampler.for_rate(self.sampling_rate)
        self.sampler = sampler
        self.noise_multiplier = (
            float(section.noise_multiplier)
            if section.noise_multiplier is not None
            else calibrate_noise_multiplier(
                target_epsilon=float(section.target_epsilon or 0.0),
                delta=section.delta,
                sampling_rate=self.sampling_rate,
                steps=rounds,
                sampler=sampler,
                method=Accounting(section.accounting),
            )
        )
        self.clip = float(np.float32(section.clip)) if self.is_adaptive else section.clip
        """The clip of the next round: the job's, or where adaptive clipping has taken it (kept
        a float32 then, which the checkpoint stores exactly)."""
        if self.is_adaptive and section.count_noise is not None:
            self._update_noise_multiplier(section.count_noise, expected_cohort=None)
        self._plans: dict[int, _RoundPlan] = {}

    @property
    def is_adaptive(self) -> bool:
        """Whether the clip adapts (``clipping = "adaptive"``)."""
        return self.section.clipping == "adaptive"

    @property
    def needs_individual_updates(self) -> bool:
        """``False``: DP-FedAvg needs only the sum of the clipped updates."""
        return False

    @property
    def train_reports(self) -> tuple[ReportedTensor, ...]:
        """With adaptive clipping, the centred bit each node sends beside its update."""
        if not self.is_adaptive:
            return ()
        return (ReportedTensor(UNCLIPPED_REPORT, (1,), low=-0.5, high=0.5),)

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """A Poisson-sampled cohort, each node told the clip, noise and sampling rate.

        Raises
        ------
        InsufficientNodesError
            If fewer than the inner strategy's minimum were drawn (the round is retried).
        ConfigError
            With adaptive clipping, if the default count noise (expected cohort / 20) is too
            small for the noise multiplier.
        """
        available = sorted(set(nodes))
        if self.sampler is Sampler.FULL:
            chosen = available
        else:
            draws = rng.random(len(available))  # (N,): node k takes part if its draw < q
            chosen = [
                node
                for node, draw in zip(available, draws, strict=True)
                if draw < self.sampling_rate
            ]
        minimum = self.inner.min_train_nodes
        if len(chosen) < minimum:
            raise InsufficientNodesError(
                stage="train", round_number=round_number, answered=chosen, missing=[],
                minimum=minimum,
                reason=f"Poisson sampling with q = {self.sampling_rate:g} drew {len(chosen)}.",
            )  # fmt: skip
        plan = self._plan(self.sampling_rate * len(available), minimum=minimum)
        self._plans[round_number] = plan
        inner = {
            i.node_id: i.config
            for i in self.inner.configure_train(
                round_number=round_number, parameters=parameters, nodes=chosen, rng=rng
            )
        }
        settings: dict[str, ConfigValue] = {
            "dp_mode": self.section.mode,
            "dp_clip": plan.clip,
            "dp_noise_multiplier": self.noise_multiplier,
            "dp_sampling_rate": self.sampling_rate,
            "dp_min_contributors": minimum,
            "dp_rounds": self.rounds,
        }
        if self.is_adaptive:
            settings["dp_count_noise"] = plan.count_noise
        return [NodeInstruction(node, {**inner.get(node, {}), **settings}) for node in chosen]

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """The inner strategy's step along the noised sum over the expected cohort.

        Raises
        ------
        AggregationError
            With adaptive clipping, if a result lacks its bit or the bit is not finite.
        """
        if not results:
            raise InsufficientNodesError(
                stage="train", round_number=round_number, answered=[], missing=[],
                minimum=max(1, self.inner.min_train_nodes),
            )  # fmt: skip
        contributors = sum(result.contributors for result in results)
        plan = self._plans.pop(round_number, None) or self._plan(
            float(contributors), minimum=self.inner.min_train_nodes
        )
        clip = plan.clip
        total = np.zeros(parameters.num_scalars, dtype=np.float64)  # (d,)
        centred = 0.0  # Σ (b_i - 1/2), adaptive clipping only
        for result in results:
            update = _update_vector(result, parameters)  # (d,)
            if result.contributors == 1:  # one node's update: enforce its clip here too
                update, _ = clip_l2(update, clip=clip)
                total += update
                if self.is_adaptive:
                    centred += min(0.5, max(-0.5, _report(result)))  # no more than honest
            else:  # a secure sum: its mean times how many it stands for (weights are 1 under DP)
                total += update * result.contributors
                if self.is_adaptive:
                    centred += self._secure_reports(result, plan)
        if self.section.mode == "central":
            multiplier = self.noise_multiplier
            if self.is_adaptive:
                multiplier = self._update_noise_multiplier(plan.count_noise, plan.expected_cohort)
            std = multiplier * clip
            total += gaussian_noise(total.shape, std=std, rng=noise_generator())
        mean = total / max(plan.expected_cohort, 1.0)
        summed = Result(
            job_id=results[0].job_id, round_number=round_number, stage=results[0].stage,
            node_id="dp-aggregate", num_examples=1, parameters=parameters.with_vector(mean),
            contributors=contributors,
        )  # fmt: skip
        new_parameters = self.inner.aggregate_train(
            round_number=round_number, parameters=parameters, results=[summed]
        )
        if self.is_adaptive:
            self._adapt(plan, centred)
        return new_parameters

    def state_dict(self) -> dict[str, FloatArray]:
        """The inner strategy's state; with adaptive clipping, also the clip reached.

        With a fixed clip the wrapper keeps no state and the inner state is stored as it is;
        with adaptive clipping it is stored under ``inner.`` beside ``adaptive_clip``.
        """
        inner = self.inner.state_dict()
        if not self.is_adaptive:
            return inner
        return {
            _CLIP_STATE: np.array([self.clip], dtype=np.float32),
            **{f"{_INNER_PREFIX}{name}": value for name, value in inner.items()},
        }

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        """Restore the state written by :meth:`state_dict`.

        Raises
        ------
        CheckpointError
            With adaptive clipping, if the clip is missing, not one positive finite number, or
            the state holds keys of neither the clip nor the inner strategy.
        """
        if not self.is_adaptive:
            self.inner.load_state_dict(state)
            return
        stray = sorted(k for k in state if k != _CLIP_STATE and not k.startswith(_INNER_PREFIX))
        clip = state.get(_CLIP_STATE)
        if stray or clip is None or clip.shape != (1,):
            raise CheckpointError(
                "The state of DifferentiallyPrivate with adaptive clipping must hold "
                f"{_CLIP_STATE!r} (one number) and the inner strategy's keys under "
                f"{_INNER_PREFIX!r}; got keys {sorted(state)}."
            )
        value = float(clip[0])
        if not (math.isfinite(value) and value > 0):
            raise CheckpointError(f"The adaptive clip in the state must be > 0; got {value!r}.")
        self.inner.load_state_dict(
            {k.removeprefix(_INNER_PREFIX): v for k, v in state.items() if k != _CLIP_STATE}
        )
        self.clip = value

    # Adaptive clipping --------------------------------------------------------------------------
    def _plan(self, expected_cohort: float, *, minimum: int) -> _RoundPlan:
        """The round's clip and, with adaptive clipping, its count noise (checked)."""
        if not self.is_adaptive:
            return _RoundPlan(expected_cohort, self.clip, minimum)
        count_noise = self.section.count_noise
        if count_noise is None:  # the paper's σ_b = m / 20
            count_noise = AdaptiveClip.for_cohort(
                clip=self.clip, expected_cohort=max(expected_cohort, 1.0)
            ).count_noise_std
        self._update_noise_multiplier(count_noise, expected_cohort)
        return _RoundPlan(expected_cohort, self.clip, minimum, count_noise)

    def _rule(self, plan: _RoundPlan) -> AdaptiveClip:
        return AdaptiveClip(
            clip=plan.clip,
            target_quantile=self.section.target_quantile,
            learning_rate=self.section.clip_learning_rate,
            count_noise_std=plan.count_noise,
        )

    def _update_noise_multiplier(self, count_noise: float, expected_cohort: float | None) -> float:
        """``z_Δ``: what the count noise ``σ_b`` leaves of ``z`` for the updates (Theorem 1).

        Raises
        ------
        ConfigError
            If ``σ_b`` leaves nothing of ``z`` for the updates, saying what to set.
        """
        z = self.noise_multiplier
        try:
            return AdaptiveClip(clip=1.0, count_noise_std=count_noise).update_noise_multiplier(z)
        except ConfigError as exc:
            source = (
                "[privacy] count_noise"
                if expected_cohort is None or self.section.count_noise is not None
                else f"The default count noise (expected cohort {expected_cohort:g} / 20)"
            )
            raise ConfigError(
                f"{source} = {count_noise:g} leaves nothing of the noise multiplier z = {z:g} for "
                f"the updates: it must exceed z / 2 = {z / 2:g}. Set [privacy] count_noise (2 z = "
                f"{2 * z:g} costs the updates 3 % more noise), or draw more nodes per round."
            ) from exc

    def _secure_reports(self, result: Result, plan: _RoundPlan) -> float:
        """``Σ (b_i - 1/2)`` of a secure sum: its mean report times its size, scaled back."""
        if self.secure_aggregation is None:
            raise ConfigError(
                "A secure sum reached DifferentiallyPrivate with adaptive clipping, but it was "
                "built without the job's [secure_aggregation]: pass secure_aggregation= so the "
                "nodes' bits can be scaled back."
            )
        scale = report_scale(
            mode=self.section.mode,
            count_noise=plan.count_noise,
            minimum_contributors=plan.minimum,
            clipping_range=self.secure_aggregation.clipping_range,
        )
        summed = _report(result) * result.contributors / scale
        if self.section.mode == "central":  # no noise on the bits yet: ±1/2 each at most
            half = 0.5 * result.contributors
            summed = min(half, max(-half, summed))
        return summed

    def _adapt(self, plan: _RoundPlan, centred: float) -> None:
        """Move the clip from the round's summed bits (noised here in ``central`` mode)."""
        rule = self._rule(plan)
        expected = max(plan.expected_cohort, 1.0)
        if self.section.mode == "central":
            rule.update(centred, expected_cohort=expected, rng=noise_generator())
        else:  # the nodes added the count noise, each its share
            rule.move(centred, expected_cohort=expected)
        low, high = _CLIP_RANGE
        self.clip = float(np.float32(min(high, max(low, rule.clip))))


def _update_vector(result: Result, parameters: Parameters) -> NDArray[np.float64]:
    """The model's part of a result (its reports left out), in the model's order, ``(d,)``."""
    if not parameters:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate(
        [np.asarray(result.parameters[name], dtype=np.float64).reshape(-1) for name in parameters]
    )


def _report(result: Result) -> float:
    """The bit a result carries (a node's own, or the mean of a secure sum).

    Raises
    ------
    AggregationError
        If the result carries no bit, or a bit that is not a finite number.
    """
    tensor = result.parameters.get(UNCLIPPED_REPORT)
    value = float(tensor.reshape(-1)[0]) if tensor is not None and tensor.size == 1 else math.nan
    if not math.isfinite(value):
        raise AggregationError(
            f"The answer of {result.node_id!r} carries no finite adaptive-clipping bit "
            f"({UNCLIPPED_REPORT!r}); the round's clip cannot be updated from it."
        )
    return value
