"""Quantisation: unbiased, in range, sums dequantise within the bound, overflow refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg import (
    check_fits,
    dequantise_sum,
    generate_mask,
    modular_add,
    modular_subtract,
    modular_sum,
    quantisation_step,
    quantise,
    weight_quantised,
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40),
    clipping_range=st.floats(0.01, 100.0),
    bits=st.integers(1, 40),
    seed=st.integers(0, 2**32),
)
def test_quantised_values_are_levels_within_range(
    values: list[float], clipping_range: float, bits: int, seed: int
) -> None:
    levels = quantise(
        np.array(values),
        clipping_range=clipping_range,
        quantisation_bits=bits,
        rng=np.random.default_rng(seed),
    )
    assert levels.dtype == np.uint64
    assert levels.shape == (len(values),)
    assert int(levels.max()) <= 2**bits - 1
    step = quantisation_step(clipping_range=clipping_range, quantisation_bits=bits)
    clipped = np.clip(values, -clipping_range, clipping_range)
    # Each level is one of the two neighbours of the exact scaled value.
    assert np.all(np.abs(levels * step - clipping_range - clipped) <= step * (1 + 1e-9))


def test_stochastic_rounding_is_unbiased() -> None:
    value = 0.123456
    levels = quantise(
        np.full(200_000, value),
        clipping_range=1.0,
        quantisation_bits=4,
        rng=np.random.default_rng(3),
    )
    step = quantisation_step(clipping_range=1.0, quantisation_bits=4)
    mean = float(levels.mean()) * step - 1.0
    # Per value sd <= step / 2 ~ 0.067; over 2e5 values ~ 1.5e-4; 1e-3 is > 6 sd.
    assert abs(mean - value) < 1e-3
    assert len(np.unique(levels)) == 2  # it rounds both ways, not always to the nearest


def test_one_seed_gives_one_quantisation() -> None:
    values = np.linspace(-1, 1, 101)
    options = {"clipping_range": 1.0, "quantisation_bits": 8}
    first = quantise(values, rng=np.random.default_rng(5), **options)  # type: ignore[arg-type]
    second = quantise(values, rng=np.random.default_rng(5), **options)  # type: ignore[arg-type]
    np.testing.assert_array_equal(first, second)


@settings(max_examples=40, deadline=None)
@given(
    node_count=st.integers(1, 8),
    length=st.integers(1, 30),
    bits=st.integers(2, 24),
    is_weighted=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_masked_weighted_sums_dequantise_within_the_bound(
    node_count: int, length: int, bits: int, is_weighted: bool, seed: int
) -> None:
    modulus_bits = 62
    clipping_range = 2.0
    rng = np.random.default_rng(seed)
    updates = rng.uniform(-clipping_range, clipping_range, size=(node_count, length))
    weights = rng.integers(1, 1000, size=node_count) if is_weighted else np.ones(node_count, int)
    check_fits(
        cohort_size=node_count,
        quantisation_bits=bits,
        modulus_bits=modulus_bits,
        max_weight=int(weights.max()),
    )
    contributions = []
    for update, weight in zip(updates, weights, strict=True):
        levels = quantise(update, clipping_range=clipping_range, quantisation_bits=bits, rng=rng)
        weighted = weight_quantised(levels, weight=int(weight), modulus_bits=modulus_bits)
        # The weight travels as one more element, summed (and masked) with the update.
        contributions.append(np.append(weighted, np.uint64(weight)))
    # Pairwise masks, as the protocol adds them: they must change nothing in the sum.
    masked = [vector.copy() for vector in contributions]
    for i in range(node_count):
        for j in range(i + 1, node_count):
            mask = generate_mask(rng.bytes(32), length=length + 1, modulus_bits=modulus_bits)
            masked[i] = modular_add(masked[i], mask, modulus_bits=modulus_bits)
            masked[j] = modular_subtract(masked[j], mask, modulus_bits=modulus_bits)
    total = modular_sum(masked, modulus_bits=modulus_bits)
    np.testing.assert_array_equal(total, modular_sum(contributions, modulus_bits=modulus_bits))
    weight_total = int(total[-1])
    assert weight_total == int(weights.sum())
    summed = dequantise_sum(
        total[:-1],
        weight_total=weight_total,
        clipping_range=clipping_range,
        quantisation_bits=bits,
    )
    step = quantisation_step(clipping_range=clipping_range, quantisation_bits=bits)
    exact = (weights[:, None] * updates).sum(axis=0)
    assert np.all(np.abs(summed - exact) <= weight_total * step * (1 + 1e-9))


def test_check_fits_accepts_the_largest_sum_that_fits() -> None:
    # 2**10 nodes x (2**20 - 1) < 2**30.
    check_fits(cohort_size=2**10, quantisation_bits=20, modulus_bits=30, max_weight=1)
    check_fits(cohort_size=1, quantisation_bits=63, modulus_bits=64)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"cohort_size": 2**10 + 1, "quantisation_bits": 20, "modulus_bits": 30},
            r"wraps around the modulus 2\*\*30.*raise 'modulus_bits' to at least 31.*"
            r"lower 'quantisation_bits' to at most 19",
        ),
        (
            {"cohort_size": 100, "quantisation_bits": 16, "modulus_bits": 32, "max_weight": 5000},
            r"weight up to 5000.*raise 'modulus_bits' to at least 35",
        ),
        (
            {"cohort_size": 1000, "quantisation_bits": 60, "modulus_bits": 64},
            r"lower 'quantisation_bits' to at most 54, or reduce 'cohort_size' or 'max_weight'",
        ),
    ],
)
def test_check_fits_says_what_to_change_when_the_sum_could_wrap(
    options: dict[str, int], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        check_fits(**options)
    if options["quantisation_bits"] == 60:
        assert "raise 'modulus_bits'" not in str(caught.value)  # 2**64 is the most there is


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: quantise(
                np.array([np.nan]),
                clipping_range=1.0,
                quantisation_bits=8,
                rng=np.random.default_rng(),
            ),
            "NaN or infinity",
        ),
        (
            lambda: quantise(
                np.zeros(2), clipping_range=0.0, quantisation_bits=8, rng=np.random.default_rng()
            ),
            r"'clipping_range' parameter of quantise must be a finite number > 0; got 0.0",
        ),
        (
            lambda: quantisation_step(clipping_range=1.0, quantisation_bits=64),
            r"'quantisation_bits' parameter of quantisation_step .* \[1, 63\]; got 64",
        ),
        (
            lambda: weight_quantised(np.zeros(2, np.uint64), weight=0, modulus_bits=32),
            r"'weight' parameter of weight_quantised must be in \[1, 2\*\*32\); got 0",
        ),
        (
            lambda: dequantise_sum(
                np.zeros(2, np.uint64), weight_total=0, clipping_range=1.0, quantisation_bits=8
            ),
            "'weight_total' parameter of dequantise_sum",
        ),
        (
            lambda: check_fits(cohort_size=0, quantisation_bits=8, modulus_bits=32),
            "'cohort_size' parameter of check_fits must be an integer >= 1; got 0",
        ),
    ],
)
def test_bad_arguments_are_refused(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()  # type: ignore[operator]
