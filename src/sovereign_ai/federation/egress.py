"""The node's one way out: every answer passes through an ordered pipeline before it is sent.

What may leave a data owner's site is decided at the site. The pipeline has fixed slots, filled by
later capabilities, always applied in this order::

    policy   -> the site's rules: may this leave at all? (governance)
    privacy  -> clip and noise, and account for it in the site's ledger (differential privacy)
    masking  -> quantise and mask, so only the cohort's sum is readable (secure aggregation)
    audit    -> a last look at the answer as it will leave (free for extensions and tests)

A filter takes the task and the answer so far and returns the answer to send (or raises to refuse
it). The order is the design's, not the caller's: privacy noise must be added before masking.

The audit log's record of what leaves is made one step later, where the bytes exist: in the
deployment transport's egress guard (``transports/grpc/_egress_guard.py``), which records each
call with the SHA-256 of the exact bytes before sending it, including refusals and long-polls,
which never pass through this pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sovereign_ai.core import Result, Task
from sovereign_ai.errors import ConfigError

__all__ = ["EGRESS_SLOTS", "EgressFilter", "EgressPipeline"]

EGRESS_SLOTS: Final = ("policy", "privacy", "masking", "audit")

EgressFilter = Callable[[Task, Result], Result]
"""Returns the answer to send for a task (possibly changed), or raises to refuse sending it."""


class EgressPipeline:
    """The ordered filters every outgoing answer of a node passes through."""

    def __init__(self) -> None:
        self._filters: dict[str, EgressFilter] = {}

    def install(self, slot: str, egress_filter: EgressFilter) -> None:
        """Fill ``slot`` (one of :data:`EGRESS_SLOTS`) with ``egress_filter``.

        Raises
        ------
        ConfigError
            If the slot is unknown or already filled (one capability owns each slot).
        """
        if slot not in EGRESS_SLOTS:
            raise ConfigError(
                f"The 'slot' parameter of EgressPipeline.install must be one of "
                f"{', '.join(EGRESS_SLOTS)}; got {slot!r} instead."
            )
        if slot in self._filters:
            raise ConfigError(f"The egress slot {slot!r} is already filled.")
        self._filters[slot] = egress_filter

    @property
    def installed(self) -> tuple[str, ...]:
        """The filled slots, in the order they run."""
        return tuple(slot for slot in EGRESS_SLOTS if slot in self._filters)

    def __call__(self, task: Task, result: Result) -> Result:
        """The answer as it leaves: ``result`` passed through every filled slot, in order.

        Raises
        ------
        StaleMessageError
            If a filter returned an answer that no longer answers ``task``.
        """
        for slot in self.installed:
            result = self._filters[slot](task, result)
            result.check_answers(task)
        return result
