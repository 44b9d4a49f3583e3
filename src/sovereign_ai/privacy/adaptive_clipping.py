"""Adaptive clipping: the clip norm follows a quantile of the nodes' update norms, privately.

Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021 (Algorithm 1, Theorem 1). Each round every node also reports whether its update fit
the clip, as the *centred* bit ``b_i - 1/2`` with ``b_i = [‖Δ_i‖ <= C]``. Their sum is noised
with ``N(0, σ_b²)`` and divided by the expected number of reports ``m``; the clip then moves
geometrically towards the target quantile ``γ``::

    b̄ = clamp((Σ (b_i - 1/2) + N(0, σ_b²)) / m + 1/2, 0, 1)
    C ← C · exp(-η (b̄ - γ))

Centring is what the privacy analysis needs: one node added or removed changes the centred sum by
at most 1/2 (the plain count by 1), so the bits are a Gaussian mechanism of noise multiplier
``2 σ_b``, and Theorem 1 folds them into the update's noise multiplier
(:meth:`AdaptiveClip.update_noise_multiplier`): one event of the job's ``z`` per round is
accounted. Clamping ``b̄`` to ``[0, 1]`` (as TensorFlow Privacy's quantile estimator does) is
post-processing; it also bounds one round's move to a factor ``exp(η max(γ, 1 - γ))`` whatever
the reports were.

With the paper's defaults — ``γ = 0.5`` (the median norm), ``η = 0.2``, ``σ_b = m / 20`` — about
half the updates are clipped once the clip has settled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sovereign_ai.errors import ConfigError

__all__ = ["AdaptiveClip"]

_COUNT_NOISE_PER_REPORT = 1 / 20  # the paper's σ_b = m / 20


@dataclass
class AdaptiveClip:
    """The clip norm of a DP job, and how it adapts.

    Parameters
    ----------
    clip
        The current clip ``C`` > 0 (the initial one at the start).
    target_quantile
        ``γ`` in ``(0, 1)``: the share of updates that should fall within the clip.
    learning_rate
        ``η`` > 0 of the geometric update.
    count_noise_std
        ``σ_b`` > 0: noise on the sum of the centred bits.
    """

    clip: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise_std: float = 1.0

    def __post_init__(self) -> None:
        checks = (
            ("clip", self.clip, self.clip > 0),
            ("target_quantile", self.target_quantile, 0 < self.target_quantile < 1),
            ("learning_rate", self.learning_rate, self.learning_rate > 0),
            ("count_noise_std", self.count_noise_std, self.count_noise_std > 0),
        )
        for name, value, valid in checks:
            if not (math.isfinite(value) and valid):
                raise ConfigError(f"The {name!r} of AdaptiveClip is out of range: {value!r}.")

    @classmethod
    def for_cohort(
        cls,
        *,
        clip: float,
        expected_cohort: float,
        target_quantile: float = 0.5,
        learning_rate: float = 0.2,
    ) -> AdaptiveClip:
        """The paper's count noise for an expected cohort of ``m`` nodes: ``σ_b = m / 20``."""
        if not (math.isfinite(expected_cohort) and expected_cohort > 0):
            raise ConfigError(f"'expected_cohort' must be > 0; got {expected_cohort!r}.")
        return cls(
            clip=clip,
            target_quantile=target_quantile,
            learning_rate=learning_rate,
            count_noise_std=expected_cohort * _COUNT_NOISE_PER_REPORT,
        )

    def indicator(self, norm: float) -> float:
        """A node's bit ``b``: 1.0 if its update's norm is within the clip, else 0.0."""
        return 1.0 if norm <= self.clip else 0.0

    def report(self, norm: float) -> float:
        """What a node sends: its bit centred, ``b - 1/2``, so +0.5 (within the clip) or -0.5."""
        return self.indicator(norm) - 0.5

    def update(
        self, centred_sum: float, *, expected_cohort: float, rng: np.random.Generator
    ) -> float:
        """Noise the summed reports with ``σ_b``, move the clip, and return the new clip.

        Parameters
        ----------
        centred_sum
            ``Σ (b_i - 1/2)`` over the nodes that reported (with secure aggregation, the unmasked
            sum of their reports).
        expected_cohort
            ``m`` > 0, the expected number of reports.
        rng
            The noise source (:func:`~sovereign_ai.privacy.mechanisms.noise_generator`).
        """
        return self.move(
            centred_sum + rng.normal(0.0, self.count_noise_std), expected_cohort=expected_cohort
        )

    def move(self, noised_sum: float, *, expected_cohort: float) -> float:
        """Move the clip from an already noised ``Σ (b_i - 1/2)``, and return the new clip.

        For distributed noise, where each node added its share of ``N(0, σ_b²)`` to its report.

        Raises
        ------
        ConfigError
            If the sum is not finite or ``expected_cohort`` is not > 0.
        """
        if not (math.isfinite(expected_cohort) and expected_cohort > 0):
            raise ConfigError(f"'expected_cohort' must be > 0; got {expected_cohort!r}.")
        if not math.isfinite(noised_sum):
            raise ConfigError(f"The summed reports must be finite; got {noised_sum!r}.")
        fraction = min(1.0, max(0.0, noised_sum / expected_cohort + 0.5))  # b̄, clamped
        self.clip *= math.exp(-self.learning_rate * (fraction - self.target_quantile))
        return self.clip

    def update_noise_multiplier(self, noise_multiplier: float) -> float:
        """The update's noise multiplier ``z_Δ`` that keeps the total at ``noise_multiplier``.

        Theorem 1 of Andrew et al.: releasing the centred bits with ``σ_b`` (sensitivity 1/2)
        and the updates with ``z_Δ`` costs what one Gaussian mechanism with
        ``z = (z_Δ^-2 + (2 σ_b)^-2)^(-1/2)`` does. So for a target ``z``:
        ``z_Δ = (z^-2 - (2 σ_b)^-2)^(-1/2)``.

        Raises
        ------
        ConfigError
            If ``σ_b`` is too small for the target (the bits alone would cost more): it must
            exceed ``z / 2``.
        """
        rest = noise_multiplier**-2 - (2 * self.count_noise_std) ** -2
        if rest <= 0:
            raise ConfigError(
                f"A count noise of {self.count_noise_std:g} leaves nothing of a noise multiplier "
                f"of {noise_multiplier:g} for the updates: it must exceed "
                f"{noise_multiplier / 2:g} (z / 2). Raise the count noise (expected cohort / 20 "
                "by default) or lower the noise multiplier."
            )
        return float(rest**-0.5)
