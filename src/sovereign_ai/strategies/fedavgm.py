"""Federated Averaging with server momentum.

T.-M. H. Hsu, H. Qi and M. Brown, "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification", arXiv:1909.06335, 2019, Section 3 ("FedAvgM").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from sovereign_ai.core import FloatArray, Parameters, Result
from sovereign_ai.errors import CheckpointError, FederationError
from sovereign_ai.strategies._base import BaseStrategy
from sovereign_ai.strategies._validation import check_float

__all__ = ["FedAvgM"]


class FedAvgM(BaseStrategy):
    """FedAvg whose server step accumulates momentum across rounds.

    With ``Δ̄`` the example-weighted mean update (the negative of Hsu et al.'s pseudo-gradient),
    each round computes ``v ← β v + Δ̄`` and ``w ← w + η v``, with ``v`` zero before round 1.
    ``β = 0`` and ``η = 1`` give FedAvg.

    Parameters
    ----------
    server_learning_rate
        Server step size ``η`` > 0.
    server_momentum
        Momentum ``β`` in ``[0, 1)``.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    The momentum buffer is kept in float32 between rounds (the arithmetic is float64) and is the
    only entry of :meth:`state_dict`, ``"momentum"`` of shape ``(d,)``, so a coordinator resumed
    from a checkpoint continues bit-for-bit. The state is empty before the first round.
    """

    needs_individual_updates = False  # uses the updates only through their example-weighted sum

    _STATE_KEYS: ClassVar[tuple[str, ...]] = ("momentum",)

    def __init__(
        self,
        *,
        server_learning_rate: float = 1.0,
        server_momentum: float = 0.9,
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
        self.server_learning_rate = check_float(
            server_learning_rate, name="server_learning_rate", owner=owner, low=0.0,
            include_low=False,
        )  # fmt: skip
        self.server_momentum = check_float(
            server_momentum, name="server_momentum", owner=owner, low=0.0, high=1.0,
            include_high=False,
        )  # fmt: skip
        self._momentum: FloatArray | None = None  # (d,), float32; None before round 1

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Update the momentum with the mean update and move ``parameters`` along it.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than :attr:`min_train_nodes`.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite, all nodes report 0 examples, or the momentum buffer does
            not fit the model.
        """
        mean_update = self._weighted_mean_update(
            round_number=round_number, parameters=parameters, results=results
        )  # (d,), float64
        if self._momentum is None:
            previous = np.zeros_like(mean_update)
        elif self._momentum.size != mean_update.size:
            raise FederationError(
                f"Round {round_number}: the momentum buffer of FedAvgM holds "
                f"{self._momentum.size} scalars but the model has {mean_update.size}."
            )
        else:
            previous = self._momentum.astype(np.float64)
        momentum = self.server_momentum * previous + mean_update  # (d,), float64
        new_parameters = self._apply_update(
            round_number=round_number,
            parameters=parameters,
            update=self.server_learning_rate * momentum,
        )
        self._momentum = momentum.astype(np.float32)
        return new_parameters

    def state_dict(self) -> dict[str, FloatArray]:
        """``{"momentum": (d,) float32}`` after the first round, else empty."""
        if self._momentum is None:
            return {}
        return {"momentum": self._momentum.copy()}

    def _restore_state(self, state: dict[str, FloatArray]) -> None:
        if not state:
            self._momentum = None
            return
        momentum = state["momentum"]
        if momentum.ndim != 1 or not np.isfinite(momentum).all():
            raise CheckpointError(
                "The 'momentum' state of FedAvgM must be a finite 1-D array; "
                f"got shape {momentum.shape} instead."
            )
        self._momentum = momentum
