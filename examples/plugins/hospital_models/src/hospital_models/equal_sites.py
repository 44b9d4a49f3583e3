"""``equal_sites``: federated averaging in which every site's update counts the same.

A strategy factory for the Sovereign AI Framework (entry point group ``sovereign_ai.strategies``):
a callable that takes the job's ``[strategy]`` options as keywords and returns a ``Strategy``.
Only the coordinator aggregates, so only the coordinator needs it; installing the package on every
party anyway keeps one version everywhere.

FedAvg weights each update by the number of rows the site *says* it trained on. When sites are
peers of similar standing, or a self-reported count should not buy influence, the plain mean of
the updates is the fairer rule. It is built by composition: the built-in ``FedAvg`` does the work
on results whose example counts are set to 1 (0 stays 0); evaluation metrics stay example-weighted.
``StrategyWrapper`` forwards everything else (cohort sampling, evaluation, checkpoint state) to the
wrapped strategy; ``needs_individual_updates`` is overridden, since re-weighting needs each update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sovereign_ai.core import Parameters, Result, Strategy
from sovereign_ai.strategies import FedAvg, StrategyWrapper

__all__ = ["EqualSites", "equal_sites"]


class EqualSites(StrategyWrapper):
    """Any strategy, fed updates that each weigh one; everything else is forwarded to it.

    Parameters
    ----------
    inner
        The strategy that samples cohorts and aggregates, e.g. ``FedAvg(min_train_nodes=2)``.
    """

    @property
    def needs_individual_updates(self) -> bool:
        """True: each update is re-weighted, which needs the updates one by one.

        Secure aggregation would give the coordinator only the example-weighted sum, so this
        strategy cannot run under it (whatever the inner strategy can).
        """
        return True

    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        # 1 for every site that trained; a site reporting 0 rows keeps its weight of 0.
        equal = [dataclasses.replace(r, num_examples=min(r.num_examples, 1)) for r in results]
        return self.inner.aggregate_train(
            round_number=round_number, parameters=parameters, results=equal
        )


def equal_sites(
    *,
    fraction_train: float = 1.0,
    fraction_evaluate: float = 1.0,
    min_train_nodes: int = 2,
    min_evaluate_nodes: int = 1,
) -> Strategy:
    """Plain mean of the cohort's updates; the options are FedAvg's."""
    return EqualSites(
        FedAvg(
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
        )
    )
