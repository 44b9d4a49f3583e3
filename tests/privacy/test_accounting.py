"""The accountants against published figures and against dp-accounting itself."""

from __future__ import annotations

import dp_accounting
import pytest
from dp_accounting import pld, rdp
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.privacy import (
    Accounting,
    PrivacyEvent,
    Sampler,
    calibrate_noise_multiplier,
    classic_rdp_epsilon,
    epsilon_spent,
)

DELTA = 1e-5
ABADI = PrivacyEvent(noise_multiplier=4.0, sampling_rate=0.01, steps=10_000)
TF_PRIVACY_TUTORIAL = PrivacyEvent(noise_multiplier=1.12, sampling_rate=256 / 60_000, steps=14_062)


@pytest.mark.parametrize(
    ("event", "classic", "tighter", "pld_epsilon"),
    [(ABADI, 1.26, 1.035, 0.95), (TF_PRIVACY_TUTORIAL, 2.92, 2.52, None)],
    ids=["abadi-2016", "tf-privacy-tutorial"],
)
def test_published_figures(
    event: PrivacyEvent, classic: float, tighter: float, pld_epsilon: float | None
) -> None:
    assert classic_rdp_epsilon([event], delta=DELTA) == pytest.approx(classic, abs=0.005)
    assert epsilon_spent([event], delta=DELTA) == pytest.approx(tighter, abs=0.005)
    if pld_epsilon is not None:
        got = epsilon_spent([event], delta=DELTA, method=Accounting.PLD)
        assert got == pytest.approx(pld_epsilon, abs=0.005)


@settings(max_examples=25, deadline=None)
@given(
    noise=st.floats(0.5, 8.0),
    rate=st.floats(0.001, 1.0),
    steps=st.integers(1, 2_000),
    delta=st.sampled_from([1e-3, 1e-5, 1e-7]),
)
def test_matches_dp_accountings_own_accountant(
    noise: float, rate: float, steps: int, delta: float
) -> None:
    sampler = Sampler.FULL if rate == 1.0 else Sampler.POISSON
    event = PrivacyEvent(noise, rate, steps, sampler)
    inner: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise)
    if rate < 1:
        inner = dp_accounting.PoissonSampledDpEvent(rate, inner)
    reference = rdp.RdpAccountant()
    reference.compose(dp_accounting.SelfComposedDpEvent(inner, steps))
    assert epsilon_spent([event], delta=delta) == pytest.approx(
        reference.get_epsilon(delta), rel=1e-6
    )


def test_composition_is_of_the_history_not_a_sum_of_epsilons() -> None:
    first = PrivacyEvent(1.0, 0.05, 300)
    second = PrivacyEvent(1.5, 0.1, 200)
    together = epsilon_spent([first, second], delta=DELTA)
    apart = epsilon_spent([first], delta=DELTA) + epsilon_spent([second], delta=DELTA)
    assert together < apart
    reference = rdp.RdpAccountant()
    reference.compose(first.to_dp_event())
    reference.compose(second.to_dp_event())
    assert together == pytest.approx(reference.get_epsilon(DELTA), rel=1e-9)
    plds = pld.PLDAccountant()
    plds.compose(first.to_dp_event())
    plds.compose(second.to_dp_event())
    assert epsilon_spent([first, second], delta=DELTA, method=Accounting.PLD) == pytest.approx(
        plds.get_epsilon(DELTA), rel=1e-9
    )


@pytest.mark.parametrize("target", [0.5, 1.0, 4.0, 8.0])
def test_calibrated_noise_reaches_the_target_within_one_percent(target: float) -> None:
    noise = calibrate_noise_multiplier(
        target_epsilon=target, delta=DELTA, sampling_rate=0.02, steps=500
    )
    reached = epsilon_spent([PrivacyEvent(noise, 0.02, 500)], delta=DELTA)
    assert reached <= target
    assert reached == pytest.approx(target, rel=0.01)


def test_no_events_cost_nothing() -> None:
    assert epsilon_spent([], delta=DELTA) == 0.0


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ((0.0, 0.1, 10, Sampler.POISSON), "noise_multiplier"),
        ((1.0, 0.0, 10, Sampler.POISSON), "sampling_rate"),
        ((1.0, 1.5, 10, Sampler.POISSON), "sampling_rate"),
        ((1.0, 0.1, 0, Sampler.POISSON), "steps"),
        ((1.0, 0.1, 10, Sampler.SHUFFLE), "understates"),
        ((1.0, 0.5, 10, Sampler.FULL), "sampling rate 1"),
    ],
)
def test_invalid_events_are_refused(
    arguments: tuple[float, float, int, Sampler], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        PrivacyEvent(*arguments)


def test_events_round_trip_through_json_and_refuse_garbage() -> None:
    assert PrivacyEvent.from_json(ABADI.to_json()) == ABADI
    with pytest.raises(ConfigError, match="Not a recorded privacy event"):
        PrivacyEvent.from_json('{"noise_multiplier": 1}')


def test_bad_delta_and_target_are_refused() -> None:
    with pytest.raises(ConfigError, match="delta"):
        epsilon_spent([ABADI], delta=0.0)
    with pytest.raises(ConfigError, match="target_epsilon"):
        calibrate_noise_multiplier(target_epsilon=0, delta=DELTA, sampling_rate=0.1, steps=3)
