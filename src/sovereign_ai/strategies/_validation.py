"""Checks on the options strategy constructors take.

Each check raises :class:`~sovereign_ai.errors.ConfigError` in the house shape, "The 'x' parameter
of Y must be …; got … instead.", and returns the value as the builtin type the strategy stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sovereign_ai.errors import ConfigError

__all__ = ["CohortOptions", "check_float", "check_int"]


def check_int(value: object, *, name: str, owner: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an integer >= {minimum}; "
            f"got {value!r} instead."
        )
    if int(value) < minimum:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an integer >= {minimum}; "
            f"got {value!r} instead."
        )
    return int(value)


def check_float(
    value: object,
    *,
    name: str,
    owner: str,
    low: float,
    high: float = math.inf,
    include_low: bool = True,
    include_high: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` inside the interval from ``low`` to ``high``.

    ``include_low`` and ``include_high`` say whether the interval is closed at either end; an
    infinite ``high`` means "no upper bound".
    """
    left = "[" if include_low else "("
    if math.isinf(high):
        expected = f"a finite number {'>=' if include_low else '>'} {low:g}"
    else:
        right = "]" if include_high else ")"
        expected = f"a number in {left}{low:g}, {high:g}{right}"
    message = f"The {name!r} parameter of {owner} must be {expected}; got {value!r} instead."
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ConfigError(message)
    number = float(value)
    is_inside = (
        math.isfinite(number)
        and (number >= low if include_low else number > low)
        and (number <= high if include_high else number < high)
    )
    if not is_inside:
        raise ConfigError(message)
    return number


@dataclass(frozen=True)
class CohortOptions:
    """Validated cohort settings; build with :meth:`create` so errors name the strategy."""

    fraction_train: float
    fraction_evaluate: float
    min_train_nodes: int
    min_evaluate_nodes: int

    @classmethod
    def create(
        cls,
        *,
        owner: str,
        fraction_train: object,
        fraction_evaluate: object,
        min_train_nodes: object,
        min_evaluate_nodes: object,
    ) -> CohortOptions:
        """Check every option, raising ``ConfigError`` that names ``owner``."""
        return cls(
            fraction_train=check_float(
                fraction_train, name="fraction_train", owner=owner, low=0.0, high=1.0,
                include_low=False,
            ),
            fraction_evaluate=check_float(
                fraction_evaluate, name="fraction_evaluate", owner=owner, low=0.0, high=1.0
            ),
            min_train_nodes=check_int(
                min_train_nodes, name="min_train_nodes", owner=owner, minimum=1
            ),
            min_evaluate_nodes=check_int(
                min_evaluate_nodes, name="min_evaluate_nodes", owner=owner, minimum=0
            ),
        )  # fmt: skip
