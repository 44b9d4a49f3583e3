"""FedYogi: Yogi as the coordinator's optimiser over the nodes' mean update.

S. J. Reddi, Z. Charles, M. Zaheer, Z. Garrett, K. Rush, J. Konečný, S. Kumar and H. B. McMahan,
"Adaptive Federated Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2 (FedYogi).
"""

from __future__ import annotations

import numpy as np

from sovereign_ai.strategies._base import Vector
from sovereign_ai.strategies._fedopt import AdaptiveFedOpt
from sovereign_ai.strategies._validation import check_float

__all__ = ["FedYogi"]


class FedYogi(AdaptiveFedOpt):
    """Adaptive server step with Yogi's second moment ``v ← v - (1 - β₂) Δ² sign(v - Δ²)``.

    With ``Δ`` the example-weighted mean update: ``m ← β₁ m + (1 - β₁) Δ`` and
    ``w ← w + η m / (√v + τ)``, from ``m = 0``, ``v = τ²``. Unlike Adam, ``v`` changes additively,
    so one large update does not shrink the step size at once.

    Parameters
    ----------
    server_learning_rate
        Server step size ``η`` > 0.
    beta_1
        First-moment decay ``β₁`` in ``[0, 1)``.
    beta_2
        Second-moment rate ``β₂`` in ``[0, 1)``.
    tau
        Adaptivity ``τ`` > 0; larger values make the step less adaptive.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    State: ``"first_moment"``, ``"second_moment"`` (``(d,)``) and ``"step"`` (``(1,)``), float32.
    ``v`` stays positive: from ``v > 0`` it either moves towards ``Δ²`` by less than the gap or
    grows. ``β₁ = 0.9`` and ``β₂ = 0.99`` are the paper's experimental settings; ``τ = 10⁻³`` lies
    inside the range it tunes over; tune ``η`` per task.
    """

    def __init__(
        self,
        *,
        server_learning_rate: float = 0.01,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-3,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 1,
    ) -> None:
        super().__init__(
            server_learning_rate=server_learning_rate,
            beta_1=beta_1,
            tau=tau,
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
        )
        self.beta_2 = check_float(
            beta_2, name="beta_2", owner=type(self).__name__, low=0.0, high=1.0,
            include_high=False,
        )  # fmt: skip

    def _second_moment(self, previous: Vector, squared: Vector) -> Vector:
        return previous - (1.0 - self.beta_2) * squared * np.sign(previous - squared)  # (d,)
