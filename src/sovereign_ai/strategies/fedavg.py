"""Federated Averaging.

H. B. McMahan, E. Moore, D. Ramage, S. Hampson and B. Agüera y Arcas, "Communication-Efficient
Learning of Deep Networks from Decentralized Data", AISTATS 2017 (arXiv:1602.05629), Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from sovereign_ai.core import Parameters, Result
from sovereign_ai.strategies._base import BaseStrategy

__all__ = ["FedAvg"]


class FedAvg(BaseStrategy):
    """Move the global model by the example-weighted mean of the cohort's updates.

    With updates ``Δ_k = w_k - w`` and example counts ``n_k``, the next global model is
    ``w + Σ_k n_k Δ_k / Σ_k n_k``, which equals McMahan et al.'s ``Σ_k (n_k / n) w_k``.

    Parameters
    ----------
    fraction_train
        Share of available nodes sampled to train each round, in ``(0, 1]``.
    fraction_evaluate
        Share of available nodes sampled to evaluate, in ``[0, 1]``; 0 turns evaluation off.
    min_train_nodes
        Fewest nodes sampled for, and results aggregated in, a train stage.
    min_evaluate_nodes
        Fewest nodes sampled for, and results averaged in, an evaluate stage.

    Notes
    -----
    Stateless: :meth:`state_dict` is empty. Results are ordered by node id before summing, so the
    output does not depend on the order in which updates arrived.

    Examples
    --------
    >>> import numpy as np
    >>> from sovereign_ai.core import Parameters, Result, Stage
    >>> glob = Parameters({"w": np.zeros(2)})
    >>> results = [
    ...     Result(job_id="j", round_number=1, stage=Stage.TRAIN, node_id=node, num_examples=n,
    ...            parameters=Parameters({"w": np.full(2, value)}))
    ...     for node, n, value in [("a", 1, 1.0), ("b", 3, 5.0)]
    ... ]
    >>> FedAvg().aggregate_train(round_number=1, parameters=glob, results=results)["w"]
    array([4., 4.], dtype=float32)
    """

    needs_individual_updates = False  # uses the updates only through their example-weighted sum

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Return ``parameters`` plus the example-weighted mean update.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than :attr:`min_train_nodes`.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite, a node answers twice, or all nodes report 0 examples.
        """
        mean_update = self._weighted_mean_update(
            round_number=round_number, parameters=parameters, results=results
        )  # (d,), float64
        return self._apply_update(
            round_number=round_number, parameters=parameters, update=mean_update
        )
