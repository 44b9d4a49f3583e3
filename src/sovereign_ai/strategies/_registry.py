"""Strategies by name, so a job file can say ``name = "fedadam"``: built-ins and plug-ins.

Installed packages add strategies through entry points of group ``sovereign_ai.strategies``, each
naming a callable that returns a :class:`~sovereign_ai.core.Strategy` (see
:mod:`sovereign_ai.core.plugins`). Only the coordinator aggregates, so only it needs them.

Options are checked against the strategy's constructor before it is called, so a misspelt option
is a :class:`~sovereign_ai.errors.ConfigError` naming the allowed ones rather than a ``TypeError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

from sovereign_ai.core import PluginRegistry, Strategy
from sovereign_ai.errors import ConfigError
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

__all__ = ["BUILT_IN_STRATEGIES", "STRATEGY_PLUGIN_GROUP", "create_strategy", "strategy_names"]

STRATEGY_PLUGIN_GROUP = "sovereign_ai.strategies"
"""Entry point group through which installed packages add strategies: each names a callable that
takes keyword options and returns a :class:`~sovereign_ai.core.Strategy`."""


def _factory_problem(candidate: object) -> str | None:
    """What keeps a plug-in's object from being a strategy factory, or ``None``."""
    # A class passes a runtime protocol check too (its methods are attributes): test instances only.
    is_instance = not inspect.isclass(candidate) and isinstance(candidate, Strategy)
    if is_instance or not callable(candidate):
        return (
            "it must name a callable returning a Strategy (a class or a function); got "
            f"{type(candidate).__name__} instead"
        )
    return None


BUILT_IN_STRATEGIES: Mapping[str, Callable[..., Strategy]] = MappingProxyType(
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
"""The strategies built in, by the name a job file gives them."""


def _strategy_registry() -> PluginRegistry[Callable[..., object]]:
    """A registry of the built-in strategies that reads the ``sovereign_ai.strategies`` group."""
    return PluginRegistry(
        kind="strategy",
        group=STRATEGY_PLUGIN_GROUP,
        built_ins=BUILT_IN_STRATEGIES,
        check=_factory_problem,
    )


_STRATEGIES = _strategy_registry()


def strategy_names() -> list[str]:
    """Names :func:`create_strategy` accepts, sorted.

    Returns
    -------
    list of str
        The built-ins ``bulyan``, ``fedadagrad``, ``fedadam``, ``fedavg``, ``fedavgm``,
        ``fedmedian``, ``fedprox``, ``fedtrimmedavg``, ``fedyogi``, ``krum``, ``multikrum``, plus
        the strategies of installed plug-in packages (entry point group
        ``sovereign_ai.strategies``; listed without importing them).
    """
    return list(_STRATEGIES.names())


def create_strategy(name: str, **options: object) -> Strategy:
    """Build a strategy by name with keyword options.

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
        If ``name`` is neither built in nor offered by an installed plug-in.
    ConfigError
        If an option is not accepted by that strategy, or has an invalid value; or if the plug-in
        offering ``name`` cannot be loaded or does not return a Strategy (the message names its
        distribution and entry point).

    Examples
    --------
    >>> create_strategy("fedtrimmedavg", beta=0.1, min_train_nodes=5)
    FedTrimmedAvg(beta=0.1, fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=5, min_evaluate_nodes=1)
    """  # noqa: E501
    key = name if isinstance(name, str) else str(name)
    factory = _STRATEGIES.get(key)
    _check_options(key, factory, options)
    strategy = factory(**options)
    if not isinstance(strategy, Strategy):
        entry_point = _STRATEGIES.entry_point(key)
        fix = f" Fix the package '{entry_point.distribution}'." if entry_point else ""
        origin = entry_point.describe() if entry_point else f"factory of strategy {key!r}"
        members = [member for member in vars(Strategy) if not member.startswith("_")]
        missing = ", ".join(member for member in members if not hasattr(strategy, member))
        raise ConfigError(
            f"The {origin} must return a Strategy; got {type(strategy).__name__} instead. "
            f"It lacks: {missing}.{fix}"
        )
    return strategy


def _check_options(name: str, factory: Callable[..., object], options: dict[str, object]) -> None:
    """Refuse options the factory does not take, naming them and the ones it does."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: the call itself decides
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    allowed = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"The option(s) {', '.join(repr(o) for o in unknown)} of strategy {name!r} are not "
            f"accepted; expected some of: {', '.join(allowed) or 'none'}."
        )
