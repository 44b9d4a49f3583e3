"""Jurisdiction codes, as a federation file states a coordinator's and a node policy asks for."""

from __future__ import annotations

import re

__all__ = ["check_jurisdiction"]

_JURISDICTION = re.compile(r"^[A-Z]{2}$")


def check_jurisdiction(value: str) -> str:
    """Return ``value`` if it is a jurisdiction code: two capitals (ISO 3166-1 alpha-2, or EU).

    Raises
    ------
    ValueError
        Otherwise (a pydantic validator turns it into an error naming the key).
    """
    if not _JURISDICTION.fullmatch(value):
        raise ValueError(
            "must be a two-letter code in capitals (ISO 3166-1 alpha-2, or 'EU'), as the "
            f"federation CA writes it into the coordinator's certificate; got {value!r}"
        )
    return value
