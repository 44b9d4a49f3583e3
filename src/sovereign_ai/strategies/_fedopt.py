"""The adaptive server optimisers shared by FedAdam, FedYogi and FedAdagrad.

S. J. Reddi, Z. Charles, M. Zaheer, Z. Garrett, K. Rush, J. Konečný, S. Kumar and H. B. McMahan,
"Adaptive Federated Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2.

Each round, with ``Δ`` the example-weighted mean update (the paper's pseudo-gradient, pointing
downhill):

* ``m ← β₁ m + (1 - β₁) Δ``
* ``v ←`` the optimiser's second-moment rule (:meth:`AdaptiveFedOpt._second_moment`)
* ``w ← w + η m / (√v + τ)``

starting from ``m = 0`` and ``v = τ²`` (the paper's ``v₋₁ ≥ τ²``). As in the paper there is no
bias correction.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from sovereign_ai.core import FloatArray, Parameters, Result
from sovereign_ai.errors import CheckpointError, FederationError
from sovereign_ai.strategies._base import BaseStrategy, Vector
from sovereign_ai.strategies._validation import check_float

__all__ = ["AdaptiveFedOpt"]


class AdaptiveFedOpt(BaseStrategy):
    """Server-side adaptive optimiser over the nodes' mean update; subclasses pick the ``v`` rule.

    State (float32, kept between rounds and exposed by :meth:`state_dict`): ``"first_moment"``
    and ``"second_moment"`` of shape ``(d,)``, and ``"step"`` of shape ``(1,)``, the number of
    rounds aggregated. The state is empty before the first round.
    """

    needs_individual_updates = False  # uses the updates only through their example-weighted sum

    _STATE_KEYS: ClassVar[tuple[str, ...]] = ("first_moment", "second_moment", "step")

    def __init__(
        self,
        *,
        server_learning_rate: float,
        beta_1: float,
        tau: float,
        fraction_train: float,
        fraction_evaluate: float,
        min_train_nodes: int,
        min_evaluate_nodes: int,
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
        self.beta_1 = check_float(
            beta_1, name="beta_1", owner=owner, low=0.0, high=1.0, include_high=False
        )
        self.tau = check_float(tau, name="tau", owner=owner, low=0.0, include_low=False)
        self._first_moment: FloatArray | None = None  # (d,), float32
        self._second_moment_state: FloatArray | None = None  # (d,), float32
        self._step = 0

    @abstractmethod
    def _second_moment(self, previous: Vector, squared: Vector) -> Vector:
        """Next ``v`` from the previous ``v`` and ``Δ²`` (both ``(d,)``, float64)."""

    def aggregate_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        results: Sequence[Result],
    ) -> Parameters:
        """Take one adaptive server step along the example-weighted mean update.

        Raises
        ------
        InsufficientNodesError
            If there are fewer results than :attr:`min_train_nodes`.
        SerializationError
            If an update does not have the global parameters' names and shapes.
        FederationError
            If an update is non-finite, all nodes report 0 examples, or the moments do not fit
            the model.
        """
        delta = self._weighted_mean_update(
            round_number=round_number, parameters=parameters, results=results
        )  # (d,), float64
        if self._first_moment is None or self._second_moment_state is None:
            first = np.zeros_like(delta)
            second = np.full_like(delta, self.tau**2)
        elif self._first_moment.size != delta.size:
            raise FederationError(
                f"Round {round_number}: the moments of {type(self).__name__} hold "
                f"{self._first_moment.size} scalars but the model has {delta.size}."
            )
        else:
            first = self._first_moment.astype(np.float64)
            second = self._second_moment_state.astype(np.float64)
        first = self.beta_1 * first + (1.0 - self.beta_1) * delta  # (d,)
        second = self._second_moment(second, delta * delta)  # (d,)
        step = self.server_learning_rate * first / (np.sqrt(second) + self.tau)  # (d,)
        new_parameters = self._apply_update(
            round_number=round_number, parameters=parameters, update=step
        )
        self._first_moment = first.astype(np.float32)
        self._second_moment_state = second.astype(np.float32)
        self._step += 1
        return new_parameters

    def state_dict(self) -> dict[str, FloatArray]:
        """The moments and step count as float32 copies; empty before the first round."""
        if self._first_moment is None or self._second_moment_state is None:
            return {}
        return {
            "first_moment": self._first_moment.copy(),
            "second_moment": self._second_moment_state.copy(),
            "step": np.array([self._step], dtype=np.float32),
        }

    def _restore_state(self, state: dict[str, FloatArray]) -> None:
        if not state:
            self._first_moment, self._second_moment_state, self._step = None, None, 0
            return
        owner = type(self).__name__
        first, second, step = state["first_moment"], state["second_moment"], state["step"]
        if first.ndim != 1 or first.shape != second.shape:
            raise CheckpointError(
                f"The moments in the state of {owner} must be 1-D arrays of one shape; "
                f"got {first.shape} and {second.shape} instead."
            )
        if not (np.isfinite(first).all() and np.isfinite(second).all() and (second >= 0).all()):
            raise CheckpointError(
                f"The moments in the state of {owner} must be finite, the second one >= 0."
            )
        if step.shape != (1,) or not (step[0] >= 0 and float(step[0]).is_integer()):
            raise CheckpointError(
                f"The 'step' state of {owner} must be one whole number >= 0; "
                f"got {step.tolist()!r} instead."
            )
        self._first_moment, self._second_moment_state = first, second
        self._step = int(step[0])
