"""Which strategies can run under secure aggregation, and the error for those that cannot.

Secure aggregation (SecAgg+, Bell et al. 2020) gives the coordinator only the *sum* of a round's
updates, never one node's. A strategy that uses the updates only through their example-weighted sum
(FedAvg, FedAvgM, FedProx, the FedOpt family) runs unchanged on that sum; one that compares, sorts
or selects individual updates (median, trimmed mean, Krum, Multi-Krum, Bulyan) cannot, and says so
through :attr:`~sovereign_ai.core.Strategy.needs_individual_updates`.
"""

from __future__ import annotations

from sovereign_ai.errors import ConfigError
from sovereign_ai.strategies._registry import BUILT_IN_STRATEGIES

__all__ = ["check_secure_aggregation_compatible", "summable_strategy_names"]


def summable_strategy_names() -> list[str]:
    """Names of the built-in strategies that can run under secure aggregation, sorted.

    Returns
    -------
    list of str
        ``fedadagrad``, ``fedadam``, ``fedavg``, ``fedavgm``, ``fedprox`` and ``fedyogi``: those
        whose ``needs_individual_updates`` is ``False`` with their default options.
    """
    return sorted(
        name
        for name, factory in BUILT_IN_STRATEGIES.items()
        if factory().needs_individual_updates is False
    )


def check_secure_aggregation_compatible(strategy: object, *, name: str | None = None) -> None:
    """Refuse a strategy that needs individual updates, for a job with secure aggregation on.

    Parameters
    ----------
    strategy
        The job's strategy.
    name
        The name the job file gives it (e.g. ``"krum"``), to quote in the error; by default the
        strategy's ``repr``.

    Raises
    ------
    ConfigError
        If ``strategy.needs_individual_updates`` is ``True`` (the message says why it cannot run
        under secure aggregation and which built-in strategies can), or is missing or not a
        ``bool`` (a strategy that does not say is not assumed to work on sums).

    Examples
    --------
    >>> from sovereign_ai.strategies import FedAvg, FedMedian
    >>> check_secure_aggregation_compatible(FedAvg())  # a weighted mean: fine
    >>> check_secure_aggregation_compatible(FedMedian(), name="fedmedian")
    Traceback (most recent call last):
    ...
    sovereign_ai.errors.ConfigError: The strategy of a job with secure aggregation must ...
    """
    label = repr(name) if name is not None else repr(strategy)
    owner = type(strategy).__name__
    flag = getattr(strategy, "needs_individual_updates", None)
    if not isinstance(flag, bool):
        got = "nothing" if flag is None else repr(flag)
        raise ConfigError(
            f"The 'needs_individual_updates' attribute of {owner} must be a bool (True if "
            "aggregate_train needs each node's update, False if the example-weighted sum of the "
            f"updates is enough); got {got} instead. Declare it on the strategy: secure "
            "aggregation only ever gives the coordinator the sum of a round's updates, so a "
            "strategy that does not say is not run under it."
        )
    if flag:
        raise ConfigError(
            "The strategy of a job with secure aggregation must use only the sum of the nodes' "
            f"updates; got {label} instead, which needs each node's update "
            f"({owner}.needs_individual_updates is True). Secure aggregation only ever gives the "
            "coordinator the sum of a round's updates, never one node's, so a rule that compares, "
            "sorts or selects individual updates (median, trimmed mean, Krum, Bulyan) cannot run "
            f"under it. Choose one of {', '.join(summable_strategy_names())}, or turn secure "
            "aggregation off."
        )
