"""Example-weighted averaging of the metrics nodes report from an evaluate (or train) stage."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sovereign_ai.core import Result
from sovereign_ai.errors import FederationError

__all__ = ["weighted_metrics"]

_RESERVED_METRIC = "num_examples"  # the key under which the total example count is returned


def weighted_metrics(*, round_number: int, results: Sequence[Result]) -> dict[str, float]:
    """Example-weighted mean of every reported metric plus ``num_examples``, the total."""
    names: set[str] = set()
    for result in results:
        if result.num_examples < 0:
            raise FederationError(
                f"Round {round_number}: node {result.node_id!r} reports "
                f"{result.num_examples} examples; must be >= 0."
            )
        if _RESERVED_METRIC in result.metrics:
            raise FederationError(
                f"Round {round_number}: node {result.node_id!r} reports a metric named "
                f"{_RESERVED_METRIC!r}, which is reserved for the total example count."
            )
        for name, value in result.metrics.items():
            if not math.isfinite(value):
                raise FederationError(
                    f"Round {round_number}: node {result.node_id!r} reports metric "
                    f"{name!r}={value!r}; metrics must be finite."
                )
        names.update(result.metrics)
    merged: dict[str, float] = {}
    for name in sorted(names):
        pairs = [
            (float(r.num_examples), float(r.metrics[name])) for r in results if name in r.metrics
        ]
        total = math.fsum(weight for weight, _ in pairs)
        if total <= 0.0:
            raise FederationError(
                f"Round {round_number}: the nodes reporting metric {name!r} hold 0 examples "
                "between them; an example-weighted mean is undefined."
            )
        merged[name] = math.fsum(weight * value for weight, value in pairs) / total
    merged[_RESERVED_METRIC] = float(sum(r.num_examples for r in results))
    return merged
