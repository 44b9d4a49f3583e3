"""Encoding a node's input into the ring ``Z_{2**b}`` before masking, and decoding the sum.

Two encodings, one per kind of input:

- **Model updates** (:func:`encode_update`, :func:`decode_update_sum`): clip, stochastically
  round to ``q`` bits (:mod:`.quantisation`), multiply by the node's weight — its example count,
  capped at ``max_weight`` — and append the weight itself. The sum then carries both
  ``Σ w_i q(x_i)`` and ``Σ w_i``: the coordinator gets the example-weighted mean without learning
  any node's count (weighting as in Bonawitz et al., CCS 2017, §2, where users send weighted
  updates and their weights). :func:`~.quantisation.check_fits` must hold for the cohort.
- **Feature statistics** (:func:`encode_exact`, :func:`decode_exact_sum`): row counts, sums and
  sums of squares are unbounded, so they are not clipped but written as 128-bit two's-complement
  fixed-point numbers with 64 fractional bits, cut into limbs of ``b - bitlen(n)`` bits. Each limb
  position is summed separately, so no limb sum can wrap modulo ``2**b`` for ``n`` nodes; the
  decoder recombines the limbs with Python integers and the sum is exact to ``2**-64`` per node.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg.modular import check_modulus_bits
from sovereign_ai.secagg.quantisation import dequantise_sum, quantise, weight_quantised

__all__ = [
    "decode_exact_sum",
    "decode_update_sum",
    "encode_exact",
    "encode_update",
    "encoded_length",
    "exact_length",
]

_FIXED_BITS = 128
_FRACTION_BITS = 64
_LARGEST_MAGNITUDE = 2.0**60  # bound on one value times the cohort size: the sum fits 63 bits


def encoded_length(values: int) -> int:
    """Elements of an encoded update of ``values`` numbers: one more, for the weight."""
    return values + 1


def encode_update(
    update: NDArray[np.floating],
    *,
    weight: int,
    clipping_range: float,
    quantisation_bits: int,
    modulus_bits: int,
    rng: np.random.Generator,
) -> NDArray[np.uint64]:
    """``[w q(x_1), ..., w q(x_d), w]`` modulo ``2**b``, ``(d + 1,)`` uint64.

    Parameters
    ----------
    update
        The node's update, any shape (flattened), finite.
    weight
        ``w``: the node's weight, an integer >= 1 (its example count, capped by the caller).
    clipping_range, quantisation_bits
        As for :func:`~sovereign_ai.secagg.quantisation.quantise`.
    modulus_bits
        ``b``.
    rng
        The stochastic-rounding coins.
    """
    levels = quantise(
        np.ravel(update),
        clipping_range=clipping_range,
        quantisation_bits=quantisation_bits,
        rng=rng,
    )  # (d,)
    weighted = weight_quantised(levels, weight=weight, modulus_bits=modulus_bits)
    return np.append(weighted, np.uint64(weight))


def decode_update_sum(
    total: NDArray[np.uint64], *, clipping_range: float, quantisation_bits: int
) -> tuple[NDArray[np.float64], int]:
    """The example-weighted sum ``Σ w_i x_i`` (float64, ``(d,)``) and ``W = Σ w_i``.

    Raises
    ------
    ConfigError
        If the summed weight is 0 (an empty sum, or a wrapped one).
    """
    weight_total = int(total[-1])
    if weight_total < 1:
        raise ConfigError("The summed weight of a secure aggregate is 0; there is no mean.")
    weighted_sum = dequantise_sum(
        total[:-1],
        weight_total=weight_total,
        clipping_range=clipping_range,
        quantisation_bits=quantisation_bits,
    )
    return weighted_sum, weight_total


def _limb_bits(modulus_bits: int, cohort_size: int) -> int:
    check_modulus_bits(modulus_bits, owner="exact encoding")
    if isinstance(cohort_size, bool) or cohort_size < 1:
        raise ConfigError(f"The cohort size of an exact encoding must be >= 1; got {cohort_size}.")
    bits = modulus_bits - cohort_size.bit_length()
    if bits < 8:
        raise ConfigError(
            f"A modulus of 2**{modulus_bits} leaves {bits} bits per limb for {cohort_size} nodes; "
            "raise 'modulus_bits' (statistics need at least 8 bits per limb)."
        )
    return bits


def exact_length(values: int, *, modulus_bits: int, cohort_size: int) -> int:
    """Elements of :func:`encode_exact`'s output for ``values`` numbers."""
    return values * math.ceil(_FIXED_BITS / _limb_bits(modulus_bits, cohort_size))


def encode_exact(
    values: NDArray[np.floating], *, modulus_bits: int, cohort_size: int
) -> NDArray[np.uint64]:
    """Fixed-point limbs of ``values`` that sum exactly over up to ``cohort_size`` nodes.

    Raises
    ------
    ConfigError
        If a value is not finite or its magnitude reaches ``2**60`` (the sum must fit 63 integer
        bits): the features are too large to sum exactly; rescale them first.
    """
    bits = _limb_bits(modulus_bits, cohort_size)
    limbs = math.ceil(_FIXED_BITS / bits)
    flat = np.ravel(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(flat)) or (
        flat.size and float(np.max(np.abs(flat))) >= _LARGEST_MAGNITUDE / cohort_size
    ):
        raise ConfigError(
            f"Statistics to sum securely must be finite and below 2**60 / {cohort_size} in "
            "magnitude; these are not. Rescale the features (e.g. to other units) and retry."
        )
    ring = 1 << _FIXED_BITS
    low = (1 << bits) - 1
    out = np.empty(flat.size * limbs, dtype=np.uint64)
    for index, value in enumerate(flat.tolist()):
        fixed = int(math.ldexp(value, _FRACTION_BITS)) % ring  # exact: scaling by 2**64
        for limb in range(limbs):
            out[index * limbs + limb] = (fixed >> (bits * limb)) & low
    return out


def decode_exact_sum(
    total: NDArray[np.uint64], *, modulus_bits: int, cohort_size: int
) -> NDArray[np.float64]:
    """The sums of the encoded values, from the (unmasked) sum of :func:`encode_exact` outputs."""
    bits = _limb_bits(modulus_bits, cohort_size)
    limbs = math.ceil(_FIXED_BITS / bits)
    if total.size % limbs:
        raise ConfigError(f"An exact sum must hold a multiple of {limbs} limbs; got {total.size}.")
    ring = 1 << _FIXED_BITS
    words = [int(x) for x in total.tolist()]
    sums = []
    for start in range(0, len(words), limbs):
        fixed = sum(words[start + limb] << (bits * limb) for limb in range(limbs)) % ring
        if fixed >= ring // 2:  # two's complement: negative
            fixed -= ring
        sums.append(math.ldexp(fixed, -_FRACTION_BITS))
    return np.array(sums, dtype=np.float64)
