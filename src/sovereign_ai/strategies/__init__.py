"""Aggregation strategies: how the coordinator turns the nodes' updates into the next model.

One algorithm per module, each citing its paper. Every class implements
:class:`sovereign_ai.core.Strategy`; :func:`create_strategy` builds one by name for job files, and
also builds the strategies of installed plug-in packages (entry point group
``sovereign_ai.strategies``, see ``docs/plugins.md``).

========================  ==================================================================
name                      algorithm
========================  ==================================================================
``fedavg``                :class:`FedAvg` — example-weighted mean (McMahan et al. 2017)
``fedavgm``               :class:`FedAvgM` — FedAvg with server momentum (Hsu et al. 2019)
``fedprox``               :class:`FedProx` — FedAvg plus a node-side proximal term (Li et al. 2020)
``fedadam``               :class:`FedAdam` — adaptive server step (Reddi et al. 2021)
``fedyogi``               :class:`FedYogi` — adaptive server step (Reddi et al. 2021)
``fedadagrad``            :class:`FedAdagrad` — adaptive server step (Reddi et al. 2021)
``fedmedian``             :class:`FedMedian` — coordinate-wise median (Yin et al. 2018)
``fedtrimmedavg``         :class:`FedTrimmedAvg` — coordinate-wise trimmed mean (Yin et al. 2018)
``krum``                  :class:`Krum` — most central update (Blanchard et al. 2017)
``multikrum``             :class:`MultiKrum` — mean of the most central updates (ibid.)
``bulyan``                :class:`Bulyan` — Krum selection + trimmed median (El Mhamdi et al. 2018)
========================  ==================================================================

Strategies of your own subclass :class:`BaseStrategy` (cohort sampling, checks and checkpoint
plumbing; write ``aggregate_train``) or, to change part of another strategy, wrap it with
:class:`StrategyWrapper`, which forwards everything a subclass does not override. Every strategy
declares ``needs_individual_updates``; :func:`check_secure_aggregation_compatible` refuses, with
the reason, those that cannot run under secure aggregation.
"""

from sovereign_ai.strategies._base import BaseStrategy
from sovereign_ai.strategies._registry import create_strategy, strategy_names
from sovereign_ai.strategies._secure_aggregation import check_secure_aggregation_compatible
from sovereign_ai.strategies._wrapper import StrategyWrapper
from sovereign_ai.strategies.bulyan import Bulyan
from sovereign_ai.strategies.fedadagrad import FedAdagrad
from sovereign_ai.strategies.fedadam import FedAdam
from sovereign_ai.strategies.fedavg import FedAvg
from sovereign_ai.strategies.fedavgm import FedAvgM
from sovereign_ai.strategies.fedprox import FedProx
from sovereign_ai.strategies.fedyogi import FedYogi
from sovereign_ai.strategies.krum import Krum, MultiKrum
from sovereign_ai.strategies.median import FedMedian
from sovereign_ai.strategies.trimmed_mean import FedTrimmedAvg

__all__ = [
    "BaseStrategy",
    "Bulyan",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "StrategyWrapper",
    "check_secure_aggregation_compatible",
    "create_strategy",
    "strategy_names",
]
