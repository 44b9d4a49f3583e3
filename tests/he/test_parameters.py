"""Parameter sets: 128-bit secure by the standard's bounds, deep and precise enough, or refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.he import CkksParameters, parameters_for

BOUNDS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


@given(depth=st.integers(0, 12), precision=st.integers(5, 30), integer=st.integers(1, 20))
def test_chosen_parameters_are_secure_and_fit(depth: int, precision: int, integer: int) -> None:
    try:
        chosen = parameters_for(depth, precision_bits=precision, integer_bits=integer)
    except ConfigError:
        assert precision + 20 + integer > 60 or depth * (precision + 20) > 800
        return
    assert chosen.total_bits <= BOUNDS[chosen.poly_modulus_degree]
    assert chosen.depth >= depth and chosen.precision_bits >= precision
    smaller = [n for n in BOUNDS if n < chosen.poly_modulus_degree]
    assert all(chosen.total_bits > BOUNDS[n] for n in smaller)  # the smallest ring that fits


def test_the_tutorial_setting_is_refused_for_its_precision() -> None:
    toy = CkksParameters(4096, (40, 20, 40), 20)
    with pytest.raises(ConfigError, match="errors near 1"):
        toy.check(depth=1, precision_bits=10)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (CkksParameters(4096, (60, 40, 60), 40), "below 128-bit security"),
        (CkksParameters(2048, (30, 30), 30), "ring size"),
        (CkksParameters(8192, (60, 40, 30, 60), 40), "middle prime"),
        (CkksParameters(8192, (60, 40, 60), 40), "allow 1 multiplication"),
        (CkksParameters(8192, (45, 40, 45), 40), "first prime"),
    ],
)
def test_unfit_parameters_are_refused_with_the_reason(
    parameters: CkksParameters, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parameters.check(depth=3 if "allow" in message else 1, integer_bits=10)


def test_the_models_sets() -> None:
    linear, mlp = parameters_for(1), parameters_for(3, precision_bits=12, integer_bits=10)
    assert (linear.poly_modulus_degree, linear.coeff_mod_bit_sizes) == (8192, (50, 35, 50))
    assert mlp.poly_modulus_degree == 8192 and mlp.depth == 3
