"""Helpers for testing code built on the framework, starting with strategy conformance.

:func:`check_strategy` runs the checks every :class:`~sovereign_ai.core.Strategy` must pass to
plug into the coordinator's round loop; run it in your own test suite on your own strategies.
"""

from sovereign_ai.testing.strategy_conformance import (
    CONFORMANCE_CHECKS,
    StrategyConformanceError,
    check_strategy,
)

__all__ = ["CONFORMANCE_CHECKS", "StrategyConformanceError", "check_strategy"]
