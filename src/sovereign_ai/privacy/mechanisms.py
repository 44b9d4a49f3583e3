"""The Gaussian mechanism's pieces: L2 clipping, noise, and each node's share of distributed noise.

Client-level DP-FedAvg (McMahan et al., "Learning Differentially Private Recurrent Language
Models", ICLR 2018) clips every node's update to L2 norm ``C`` on the node and adds Gaussian noise
of standard deviation ``z C`` to the sum of the clipped updates, where ``z`` is the noise
multiplier the accountant is given (:mod:`.accounting`). The noise is added either

- **centrally**, by the coordinator, to the aggregate — the coordinator then sees the clipped
  updates (or, with secure aggregation, their sum) before the noise; or
- **distributed**, by each node, to its own update before masking: each of ``n`` nodes adds
  ``N(0, (z C)² / n_min)``, so that the sum over any ``n_min`` or more survivors carries at least
  the target variance ``(z C)²`` although no one ever sees a single noised update. With secure
  aggregation the coordinator learns only that sum. Fewer than ``n_min`` survivors would leave
  less noise than accounted, which is why ``n_min`` is the round's minimum (the secure-aggregation
  threshold or the strategy's quorum, the larger): a round with fewer survivors does not complete.

Noise comes from :func:`noise_generator`, seeded from the operating system's entropy pool, never
from a job seed: noise that anyone could regenerate protects nothing.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError

__all__ = [
    "clip_l2",
    "distributed_noise_std",
    "gaussian_noise",
    "l2_norm",
    "noise_generator",
]


def noise_generator() -> np.random.Generator:
    """A generator seeded with 256 bits from the operating system, for privacy noise only.

    Notes
    -----
    Floating-point Gaussian samplers have known weaknesses against an adversary who sees the
    exact noised values (Mironov, "On Significance of the Least Significant Bits for
    Differential Privacy", CCS 2012). Under secure aggregation the noised update is also
    quantised before it leaves, which removes the low-order bits that attack relies on.
    """
    return np.random.default_rng(np.random.SeedSequence(secrets.randbits(256)))


def l2_norm(vector: NDArray[np.floating]) -> float:
    """The L2 norm of a vector of any shape, computed in float64."""
    return float(np.linalg.norm(np.ravel(np.asarray(vector, dtype=np.float64))))


def clip_l2(vector: NDArray[np.floating], *, clip: float) -> tuple[NDArray[np.float64], float]:
    """``vector`` scaled down to L2 norm at most ``clip``, and its norm before clipping.

    Raises
    ------
    ConfigError
        If ``clip`` is not a finite number > 0 or the vector is not finite.
    """
    if not math.isfinite(clip) or clip <= 0:
        raise ConfigError(
            f"The 'clip' parameter of clip_l2 must be a finite number > 0; got {clip!r}."
        )
    as_float = np.asarray(vector, dtype=np.float64)
    if not np.all(np.isfinite(as_float)):
        raise ConfigError("A vector to clip must be finite; it contains NaN or infinity.")
    norm = l2_norm(as_float)
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return as_float * scale, norm


def gaussian_noise(
    shape: tuple[int, ...], *, std: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Independent ``N(0, std²)`` values of ``shape``.

    Raises
    ------
    ConfigError
        If ``std`` is negative or not finite.
    """
    if not math.isfinite(std) or std < 0:
        raise ConfigError(f"The noise 'std' must be a finite number >= 0; got {std!r}.")
    return rng.normal(0.0, std, size=shape)


def distributed_noise_std(
    *, noise_multiplier: float, clip: float, minimum_contributors: int
) -> float:
    """Each node's noise standard deviation so that any ``minimum_contributors`` of them add up
    to at least ``noise_multiplier * clip``: ``z C / sqrt(n_min)``.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
        raise ConfigError(f"'noise_multiplier' must be > 0; got {noise_multiplier!r}.")
    if not math.isfinite(clip) or clip <= 0:
        raise ConfigError(f"'clip' must be > 0; got {clip!r}.")
    if isinstance(minimum_contributors, bool) or minimum_contributors < 1:
        raise ConfigError(
            f"'minimum_contributors' must be an integer >= 1; got {minimum_contributors!r}."
        )
    return noise_multiplier * clip / math.sqrt(minimum_contributors)
