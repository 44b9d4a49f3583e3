"""uint64 vector arithmetic modulo 2**b agrees with Python's exact integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg import modular_add, modular_subtract, modular_sum


@st.composite
def vectors(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    bits = draw(st.integers(min_value=1, max_value=64))
    length = draw(st.integers(min_value=1, max_value=20))
    count = draw(st.integers(min_value=1, max_value=6))
    element = st.integers(min_value=0, max_value=(1 << bits) - 1)
    rows = [draw(st.lists(element, min_size=length, max_size=length)) for _ in range(count)]
    return bits, rows


def as_array(row: list[int]) -> np.ndarray:
    return np.array(row, dtype=np.uint64)


@settings(max_examples=80, deadline=None)
@given(case=vectors())
def test_operations_match_exact_integer_arithmetic(case: tuple[int, list[list[int]]]) -> None:
    bits, rows = case
    modulus = 1 << bits
    first, last = rows[0], rows[-1]
    added = modular_add(as_array(first), as_array(last), modulus_bits=bits)
    subtracted = modular_subtract(as_array(first), as_array(last), modulus_bits=bits)
    total = modular_sum((as_array(row) for row in rows), modulus_bits=bits)
    assert added.tolist() == [(a + b) % modulus for a, b in zip(first, last, strict=True)]
    assert subtracted.tolist() == [(a - b) % modulus for a, b in zip(first, last, strict=True)]
    assert total.tolist() == [sum(column) % modulus for column in zip(*rows, strict=True)]


def test_a_sum_does_not_modify_its_inputs() -> None:
    first = np.array([2**63, 5], dtype=np.uint64)
    total = modular_sum([first, first], modulus_bits=64)
    assert total.tolist() == [0, 10]
    assert first.tolist() == [2**63, 5]


def test_bad_inputs_are_refused() -> None:
    vector = np.zeros(3, dtype=np.uint64)
    with pytest.raises(ConfigError, match="at least one vector"):
        modular_sum([], modulus_bits=32)
    with pytest.raises(ConfigError, match=r"vectors\[1\] has shape \(2,\)"):
        modular_sum([vector, np.zeros(2, dtype=np.uint64)], modulus_bits=32)
    with pytest.raises(ConfigError, match="dtype uint64; got int64"):
        modular_add(vector, np.zeros(3, dtype=np.int64), modulus_bits=32)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'modulus_bits' parameter .* \[1, 64\]; got 65"):
        modular_subtract(vector, vector, modulus_bits=65)
