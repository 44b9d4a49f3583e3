"""Encodings into Z_{2**b}: exact fixed-point sums of statistics, weighted quantised updates."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg.encoding import (
    decode_exact_sum,
    decode_update_sum,
    encode_exact,
    encode_update,
    encoded_length,
    exact_length,
)
from sovereign_ai.secagg.quantisation import quantisation_step


def ring_sum(vectors: list[np.ndarray], modulus_bits: int) -> np.ndarray:
    """The sum modulo ``2**b`` with Python integers (what unmasking yields)."""
    total = [sum(int(v[i]) for v in vectors) % (1 << modulus_bits) for i in range(vectors[0].size)]
    return np.array(total, dtype=np.uint64)


def fixed_point(value: float) -> int:
    """``value * 2**64`` truncated towards zero, computed with rationals."""
    return math.trunc(Fraction(value) * 2**64)


@st.composite
def exact_cases(draw: st.DrawFn) -> tuple[int, int, list[list[float]]]:
    cohort = draw(st.integers(min_value=1, max_value=40))
    modulus_bits = draw(st.integers(min_value=cohort.bit_length() + 8, max_value=64))
    nodes = draw(st.integers(min_value=1, max_value=cohort))
    width = draw(st.integers(min_value=1, max_value=6))
    bound = 2.0**60 / cohort
    value = st.one_of(
        st.floats(-bound, bound, exclude_min=True, exclude_max=True, allow_subnormal=True),
        st.floats(-1e-12, 1e-12, allow_subnormal=True),  # tiny, below the 2**-64 resolution too
        st.sampled_from([0.0, -0.0, 2.0**-64, -(2.0**-64), 2.0**-65, math.nextafter(bound, 0)]),
    )
    values = [draw(st.lists(value, min_size=width, max_size=width)) for _ in range(nodes)]
    return cohort, modulus_bits, values


@settings(max_examples=150, deadline=None)
@given(case=exact_cases())
def test_exact_sums_are_the_sums_of_the_fixed_point_values(
    case: tuple[int, int, list[list[float]]],
) -> None:
    cohort, modulus_bits, values = case
    encoded = [
        encode_exact(np.array(v), modulus_bits=modulus_bits, cohort_size=cohort) for v in values
    ]
    width = len(values[0])
    assert all(e.dtype == np.uint64 for e in encoded)
    assert all(
        e.size == exact_length(width, modulus_bits=modulus_bits, cohort_size=cohort)
        for e in encoded
    )
    assert all(int(e.max()) < 1 << modulus_bits for e in encoded)
    decoded = decode_exact_sum(
        ring_sum(encoded, modulus_bits), modulus_bits=modulus_bits, cohort_size=cohort
    )
    assert decoded.shape == (width,)
    nodes = len(values)
    for column in range(width):
        column_values = [row[column] for row in values]
        fixed_sum = sum(fixed_point(v) for v in column_values)
        # Exactly the sum of the fixed-point values (one rounding, to the nearest float).
        assert decoded[column] == float(Fraction(fixed_sum, 2**64))
        # Hence within n * 2**-64 of the true sum, up to that final rounding.
        exact = sum((Fraction(v) for v in column_values), Fraction(0))
        slack = Fraction(nodes, 2**64) + Fraction(math.ulp(decoded[column]))
        assert abs(Fraction(float(decoded[column])) - exact) <= slack
        fsum = math.fsum(column_values)
        assert abs(decoded[column] - fsum) <= nodes * 2.0**-64 + math.ulp(fsum) + math.ulp(
            decoded[column]
        )


def test_exact_sums_of_integers_are_exact() -> None:
    values = [np.array([3.0, -7.0, 1e15, 0.5]), np.array([-3.0, 2.0, 1e15, 0.25])]
    encoded = [encode_exact(v, modulus_bits=32, cohort_size=2) for v in values]
    decoded = decode_exact_sum(ring_sum(encoded, 32), modulus_bits=32, cohort_size=2)
    np.testing.assert_array_equal(decoded, [0.0, -5.0, 2e15, 0.75])


def test_the_limbs_of_a_full_cohort_do_not_wrap() -> None:
    # The largest and the most negative values from every node of the cohort: every limb is full.
    cohort, bits = 255, 16
    near = math.nextafter(2.0**60 / cohort, 0)
    for value in (near, -near, -(2.0**-64)):
        encoded = [encode_exact(np.array([value]), modulus_bits=bits, cohort_size=cohort)] * cohort
        decoded = decode_exact_sum(ring_sum(encoded, bits), modulus_bits=bits, cohort_size=cohort)
        assert decoded[0] == float(Fraction(fixed_point(value) * cohort, 2**64))


@pytest.mark.parametrize(
    "value", [2.0**60, -(2.0**60), 2.0**61, float("inf"), -float("inf"), float("nan")]
)
def test_too_large_or_non_finite_statistics_are_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="finite and below 2\\*\\*60 / 1"):
        encode_exact(np.array([1.0, value]), modulus_bits=64, cohort_size=1)


def test_the_bound_shrinks_with_the_cohort() -> None:
    encode_exact(np.array([2.0**56]), modulus_bits=64, cohort_size=15)
    with pytest.raises(ConfigError, match="below 2\\*\\*60 / 16"):
        encode_exact(np.array([2.0**56]), modulus_bits=64, cohort_size=16)


@pytest.mark.parametrize(
    ("modulus_bits", "cohort", "match"),
    [
        (12, 16, "leaves 7 bits per limb for 16 nodes"),
        (0, 1, "'modulus_bits' parameter of exact encoding"),
        (65, 1, "'modulus_bits' parameter of exact encoding"),
        (32, 0, "cohort size of an exact encoding must be >= 1"),
    ],
)
def test_bad_exact_parameters_are_refused(modulus_bits: int, cohort: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        encode_exact(np.array([1.0]), modulus_bits=modulus_bits, cohort_size=cohort)
    with pytest.raises(ConfigError, match=match):
        decode_exact_sum(np.zeros(16, np.uint64), modulus_bits=modulus_bits, cohort_size=cohort)


def test_a_sum_with_a_partial_value_is_refused() -> None:
    limbs = exact_length(1, modulus_bits=32, cohort_size=4)
    with pytest.raises(ConfigError, match=f"multiple of {limbs} limbs"):
        decode_exact_sum(np.zeros(limbs + 1, np.uint64), modulus_bits=32, cohort_size=4)


# Model updates ----------------------------------------------------------------------------------


@st.composite
def update_cases(draw: st.DrawFn) -> dict[str, object]:
    nodes = draw(st.integers(min_value=1, max_value=8))
    width = draw(st.integers(min_value=1, max_value=20))
    clipping_range = draw(st.floats(0.01, 100.0))
    quantisation_bits = draw(st.integers(min_value=1, max_value=20))
    weights = draw(st.lists(st.integers(1, 1000), min_size=nodes, max_size=nodes))
    # The weighted levels and the summed weight must fit in the ring.
    needed = (sum(weights) * ((1 << quantisation_bits) - 1)).bit_length()
    modulus_bits = draw(st.integers(min_value=max(needed, sum(weights).bit_length()), max_value=64))
    value = st.floats(-3 * clipping_range, 3 * clipping_range)
    updates = [
        np.array(draw(st.lists(value, min_size=width, max_size=width)), dtype=np.float64)
        for _ in range(nodes)
    ]
    return {
        "clipping_range": clipping_range,
        "quantisation_bits": quantisation_bits,
        "weights": weights,
        "modulus_bits": modulus_bits,
        "updates": updates,
        "seed": draw(st.integers(0, 2**32)),
    }


@settings(max_examples=120, deadline=None)
@given(case=update_cases())
def test_the_weighted_update_sum_is_within_one_step_per_unit_of_weight(
    case: dict[str, object],
) -> None:
    clipping_range = case["clipping_range"]
    quantisation_bits = case["quantisation_bits"]
    weights = case["weights"]
    modulus_bits = case["modulus_bits"]
    updates = case["updates"]
    assert isinstance(clipping_range, float) and isinstance(quantisation_bits, int)
    assert isinstance(weights, list) and isinstance(updates, list)
    assert isinstance(modulus_bits, int)
    rng = np.random.default_rng(case["seed"])  # type: ignore[arg-type]
    encoded = [
        encode_update(
            update,
            weight=weight,
            clipping_range=clipping_range,
            quantisation_bits=quantisation_bits,
            modulus_bits=modulus_bits,
            rng=rng,
        )
        for update, weight in zip(updates, weights, strict=True)
    ]
    width = updates[0].size
    assert all(e.shape == (encoded_length(width),) and e.dtype == np.uint64 for e in encoded)
    assert [int(e[-1]) for e in encoded] == weights
    weighted_sum, weight_total = decode_update_sum(
        ring_sum(encoded, modulus_bits),
        clipping_range=clipping_range,
        quantisation_bits=quantisation_bits,
    )
    assert weight_total == sum(weights)
    assert weighted_sum.shape == (width,) and weighted_sum.dtype == np.float64
    expected = sum(
        w * np.clip(u, -clipping_range, clipping_range)
        for u, w in zip(updates, weights, strict=True)
    )
    step = quantisation_step(clipping_range=clipping_range, quantisation_bits=quantisation_bits)
    bound = weight_total * step
    # Stochastic rounding moves each value by less than one step; float error is far smaller.
    slack = 1e-9 * weight_total * clipping_range
    assert np.all(np.abs(weighted_sum - expected) <= bound + slack)


def test_an_update_of_any_shape_is_flattened_and_carries_its_weight() -> None:
    update = np.array([[-5.0, 0.0], [5.0, 1.0]])
    encoded = encode_update(
        update,
        weight=3,
        clipping_range=1.0,
        quantisation_bits=8,
        modulus_bits=32,
        rng=np.random.default_rng(0),
    )
    assert encoded.shape == (5,)
    assert encoded[-1] == 3
    assert encoded[0] == 0  # clipped to -c: level 0
    assert encoded[2] == 3 * 255  # clipped to +c: the top level, times the weight


@pytest.mark.parametrize(
    ("weight", "match"),
    [
        (0, r"'weight' parameter of weight_quantised must be in \[1, 2\*\*16\)"),
        (1 << 16, r"must be in \[1, 2\*\*16\)"),
        (2.5, "'weight' parameter of weight_quantised must be an integer"),
        (True, "must be an integer"),
    ],
)
def test_bad_weights_are_refused(weight: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        encode_update(
            np.zeros(3),
            weight=weight,  # type: ignore[arg-type]
            clipping_range=1.0,
            quantisation_bits=4,
            modulus_bits=16,
            rng=np.random.default_rng(0),
        )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_updates_are_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="must be finite"):
        encode_update(
            np.array([0.0, value]),
            weight=1,
            clipping_range=1.0,
            quantisation_bits=4,
            modulus_bits=16,
            rng=np.random.default_rng(0),
        )


def test_a_sum_without_weight_has_no_mean() -> None:
    with pytest.raises(ConfigError, match="summed weight of a secure aggregate is 0"):
        decode_update_sum(np.zeros(4, np.uint64), clipping_range=1.0, quantisation_bits=4)
