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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import ConfigValue, NodeInstruction, Parameters, Result, Strategy
from sovereign_ai.errors import ConfigError, InsufficientNodesError
from sovereign_ai.federation.job import PrivacySection
from sovereign_ai.privacy import (
    Accounting,
    Sampler,
    calibrate_noise_multiplier,
    clip_l2,
    gaussian_noise,
    noise_generator,
)
from sovereign_ai.strategies import StrategyWrapper

__all__ = ["DifferentiallyPrivate"]


class DifferentiallyPrivate(StrategyWrapper):
    """DP-FedAvg (client level) around ``inner``.

    Parameters
    ----------
    inner
        A strategy whose ``needs_individual_updates`` is ``False``.
    section
        The job's ``[privacy]`` settings (mode, noise multiplier or target ε, δ, clip).
    rounds
        The job's rounds: a target ε is calibrated for all of them.

    Raises
    ------
    ConfigError
        If ``inner`` needs individual updates, or privacy is off.
    """

    def __init__(self, inner: Strategy, *, section: PrivacySection, rounds: int) -> None:
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
        self._expected_cohort: dict[int, float] = {}

    @property
    def needs_individual_updates(self) -> bool:
        """``False``: DP-FedAvg needs only the sum of the clipped updates."""
        return False

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
        self._expected_cohort[round_number] = self.sampling_rate * len(available)
        inner = {
            i.node_id: i.config
            for i in self.inner.configure_train(
                round_number=round_number, parameters=parameters, nodes=chosen, rng=rng
            )
        }
        settings: dict[str, ConfigValue] = {
            "dp_mode": self.section.mode,
            "dp_clip": self.section.clip,
            "dp_noise_multiplier": self.noise_multiplier,
            "dp_sampling_rate": self.sampling_rate,
            "dp_min_contributors": minimum,
            "dp_rounds": self.rounds,
        }
        return [NodeInstruction(node, {**inner.get(node, {}), **settings}) for node in chosen]

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """The inner strategy's step along the noised sum over the expected cohort."""
        if not results:
            raise InsufficientNodesError(
                stage="train", round_number=round_number, answered=[], missing=[],
                minimum=max(1, self.inner.min_train_nodes),
            )  # fmt: skip
        clip = self.section.clip
        total = np.zeros(parameters.num_scalars, dtype=np.float64)  # (d,)
        contributors = 0
        for result in results:
            update = result.parameters.flatten().astype(np.float64)
            if result.contributors == 1:  # one node's update: enforce its clip here too
                update, _ = clip_l2(update, clip=clip)
                total += update
            else:  # a secure sum: its mean times how many it stands for (weights are 1 under DP)
                total += update * result.contributors
            contributors += result.contributors
        if self.section.mode == "central":
            total += gaussian_noise(
                total.shape, std=self.noise_multiplier * clip, rng=noise_generator()
            )
        expected = self._expected_cohort.pop(round_number, float(contributors))
        mean = total / max(expected, 1.0)
        summed = Result(
            job_id=results[0].job_id, round_number=round_number, stage=results[0].stage,
            node_id="dp-aggregate", num_examples=1, parameters=parameters.with_vector(mean),
            contributors=contributors,
        )  # fmt: skip
        return self.inner.aggregate_train(
            round_number=round_number, parameters=parameters, results=[summed]
        )
