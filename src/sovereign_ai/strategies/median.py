"""Coordinate-wise median aggregation.

D. Yin, Y. Chen, K. Ramchandran and P. Bartlett, "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018 (arXiv:1803.01498), Section 3, Option I (median-based GD).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import Parameters, Result
from sovereign_ai.strategies._base import BaseStrategy

__all__ = ["FedMedian"]


class FedMedian(BaseStrategy):
    """Move the global model by the coordinate-wise median of the cohort's updates.

    For every scalar independently, the update applied is the median of the nodes' values (the
    mean of the two middle values when the cohort is even), so fewer than half the nodes cannot
    drag any coordinate outside the range of the honest values.

    Parameters
    ----------
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    ``num_examples`` does not weight the median: it is self-reported, and a Byzantine node could
    claim a huge count to move a weighted median at will. Stateless. The result does not depend
    on the order of ``results``.
    """

    needs_individual_updates = True  # a coordinate-wise median needs every update

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the coordinate-wise median update.

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
        median = np.median(stack.updates, axis=0)  # (d,)
        return self._apply_update(round_number=round_number, parameters=parameters, update=median)
