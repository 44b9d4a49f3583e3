"""Krum and Multi-Krum: keep the updates closest to their neighbours.

P. Blanchard, E. M. El Mhamdi, R. Guerraoui and J. Stainer, "Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS 2017, Section 4 (Krum) and Section 5 (Multi-Krum).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import Parameters, Result
from sovereign_ai.strategies._base import BaseStrategy
from sovereign_ai.strategies._krum_scores import krum_scores, pairwise_squared_distances
from sovereign_ai.strategies._validation import check_int

__all__ = ["Krum", "MultiKrum"]


def _krum_quorum(num_malicious: int) -> tuple[int, str]:
    needed = 2 * num_malicious + 3
    return needed, (
        f"Krum tolerates num_malicious={num_malicious} Byzantine node(s) only with at least "
        f"2 * {num_malicious} + 3 = {needed} updates, so that every score sums over "
        "n - f - 2 >= f + 1 neighbours (Blanchard et al. 2017, Section 4)."
    )


class Krum(BaseStrategy):
    """Apply the single update whose ``n - f - 2`` nearest neighbours are closest to it.

    Parameters
    ----------
    num_malicious
        ``f``, the number of Byzantine nodes to tolerate, >= 0. A round needs ``n >= 2f + 3``
        updates; :attr:`min_train_nodes` is raised to that if configured lower.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    ``num_examples`` is ignored (self-reported, so a Byzantine node could inflate it). Ties in the
    score go to the smallest node id. Stateless. Krum keeps one node's update per round, so it
    converges more slowly than averaging on honest data; :class:`MultiKrum` trades some of that
    robustness back for variance.
    """

    needs_individual_updates = True  # scores each update by its distances to the others

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
        return _krum_quorum(self.num_malicious)

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the update with the lowest Krum score.

        Raises
        ------
        InsufficientNodesError
            If there are fewer than ``max(min_train_nodes, 2f + 3)`` results; a note says why.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite or a node answers twice.
        """
        stack = self._stack_updates(
            round_number=round_number, parameters=parameters, results=results
        )
        count = stack.updates.shape[0]
        scores = krum_scores(
            pairwise_squared_distances(stack.updates),
            num_closest=count - self.num_malicious - 2,
        )  # (n,)
        best = int(np.argmin(scores))  # first minimum: the smallest node id on a tie
        return self._apply_update(
            round_number=round_number, parameters=parameters, update=stack.updates[best]
        )


class MultiKrum(BaseStrategy):
    """Average the ``m`` updates with the lowest Krum scores.

    Parameters
    ----------
    num_malicious
        ``f``, the number of Byzantine nodes to tolerate, >= 0. A round needs ``n >= 2f + 3``
        updates; :attr:`min_train_nodes` is raised to that if configured lower.
    num_selected
        ``m``, how many updates to average, >= 1; ``None`` means ``n - f``. A round needs at least
        ``m`` updates. ``m = 1`` is :class:`Krum`.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    The ``m`` selected updates are averaged uniformly, as in the paper: ``num_examples`` is
    self-reported, so a Byzantine node that slipped into the selection could otherwise inflate
    its weight. Ties in the score go to the smallest node id. Stateless.
    """

    needs_individual_updates = True  # scores each update by its distances to the others

    def __init__(
        self,
        *,
        num_malicious: int = 1,
        num_selected: int | None = None,
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
        owner = type(self).__name__
        self.num_malicious = check_int(num_malicious, name="num_malicious", owner=owner, minimum=0)
        self.num_selected = (
            None
            if num_selected is None
            else check_int(num_selected, name="num_selected", owner=owner, minimum=1)
        )

    def _quorum(self) -> tuple[int, str] | None:
        needed, reason = _krum_quorum(self.num_malicious)
        if self.num_selected is not None and self.num_selected > needed:
            return self.num_selected, (
                f"Multi-Krum averages num_selected={self.num_selected} updates, so a round "
                "needs at least that many."
            )
        return needed, reason

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the mean of the ``m`` best-scored updates.

        Raises
        ------
        InsufficientNodesError
            If there are fewer than ``max(min_train_nodes, 2f + 3, m)`` results; a note says why.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite or a node answers twice.
        """
        stack = self._stack_updates(
            round_number=round_number, parameters=parameters, results=results
        )
        count = stack.updates.shape[0]
        selected_count = (
            count - self.num_malicious if self.num_selected is None else self.num_selected
        )
        scores = krum_scores(
            pairwise_squared_distances(stack.updates),
            num_closest=count - self.num_malicious - 2,
        )  # (n,)
        selected = np.sort(np.argsort(scores, kind="stable")[:selected_count])  # (m,)
        update = stack.updates[selected].mean(axis=0)  # (d,)
        return self._apply_update(round_number=round_number, parameters=parameters, update=update)
