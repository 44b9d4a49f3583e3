"""Vector arithmetic modulo a power of two, on ``uint64`` arrays.

Secure aggregation adds and subtracts masks in the ring of integers modulo ``2**b`` (Bonawitz et
al., CCS 2017, §3: inputs and masks live in ``Z_R``; Bell et al., CCS 2020, use the same ring).
With ``R = 2**b`` and ``1 <= b <= 64`` the arithmetic is exactly numpy's ``uint64`` arithmetic —
which wraps modulo ``2**64``, a multiple of ``2**b`` — followed by keeping the low ``b`` bits.
No Python integers, no overflow checks, one pass per operation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError

__all__ = [
    "MAX_MODULUS_BITS",
    "check_modulus_bits",
    "modular_add",
    "modular_subtract",
    "modular_sum",
]

MAX_MODULUS_BITS = 64
"""Largest supported ``b``: every element is one ``uint64``."""


def check_modulus_bits(modulus_bits: int, *, owner: str = "secure aggregation") -> None:
    """Raise :class:`ConfigError` unless ``1 <= modulus_bits <= 64``."""
    if isinstance(modulus_bits, bool) or not 1 <= modulus_bits <= MAX_MODULUS_BITS:
        raise ConfigError(
            f"The 'modulus_bits' parameter of {owner} must be an integer in "
            f"[1, {MAX_MODULUS_BITS}]; got {modulus_bits!r} instead."
        )


def _low_bits(modulus_bits: int) -> np.uint64:
    return np.uint64((1 << modulus_bits) - 1)


def _as_uint64(vector: NDArray[np.uint64], name: str) -> NDArray[np.uint64]:
    if vector.dtype != np.uint64:
        raise ConfigError(
            f"The {name!r} vector must have dtype uint64; got {vector.dtype} instead."
        )
    return vector


def modular_add(
    a: NDArray[np.uint64], b: NDArray[np.uint64], *, modulus_bits: int
) -> NDArray[np.uint64]:
    """``(a + b) mod 2**modulus_bits``, element-wise; a new array."""
    check_modulus_bits(modulus_bits)
    total = np.add(_as_uint64(a, "a"), _as_uint64(b, "b"))  # wraps modulo 2**64
    np.bitwise_and(total, _low_bits(modulus_bits), out=total)
    return total


def modular_subtract(
    a: NDArray[np.uint64], b: NDArray[np.uint64], *, modulus_bits: int
) -> NDArray[np.uint64]:
    """``(a - b) mod 2**modulus_bits``, element-wise; a new array."""
    check_modulus_bits(modulus_bits)
    difference = np.subtract(_as_uint64(a, "a"), _as_uint64(b, "b"))  # wraps modulo 2**64
    np.bitwise_and(difference, _low_bits(modulus_bits), out=difference)
    return difference


def modular_sum(vectors: Iterable[NDArray[np.uint64]], *, modulus_bits: int) -> NDArray[np.uint64]:
    """Sum of equally shaped ``uint64`` vectors modulo ``2**modulus_bits``, folded one at a time.

    Raises
    ------
    ConfigError
        If there are no vectors, their shapes differ, or one is not ``uint64``.
    """
    check_modulus_bits(modulus_bits)
    total: NDArray[np.uint64] | None = None
    for index, vector in enumerate(vectors):
        _as_uint64(vector, f"vectors[{index}]")
        if total is None:
            total = vector.copy()
        elif vector.shape != total.shape:
            raise ConfigError(
                f"All vectors of a modular sum must have one shape; vectors[{index}] has shape "
                f"{vector.shape} but the first has {total.shape}."
            )
        else:
            np.add(total, vector, out=total)  # wraps modulo 2**64, a multiple of the modulus
    if total is None:
        raise ConfigError("A modular sum needs at least one vector; got none.")
    np.bitwise_and(total, _low_bits(modulus_bits), out=total)
    return total
