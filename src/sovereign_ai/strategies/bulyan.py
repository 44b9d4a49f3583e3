"""Bulyan: Krum-selected updates, then a coordinate-wise mean around the median.

E. M. El Mhamdi, R. Guerraoui and S. Rouault, "The Hidden Vulnerability of Distributed Learning in
Byzantium", ICML 2018 (arXiv:1802.07927), Section 4 ("Bulyan").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import Parameters, Result
from sovereign_ai.strategies._base import BaseStrategy
from sovereign_ai.strategies._krum_scores import krum_scores, pairwise_squared_distances
from sovereign_ai.strategies._validation import check_int

__all__ = ["Bulyan"]


class Bulyan(BaseStrategy):
    """Select updates by repeated Krum, then average each coordinate's values nearest the median.

    From ``n`` updates, ``θ = n - 2f`` are selected one by one with Krum; then, per coordinate,
    the ``β = θ - 2f`` selected values closest to their median are averaged.
    Krum alone bounds how far the chosen update is from the honest ones in norm, but one
    coordinate can still be pushed far; the second, coordinate-wise phase bounds every coordinate.

    Parameters
    ----------
    num_malicious
        ``f``, the number of Byzantine nodes to tolerate, >= 0. A round needs ``n >= 4f + 3``
        updates; :attr:`min_train_nodes` is raised to that if configured lower.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    Selection step ``i`` scores the ``n - i`` remaining updates against each other with
    ``max(1, n - i - f - 2)`` neighbours and moves the best into the selection. ``num_examples``
    is ignored (self-reported). Ties go to the smallest node id. Stateless. Cost
    ``O(n² d + θ n² log n)``.
    """

    needs_individual_updates = True  # selects individual updates with Krum, then trims them

    def __init__(
        self,
        *,
        num_malicious: int = 1,
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
        self.num_malicious = check_int(
            num_malicious, name="num_malicious", owner=type(self).__name__, minimum=0
        )

    def _quorum(self) -> tuple[int, str] | None:
        needed = 4 * self.num_malicious + 3
        return needed, (
            f"Bulyan tolerates num_malicious={self.num_malicious} Byzantine node(s) only with at "
            f"least 4 * {self.num_malicious} + 3 = {needed} updates (El Mhamdi et al. 2018, "
            "Section 4)."
        )

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the Bulyan aggregate of the updates.

        Raises
        ------
        InsufficientNodesError
            If there are fewer than ``max(min_train_nodes, 4f + 3)`` results; a note says why.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite or a node answers twice.
        """
        stack = self._stack_updates(
            round_number=round_number, parameters=parameters, results=results
        )
        count = stack.updates.shape[0]
        distances = pairwise_squared_distances(stack.updates)  # (n, n)
        remaining = list(range(count))
        selected: list[int] = []
        for _ in range(count - 2 * self.num_malicious):  # θ selection steps
            subset = distances[np.ix_(remaining, remaining)]  # (r, r)
            scores = krum_scores(
                subset, num_closest=max(1, len(remaining) - self.num_malicious - 2)
            )  # (r,)
            selected.append(remaining.pop(int(np.argmin(scores))))
        chosen = stack.updates[sorted(selected)]  # (θ, d)
        keep = len(selected) - 2 * self.num_malicious  # β
        median = np.median(chosen, axis=0)  # (d,)
        nearest = np.argsort(np.abs(chosen - median), axis=0, kind="stable")[:keep]  # (β, d)
        update = np.take_along_axis(chosen, nearest, axis=0).mean(axis=0)  # (d,)
        return self._apply_update(round_number=round_number, parameters=parameters, update=update)
