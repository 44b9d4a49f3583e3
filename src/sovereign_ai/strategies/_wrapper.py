"""A base for strategies that wrap another one and change only part of what it does.

FedProx (a proximal term in every train instruction), a plug-in that re-weights updates, and the
differential-privacy wrapper (clipping and noise around any strategy) each change one or two hooks
of an inner strategy. :class:`StrategyWrapper` forwards every member of the
:class:`~sovereign_ai.core.Strategy` protocol to the inner strategy, so a wrapper overrides only
what it changes, and a member added to the protocol later reaches every wrapper at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import numpy as np

from sovereign_ai.core import FloatArray, NodeInstruction, Parameters, Result, Strategy
from sovereign_ai.errors import ConfigError
from sovereign_ai.strategies._base import describe

__all__ = ["StrategyWrapper"]


class StrategyWrapper:
    """Forward every member of the Strategy protocol to ``inner``; subclasses override some.

    Composition rather than inheritance: the wrapper works around *any* strategy, built-in or
    not, and does not depend on how the inner one is written.

    Parameters
    ----------
    inner
        The strategy wrapped, e.g. ``FedAvg(min_train_nodes=3)``.

    Raises
    ------
    ConfigError
        If ``inner`` is not a :class:`~sovereign_ai.core.Strategy` instance.

    Notes
    -----
    Forwarded: ``needs_individual_updates``, ``min_train_nodes``, ``min_evaluate_nodes``,
    ``configure_train``, ``aggregate_train``, ``configure_evaluate``, ``aggregate_evaluate``,
    ``state_dict`` and ``load_state_dict``. A wrapper that keeps state of its own overrides
    ``state_dict``/``load_state_dict`` and stores the inner state under its own keys (say,
    prefixed ``inner.``), so that a resumed coordinator restores both.

    The ``repr`` lists the constructor's parameters the wrapper keeps under their own names
    (``inner`` here), like every built-in strategy.

    Examples
    --------
    >>> from sovereign_ai.strategies import FedAvg
    >>> class Tagged(StrategyWrapper):
    ...     def configure_train(self, **kwargs):
    ...         return [
    ...             NodeInstruction(node_id=i.node_id, config={**i.config, "tag": "x"})
    ...             for i in self.inner.configure_train(**kwargs)
    ...         ]
    >>> Tagged(FedAvg(min_train_nodes=1)).min_train_nodes
    1
    """

    def __init__(self, inner: Strategy) -> None:
        # A class passes a runtime protocol check too (its methods are attributes).
        if inspect.isclass(inner) or not isinstance(inner, Strategy):
            got = f"the class {inner.__name__}" if inspect.isclass(inner) else type(inner).__name__
            raise ConfigError(
                f"The 'inner' parameter of {type(self).__name__} must be a Strategy instance "
                f"(see sovereign_ai.core.Strategy); got {got} instead."
            )
        self.inner = inner

    def __repr__(self) -> str:
        return describe(self)

    @property
    def needs_individual_updates(self) -> bool:
        """The inner strategy's: whether it needs each update rather than their sum."""
        return self.inner.needs_individual_updates

    @property
    def min_train_nodes(self) -> int:
        """Fewest train results with which a round may be aggregated (the inner strategy's)."""
        return self.inner.min_train_nodes

    @property
    def min_evaluate_nodes(self) -> int:
        """Fewest evaluate results whose metrics are reported (the inner strategy's)."""
        return self.inner.min_evaluate_nodes

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """The inner strategy's training cohort and settings."""
        return self.inner.configure_train(
            round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
        )

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """The inner strategy's next global parameters."""
        return self.inner.aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )

    def configure_evaluate(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """The inner strategy's evaluating nodes and settings."""
        return self.inner.configure_evaluate(
            round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
        )

    def aggregate_evaluate(
        self,
        *,
        round_number: int,
        results: Sequence[Result],
    ) -> dict[str, float]:
        """The inner strategy's round metrics."""
        return self.inner.aggregate_evaluate(round_number=round_number, results=results)

    def state_dict(self) -> dict[str, FloatArray]:
        """The inner strategy's state (the wrapper itself keeps none)."""
        return self.inner.state_dict()

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        """Restore the inner strategy's state, written by :meth:`state_dict`."""
        self.inner.load_state_dict(state)
