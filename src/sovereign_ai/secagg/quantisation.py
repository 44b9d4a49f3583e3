"""Quantisation of float updates into the ring ``Z_{2**b}`` and back, for secure aggregation.

Masks only hide integers modulo ``R``, so each node maps its update to integers before masking and
the coordinator maps the unmasked sum back (Bonawitz et al., CCS 2017, §3; Bell et al., CCS 2020,
§5; the clip-and-stochastically-round scheme is that of Flower's and TensorFlow Federated's secure
aggregation, analysed as unbiased stochastic quantisation by Suresh et al., "Distributed Mean
Estimation with Limited Communication", ICML 2017):

1. clip every value to ``[-c, c]``;
2. scale it affinely onto ``[0, 2**q - 1]``: ``s = (x + c) * (2**q - 1) / (2 c)``;
3. round *stochastically*: up with probability ``s - floor(s)``, so ``E[round(s)] = s`` exactly
   (unbiased; the error of one value is below one step ``2 c / (2**q - 1)``). The randomness is
   not secret — a seeded :class:`numpy.random.Generator` is enough;
4. optionally multiply by the node's integer weight ``w`` (its example count) for a weighted mean;
   the node sends ``w`` too, summed under the mask, so no single count is revealed;
5. the masked sum is taken modulo ``2**b``; it equals the true integer sum only if that sum
   cannot reach ``2**b``, which :func:`check_fits` verifies at configuration time;
6. dequantise the sum ``S`` of vectors whose weights add up to ``W``:
   ``sum_i w_i x_i ≈ S * 2 c / (2**q - 1) - W c`` (the offset ``c`` is undone ``W`` times; with
   unit weights ``W = m``, the number of vectors).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg.modular import MAX_MODULUS_BITS, check_modulus_bits

__all__ = [
    "check_fits",
    "dequantise_sum",
    "quantisation_step",
    "quantise",
    "weight_quantised",
]


def _check_quantisation(clipping_range: float, quantisation_bits: int, owner: str) -> None:
    if not np.isfinite(clipping_range) or clipping_range <= 0:
        raise ConfigError(
            f"The 'clipping_range' parameter of {owner} must be a finite number > 0; "
            f"got {clipping_range!r} instead."
        )
    if isinstance(quantisation_bits, bool) or not 1 <= quantisation_bits <= MAX_MODULUS_BITS - 1:
        raise ConfigError(
            f"The 'quantisation_bits' parameter of {owner} must be an integer in "
            f"[1, {MAX_MODULUS_BITS - 1}]; got {quantisation_bits!r} instead."
        )


def quantisation_step(*, clipping_range: float, quantisation_bits: int) -> float:
    """The float distance between neighbouring integer levels: ``2 c / (2**q - 1)``."""
    _check_quantisation(clipping_range, quantisation_bits, "quantisation_step")
    return 2.0 * clipping_range / float((1 << quantisation_bits) - 1)


def quantise(
    values: NDArray[np.floating],
    *,
    clipping_range: float,
    quantisation_bits: int,
    rng: np.random.Generator,
) -> NDArray[np.uint64]:
    """Clip to ``[-c, c]`` and stochastically round onto the integers ``[0, 2**q)``.

    Parameters
    ----------
    values
        Any shape, finite floats.
    clipping_range
        ``c`` > 0; values outside ``[-c, c]`` are clipped (biased there: choose ``c`` to cover
        the updates).
    quantisation_bits
        ``q``: levels ``0 .. 2**q - 1``.
    rng
        Source of the rounding coins (need not be secret).

    Returns
    -------
    numpy.ndarray
        Same shape as ``values``, ``uint64``, each in ``[0, 2**q)``.

    Raises
    ------
    ConfigError
        If a value is not finite or a parameter is out of range.
    """
    _check_quantisation(clipping_range, quantisation_bits, "quantise")
    as_float = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(as_float)):
        raise ConfigError(
            "The 'values' parameter of quantise must be finite; it contains NaN or infinity."
        )
    top_level = float((1 << quantisation_bits) - 1)
    # In place, one temporary: scaled = (clip(x) + c) * (2**q - 1) / (2 c), in [0, 2**q - 1].
    scaled = np.clip(as_float, -clipping_range, clipping_range)
    scaled += clipping_range
    scaled *= top_level / (2.0 * clipping_range)
    floor = np.floor(scaled)
    scaled -= floor  # the fractional part
    # Round up with probability equal to the fractional part: E[result] = scaled.
    floor += rng.random(size=scaled.shape) < scaled
    # Float rounding of the scale factor may overshoot the top level by one ulp.
    np.minimum(floor, top_level, out=floor)
    levels: NDArray[np.uint64] = floor.astype(np.uint64)
    return levels


def weight_quantised(
    quantised: NDArray[np.uint64], *, weight: int, modulus_bits: int
) -> NDArray[np.uint64]:
    """``quantised * weight mod 2**b``: a node's contribution to a weighted sum.

    Raises
    ------
    ConfigError
        If ``weight`` is not an integer in ``[1, 2**b)``.
    """
    check_modulus_bits(modulus_bits, owner="weight_quantised")
    if isinstance(weight, bool) or not isinstance(weight, int | np.integer):
        raise ConfigError(
            f"The 'weight' parameter of weight_quantised must be an integer; got {weight!r}."
        )
    if not 1 <= int(weight) < (1 << modulus_bits):
        raise ConfigError(
            f"The 'weight' parameter of weight_quantised must be in [1, 2**{modulus_bits}); "
            f"got {weight!r} instead."
        )
    product = np.empty_like(quantised, dtype=np.uint64)
    np.multiply(quantised, np.uint64(weight), out=product)  # wraps modulo 2**64
    np.bitwise_and(product, np.uint64((1 << modulus_bits) - 1), out=product)
    return product


def dequantise_sum(
    total: NDArray[np.uint64],
    *,
    weight_total: int,
    clipping_range: float,
    quantisation_bits: int,
) -> NDArray[np.float64]:
    """Map the (unmasked) sum of quantised vectors back to the sum of their float values.

    Parameters
    ----------
    total
        ``sum_i w_i * quantise(x_i)``, as unmasking returns it (no wrap-around: see
        :func:`check_fits`).
    weight_total
        ``W = sum_i w_i``; the number of vectors when unweighted.
    clipping_range, quantisation_bits
        As given to :func:`quantise`.

    Returns
    -------
    numpy.ndarray
        ``float64``, same shape: approximately ``sum_i w_i * clip(x_i)``, off by at most
        ``W * quantisation_step`` per element. Divide by ``W`` for the weighted mean.
    """
    _check_quantisation(clipping_range, quantisation_bits, "dequantise_sum")
    if isinstance(weight_total, bool) or weight_total < 1:
        raise ConfigError(
            f"The 'weight_total' parameter of dequantise_sum must be an integer >= 1; "
            f"got {weight_total!r} instead."
        )
    step = quantisation_step(clipping_range=clipping_range, quantisation_bits=quantisation_bits)
    return np.asarray(total, dtype=np.float64) * step - float(weight_total) * clipping_range


def check_fits(
    *, cohort_size: int, quantisation_bits: int, modulus_bits: int, max_weight: int = 1
) -> None:
    """Raise unless the sum of a whole cohort's weighted, quantised vectors fits the modulus.

    The largest possible element of the sum is ``cohort_size * max_weight * (2**q - 1)``, and the
    sum of weights is ``cohort_size * max_weight``; both must stay below ``2**b``, or the modular
    sum wraps around and the aggregate is silently wrong.

    Parameters
    ----------
    cohort_size
        Most nodes whose inputs are summed in one round.
    quantisation_bits
        ``q`` of :func:`quantise`.
    modulus_bits
        ``b`` of the modulus ``2**b``, at most 64.
    max_weight
        Largest weight (example count) one node may use; 1 when unweighted.

    Raises
    ------
    ConfigError
        Saying which setting to change and by how much.
    """
    check_modulus_bits(modulus_bits, owner="check_fits")
    _check_quantisation(1.0, quantisation_bits, "check_fits")
    for name, value in (("cohort_size", cohort_size), ("max_weight", max_weight)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"The {name!r} parameter of check_fits must be an integer >= 1; "
                f"got {value!r} instead."
            )
    largest = cohort_size * max_weight * ((1 << quantisation_bits) - 1)
    if largest < 1 << modulus_bits:
        return
    needed_bits = largest.bit_length()
    spare_bits = modulus_bits - (cohort_size * max_weight).bit_length()
    remedies = []
    if needed_bits <= MAX_MODULUS_BITS:
        remedies.append(f"raise 'modulus_bits' to at least {needed_bits}")
    if spare_bits >= 1:
        remedies.append(f"lower 'quantisation_bits' to at most {spare_bits}")
    remedies.append("reduce 'cohort_size' or 'max_weight'")
    raise ConfigError(
        f"The sum of {cohort_size} node(s) x weight up to {max_weight} x {quantisation_bits}-bit "
        f"quantised values can reach {largest}, which wraps around the modulus "
        f"2**{modulus_bits} and would corrupt the aggregate. To fix it, "
        + ", or ".join(remedies)
        + "."
    )
