"""FedAdagrad: Adagrad as the coordinator's optimiser over the nodes' mean update.

S. J. Reddi, Z. Charles, M. Zaheer, Z. Garrett, K. Rush, J. Konečný, S. Kumar and H. B. McMahan,
"Adaptive Federated Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2 (FedAdagrad).
"""

from __future__ import annotations

from sovereign_ai.strategies._base import Vector
from sovereign_ai.strategies._fedopt import AdaptiveFedOpt

__all__ = ["FedAdagrad"]


class FedAdagrad(AdaptiveFedOpt):
    """Adaptive server step with Adagrad's second moment ``v ← v + Δ²``.

    With ``Δ`` the example-weighted mean update: ``m ← β₁ m + (1 - β₁) Δ`` and
    ``w ← w + η m / (√v + τ)``, from ``m = 0``, ``v = τ²``. The step size only shrinks over rounds.

    Parameters
    ----------
    server_learning_rate
        Server step size ``η`` > 0.
    beta_1
        First-moment decay ``β₁`` in ``[0, 1)``; 0 is Adagrad without momentum.
    tau
        Adaptivity ``τ`` > 0; larger values make the step less adaptive.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    State: ``"first_moment"``, ``"second_moment"`` (``(d,)``) and ``"step"`` (``(1,)``), float32.
    ``β₁ = 0.9`` is the paper's experimental setting; ``τ = 10⁻³`` lies inside the range it tunes
    over; tune ``η`` per task.
    """

    def __init__(
        self,
        *,
        server_learning_rate: float = 0.1,
        beta_1: float = 0.9,
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

    def _second_moment(self, previous: Vector, squared: Vector) -> Vector:
        return previous + squared  # (d,)
