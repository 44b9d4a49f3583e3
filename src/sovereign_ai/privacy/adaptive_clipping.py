"""Adaptive clipping: the clip norm follows a quantile of the nodes' update norms, privately.

Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021 (Algorithm 1). Each round every node also reports one bit ``b_i = [‖Δ_i‖ <= C]``.
Their sum is noised with ``N(0, σ_b²)`` (its sensitivity is 1) and divided by the expected number
of reports ``m``; the clip then moves geometrically towards the target quantile ``γ``::

    b̄ = (Σ b_i + N(0, σ_b²)) / m
    C ← C · exp(-η (b̄ - γ))

With the paper's defaults — ``γ = 0.5`` (the median norm), ``η = 0.2``, ``σ_b = m / 20`` — about
half the updates are clipped once the clip has settled. The bits are a privacy event of their own,
with noise multiplier ``σ_b``; the paper shows how to fold it into the update's noise multiplier
(:meth:`AdaptiveClip.update_noise_multiplier`), so one event per round is accounted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sovereign_ai.errors import ConfigError

__all__ = ["AdaptiveClip"]


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
        ``σ_b`` > 0: noise on the count of unclipped updates.
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
    def for_cohort(cls, *, clip: float, expected_cohort: int) -> AdaptiveClip:
        """The paper's defaults for an expected cohort of ``m`` nodes (``σ_b = m / 20``)."""
        if expected_cohort < 1:
            raise ConfigError(f"'expected_cohort' must be >= 1; got {expected_cohort!r}.")
        return cls(clip=clip, count_noise_std=expected_cohort / 20)

    def indicator(self, norm: float) -> float:
        """A node's bit: 1.0 if its update's norm is within the clip, else 0.0."""
        return 1.0 if norm <= self.clip else 0.0

    def update(
        self, unclipped_count: float, *, expected_cohort: int, rng: np.random.Generator
    ) -> float:
        """Noise the summed bits, move the clip, and return the new clip.

        Parameters
        ----------
        unclipped_count
            ``Σ b_i`` (with secure aggregation, the unmasked sum of the bits).
        expected_cohort
            ``m``, the expected number of reports.
        rng
            The noise source (:func:`~sovereign_ai.privacy.mechanisms.noise_generator`).
        """
        if expected_cohort < 1:
            raise ConfigError(f"'expected_cohort' must be >= 1; got {expected_cohort!r}.")
        noised = unclipped_count + rng.normal(0.0, self.count_noise_std)
        fraction = noised / expected_cohort
        self.clip *= math.exp(-self.learning_rate * (fraction - self.target_quantile))
        return self.clip

    def update_noise_multiplier(self, noise_multiplier: float) -> float:
        """The update's noise multiplier ``z_Δ`` that keeps the total at ``noise_multiplier``.

        Theorem 1 of Andrew et al.: releasing the bits with ``σ_b`` and the updates with ``z_Δ``
        costs what one Gaussian mechanism with ``z = (z_Δ^-2 + (2 σ_b)^-2)^(-1/2)`` does. So for a
        target ``z``: ``z_Δ = (z^-2 - (2 σ_b)^-2)^(-1/2)``.

        Raises
        ------
        ConfigError
            If ``σ_b`` is too small for the target (the bits alone would cost more).
        """
        rest = noise_multiplier**-2 - (2 * self.count_noise_std) ** -2
        if rest <= 0:
            raise ConfigError(
                f"A count noise of {self.count_noise_std:g} leaves nothing of a noise multiplier "
                f"of {noise_multiplier:g} for the updates; raise 'count_noise_std' (expected "
                "cohort / 20 by default) or the noise multiplier."
            )
        return float(rest**-0.5)
