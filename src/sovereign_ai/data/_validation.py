"""Checks on the arguments the data package's public functions take.

Each check raises :class:`~sovereign_ai.errors.ConfigError` in the house shape, "The 'x' parameter
of Y must be …; got … instead.", and returns the value in the type the caller works with.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import ConfigError

__all__ = [
    "Int64Array",
    "check_int",
    "check_labels",
    "check_num_nodes",
    "check_positive_float",
    "check_seed",
]

Int64Array = npt.NDArray[np.int64]

_MAX_SEED = 2**32 - 1  # numpy.random.RandomState, which sklearn uses, takes 32-bit seeds


def check_int(value: object, *, name: str, owner: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an integer >= {minimum}; "
            f"got {value!r} instead."
        )
    number = int(value)
    if number < minimum:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an integer >= {minimum}; "
            f"got {number!r} instead."
        )
    return number


def check_seed(value: object, *, owner: str) -> int:
    """Return an integer seed in ``[0, 2**32)``, the range every numpy and sklearn RNG accepts."""
    seed = check_int(value, name="seed", owner=owner, minimum=0)
    if seed > _MAX_SEED:
        raise ConfigError(
            f"The 'seed' parameter of {owner} must be an integer in [0, 2**32); "
            f"got {seed!r} instead."
        )
    return seed


def check_positive_float(value: object, *, name: str, owner: str) -> float:
    """Return ``value`` as a finite ``float`` strictly greater than zero."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a finite number > 0; got {value!r} instead."
        )
    number = float(value)
    if not math.isfinite(number) or number <= 0.0:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a finite number > 0; got {value!r} instead."
        )
    return number


def check_labels(labels: npt.ArrayLike, *, owner: str) -> Int64Array:
    """Return ``labels`` as a non-empty 1-D int64 array of non-negative class indices."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(
            f"The 'labels' parameter of {owner} must be a non-empty 1-D array; "
            f"got shape {array.shape} instead."
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(
            f"The 'labels' parameter of {owner} must hold integer class indices; "
            f"got dtype {array.dtype} instead."
        )
    if int(array.min()) < 0:
        raise ConfigError(
            f"The 'labels' parameter of {owner} must hold class indices >= 0; "
            f"got {int(array.min())} instead."
        )
    return array.astype(np.int64, copy=False)


def check_num_nodes(value: object, *, owner: str, num_examples: int) -> int:
    """Return ``value`` as a node count in ``[1, num_examples]``: every node gets a row."""
    num_nodes = check_int(value, name="num_nodes", owner=owner, minimum=1)
    if num_nodes > num_examples:
        raise ConfigError(
            f"The 'num_nodes' parameter of {owner} must be at most the {num_examples} rows, so "
            f"that every node gets one; got {num_nodes!r} instead."
        )
    return num_nodes
