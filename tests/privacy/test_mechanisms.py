"""Clipping, noise, distributed noise and adaptive clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sovereign_ai.errors import ConfigError
from sovereign_ai.privacy import (
    AdaptiveClip,
    clip_l2,
    distributed_noise_std,
    gaussian_noise,
    l2_norm,
    noise_generator,
)


@settings(max_examples=60, deadline=None)
@given(
    vector=arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6)),
    clip=st.floats(1e-3, 1e3),
)
def test_clipping_bounds_the_norm_and_keeps_the_direction(vector: np.ndarray, clip: float) -> None:
    clipped, norm = clip_l2(vector, clip=clip)
    assert norm == pytest.approx(l2_norm(vector))
    assert l2_norm(clipped) <= clip * (1 + 1e-9)
    if norm <= clip:
        np.testing.assert_array_equal(clipped, vector)
    elif norm > 0:
        np.testing.assert_allclose(clipped * norm / clip, vector, rtol=1e-9, atol=1e-9)


def test_clipping_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="'clip' parameter"):
        clip_l2(np.ones(3), clip=0.0)
    with pytest.raises(ConfigError, match="must be finite"):
        clip_l2(np.array([1.0, np.nan]), clip=1.0)


def test_noise_generators_are_not_reproducible() -> None:
    first = gaussian_noise((8,), std=1.0, rng=noise_generator())
    second = gaussian_noise((8,), std=1.0, rng=noise_generator())
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(("nodes", "minimum"), [(10, 10), (10, 6), (50, 30)])
def test_distributed_noise_of_the_survivors_has_at_least_the_target_variance(
    nodes: int, minimum: int
) -> None:
    """Chi-square test on the variance of the summed noise of ``minimum`` survivors."""
    target = 2.0 * 0.5  # z C
    share = distributed_noise_std(noise_multiplier=2.0, clip=0.5, minimum_contributors=minimum)
    rng = np.random.default_rng(0)
    samples = 20_000
    summed = sum(gaussian_noise((samples,), std=share, rng=rng) for _ in range(minimum))
    variance = float(np.var(summed, ddof=1))
    # (s - 1) S² / σ² ~ χ²(s - 1): a 6-sigma band around its mean s - 1.
    statistic = (samples - 1) * variance / target**2
    assert abs(statistic - (samples - 1)) < 6 * math.sqrt(2 * (samples - 1))


def test_distributed_noise_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="minimum_contributors"):
        distributed_noise_std(noise_multiplier=1.0, clip=1.0, minimum_contributors=0)


@pytest.mark.parametrize("quantile", [0.3, 0.5, 0.8])
def test_adaptive_clipping_converges_to_the_target_quantile(quantile: float) -> None:
    rng = np.random.default_rng(1)
    cohort = 200
    clip = AdaptiveClip(clip=0.05, target_quantile=quantile, count_noise_std=cohort / 20)
    for _ in range(400):
        norms = rng.lognormal(mean=0.0, sigma=0.5, size=cohort)
        centred = sum(clip.report(float(n)) for n in norms)
        clip.update(centred, expected_cohort=cohort, rng=rng)
    expected = float(np.exp(0.5 * _normal_quantile(quantile)))  # lognormal(0, 0.5) quantile
    assert clip.clip == pytest.approx(expected, rel=0.1)


def test_a_node_reports_its_bit_centred() -> None:
    clip = AdaptiveClip(clip=1.0)
    assert (clip.indicator(1.0), clip.report(1.0)) == (1.0, 0.5)
    assert (clip.indicator(1.0001), clip.report(1.0001)) == (0.0, -0.5)


@settings(max_examples=200, deadline=None)
@given(
    centred_sum=st.floats(-1e12, 1e12),
    cohort=st.floats(0.5, 1e4),
    quantile=st.floats(0.01, 0.99),
    rate=st.floats(0.01, 2.0),
)
def test_one_round_moves_the_clip_by_a_bounded_factor_whatever_the_reports(
    centred_sum: float, cohort: float, quantile: float, rate: float
) -> None:
    # Even a sum no honest cohort could produce (a hostile report) moves the clip at most by
    # exp(η max(γ, 1 - γ)): the fraction within the clip is clamped to [0, 1].
    clip = AdaptiveClip(clip=1.0, target_quantile=quantile, learning_rate=rate)
    new = clip.move(centred_sum, expected_cohort=cohort)
    bound = rate * max(quantile, 1 - quantile)
    assert math.exp(-bound) * (1 - 1e-12) <= new <= math.exp(bound) * (1 + 1e-12)


def test_the_clip_moves_towards_the_target() -> None:
    cohort = 10
    all_within = AdaptiveClip(clip=1.0)
    all_within.move(cohort * 0.5, expected_cohort=cohort)  # every bit 1: the clip is too large
    assert all_within.clip == pytest.approx(math.exp(-0.2 * 0.5))
    none_within = AdaptiveClip(clip=1.0)
    none_within.move(-cohort * 0.5, expected_cohort=cohort)  # every bit 0: too small
    assert none_within.clip == pytest.approx(math.exp(0.2 * 0.5))
    with pytest.raises(ConfigError, match="finite"):
        AdaptiveClip(clip=1.0).move(math.nan, expected_cohort=cohort)


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF by bisection (no scipy in the test)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def test_the_update_noise_multiplier_keeps_the_total() -> None:
    clip = AdaptiveClip.for_cohort(clip=1.0, expected_cohort=100)  # σ_b = 5
    z_delta = clip.update_noise_multiplier(1.0)
    total = (z_delta**-2 + (2 * clip.count_noise_std) ** -2) ** -0.5
    assert total == pytest.approx(1.0)
    assert z_delta > 1.0
    with pytest.raises(ConfigError, match="leaves nothing"):
        AdaptiveClip(clip=1.0, count_noise_std=0.1).update_noise_multiplier(1.0)
    with pytest.raises(ConfigError, match="leaves nothing"):  # the boundary: σ_b = z / 2
        AdaptiveClip(clip=1.0, count_noise_std=0.5).update_noise_multiplier(1.0)


@pytest.mark.parametrize(
    "options",
    [{"clip": 0.0}, {"clip": 1.0, "target_quantile": 1.0}, {"clip": 1.0, "learning_rate": -1}],
)
def test_adaptive_clip_refuses_out_of_range_settings(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        AdaptiveClip(**options)
