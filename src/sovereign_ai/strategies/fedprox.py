"""FedProx: federated optimisation with a proximal term on the nodes.

T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar and V. Smith, "Federated Optimization in
Heterogeneous Networks", MLSys 2020 (arXiv:1812.06127), Algorithm 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sovereign_ai.core import FloatArray, NodeInstruction, Parameters
from sovereign_ai.errors import CheckpointError
from sovereign_ai.strategies._validation import CohortOptions, check_float
from sovereign_ai.strategies._wrapper import StrategyWrapper
from sovereign_ai.strategies.fedavg import FedAvg

__all__ = ["FedProx"]

_PROXIMAL_MU_KEY = "proximal_mu"  # the train setting the node's trainer reads ``mu`` from


class FedProx(StrategyWrapper):
    """FedAvg on the coordinator; each node adds ``(mu / 2) ||w - w_global||²`` to its loss.

    The coordinator side of FedProx is FedAvg's aggregation: this class wraps a
    :class:`~sovereign_ai.strategies.FedAvg` (a :class:`~sovereign_ai.strategies.StrategyWrapper`
    forwards the rest) and only adds ``proximal_mu`` to the settings of every train instruction.
    The proximal term itself is applied by the node's trainer.

    Parameters
    ----------
    proximal_mu
        The proximal coefficient ``mu`` >= 0 sent to every training node; 0 is plain FedAvg.
    fraction_train, fraction_evaluate, min_train_nodes, min_evaluate_nodes
        Cohort settings, as for :class:`~sovereign_ai.strategies.FedAvg`.

    Notes
    -----
    Li et al. also tolerate partial work (nodes doing fewer local epochs); here every node runs
    the job's local epochs and drops out as a whole, which the round loop already handles.
    Like FedAvg it uses the updates only through their example-weighted sum, so it may run under
    secure aggregation.
    """

    inner: FedAvg

    def __init__(
        self,
        *,
        proximal_mu: float = 0.01,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 1,
    ) -> None:
        owner = type(self).__name__
        self.proximal_mu = check_float(proximal_mu, name="proximal_mu", owner=owner, low=0.0)
        # validated here first so that a bad option is reported against FedProx, not FedAvg
        cohort = CohortOptions.create(
            owner=owner,
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
        )
        super().__init__(
            FedAvg(
                fraction_train=cohort.fraction_train,
                fraction_evaluate=cohort.fraction_evaluate,
                min_train_nodes=cohort.min_train_nodes,
                min_evaluate_nodes=cohort.min_evaluate_nodes,
            )
        )

    @property
    def fraction_train(self) -> float:
        """Share of available nodes sampled to train each round."""
        return self.inner.fraction_train

    @property
    def fraction_evaluate(self) -> float:
        """Share of available nodes sampled to evaluate each round."""
        return self.inner.fraction_evaluate

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """FedAvg's cohort, each node told ``proximal_mu``."""
        instructions = self.inner.configure_train(
            round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
        )
        return [
            NodeInstruction(
                node_id=instruction.node_id,
                config={**instruction.config, _PROXIMAL_MU_KEY: self.proximal_mu},
            )
            for instruction in instructions
        ]

    def load_state_dict(self, state: Mapping[str, FloatArray]) -> None:
        """Accept only the empty state (FedProx keeps none; FedAvg neither).

        Raises
        ------
        CheckpointError
            If ``state`` holds any key.
        """
        if state:
            raise CheckpointError(
                "The 'state' parameter of FedProx.load_state_dict must be empty (FedProx keeps "
                f"no state); got keys {sorted(state)} instead."
            )
        self.inner.load_state_dict(state)
