"""Coordinate-wise trimmed-mean aggregation.

D. Yin, Y. Chen, K. Ramchandran and P. Bartlett, "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018 (arXiv:1803.01498), Section 3, Option II (trimmed-mean GD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import Parameters, Result
from sovereign_ai.strategies._base import BaseStrategy
from sovereign_ai.strategies._validation import check_float

__all__ = ["FedTrimmedAvg"]


class FedTrimmedAvg(BaseStrategy):
    """Move the global model by the coordinate-wise ``beta``-trimmed mean of the updates.

    For every scalar independently, the ``floor(beta * n)`` largest and as many smallest of the
    ``n`` nodes' values are dropped and the rest averaged. ``beta = 0`` is the unweighted mean.

    Parameters
    ----------
    beta
        Fraction trimmed from *each* end, in ``[0, 0.5)``; it should exceed the expected share of
        Byzantine nodes.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    ``num_examples`` does not weight the mean: it is self-reported, and a Byzantine node could
    inflate it. Stateless. The result does not depend on the order of ``results``.
    """

    needs_individual_updates = True  # trimming sorts every update's values

    def __init__(
        self,
        *,
        beta: float = 0.2,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 1,
    ) -> None:
        super().__init__(
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
        )
        self.beta = check_float(
            beta, name="beta", owner=type(self).__name__, low=0.0, high=0.5, include_high=False
        )

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the coordinate-wise trimmed mean update.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than :attr:`min_train_nodes`.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite or a node answers twice.
        """
        stack = self._stack_updates(
            round_number=round_number, parameters=parameters, results=results
        )
        count = stack.updates.shape[0]
        # round() first so that 0.29 * 100 == 28.999999999999996 trims 29, not 28
        trimmed = math.floor(round(self.beta * count, 9))  # per end; < count / 2 as beta < 0.5
        ordered = np.sort(stack.updates, axis=0)  # (n, d), each column ascending
        update = ordered[trimmed : count - trimmed].mean(axis=0)  # (d,)
        return self._apply_update(round_number=round_number, parameters=parameters, update=update)
