"""Built-in strategies by name, so a job file can say ``name = "fedadam"``.

Options are checked against the strategy's constructor before it is called, so a misspelt option
is a :class:`~sovereign_ai.errors.ConfigError` naming the allowed ones rather than a ``TypeError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

from sovereign_ai.core import Strategy
from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.strategies.bulyan import Bulyan
from sovereign_ai.strategies.fedadagrad import FedAdagrad
from sovereign_ai.strategies.fedadam import FedAdam
from sovereign_ai.strategies.fedavg import FedAvg
from sovereign_ai.strategies.fedavgm import FedAvgM
from sovereign_ai.strategies.fedprox import FedProx
from sovereign_ai.strategies.fedyogi import FedYogi
from sovereign_ai.strategies.krum import Krum, MultiKrum
from sovereign_ai.strategies.median import FedMedian
from sovereign_ai.strategies.trimmed_mean import FedTrimmedAvg

__all__ = ["create_strategy", "strategy_names"]

_STRATEGIES: Mapping[str, Callable[..., Strategy]] = MappingProxyType(
    {
        "bulyan": Bulyan,
        "fedadagrad": FedAdagrad,
        "fedadam": FedAdam,
        "fedavg": FedAvg,
        "fedavgm": FedAvgM,
        "fedmedian": FedMedian,
        "fedprox": FedProx,
        "fedtrimmedavg": FedTrimmedAvg,
        "fedyogi": FedYogi,
        "krum": Krum,
        "multikrum": MultiKrum,
    }
)


def strategy_names() -> list[str]:
    """Names :func:`create_strategy` accepts, sorted.

    Returns
    -------
    list of str
        ``bulyan``, ``fedadagrad``, ``fedadam``, ``fedavg``, ``fedavgm``, ``fedmedian``,
        ``fedprox``, ``fedtrimmedavg``, ``fedyogi``, ``krum``, ``multikrum``.
    """
    return sorted(_STRATEGIES)


def create_strategy(name: str, **options: object) -> Strategy:
    """Build a built-in strategy by name with keyword options.

    Parameters
    ----------
    name
        One of :func:`strategy_names`, e.g. ``"fedavg"``.
    **options
        Keyword arguments of that strategy's constructor, e.g. ``min_train_nodes=3``.

    Returns
    -------
    Strategy
        A fresh strategy instance.

    Raises
    ------
    UnknownNameError
        If ``name`` is not a registered strategy.
    ConfigError
        If an option is not accepted by that strategy, or has an invalid value.

    Examples
    --------
    >>> create_strategy("fedtrimmedavg", beta=0.1, min_train_nodes=5)
    FedTrimmedAvg(beta=0.1, fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=5, min_evaluate_nodes=1)
    """  # noqa: E501
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise UnknownNameError("strategy", str(name), list(_STRATEGIES))
    factory = _STRATEGIES[name]
    allowed = [
        parameter.name
        for parameter in inspect.signature(factory).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"The option(s) {', '.join(repr(o) for o in unknown)} of strategy {name!r} are not "
            f"accepted; expected some of: {', '.join(allowed)}."
        )
    return factory(**options)
