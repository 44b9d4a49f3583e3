"""Sample-level DP (DP-SGD on every node) around any strategy: the coordinator only tells.

Each node's update is already differentially private with respect to each of its records when it
leaves (:func:`~sovereign_ai.learning.train_private`, accounted in the node's own ledger by
:mod:`sovereign_ai.federation.private_node`), so whatever the coordinator does with it is
post-processing: any strategy aggregates it, robust ones included, with its usual weights. The
wrapper only adds the job's privacy settings to every train instruction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import ConfigValue, NodeInstruction, Parameters, Strategy
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation.job import PrivacySection
from sovereign_ai.strategies import StrategyWrapper

__all__ = ["SampleLevelPrivate"]


class SampleLevelPrivate(StrategyWrapper):
    """``inner``, its train instructions carrying the job's DP-SGD settings.

    Parameters
    ----------
    inner
        Any strategy.
    section
        The job's ``[privacy]`` settings, mode ``dpsgd``.
    rounds
        The job's rounds: a node calibrating a target ε spreads it over all of them.

    Raises
    ------
    ConfigError
        If the mode is not ``dpsgd``.
    """

    def __init__(self, inner: Strategy, *, section: PrivacySection, rounds: int) -> None:
        super().__init__(inner)
        if not section.sample_level:
            raise ConfigError(
                f"SampleLevelPrivate needs [privacy] mode 'dpsgd'; got {section.mode!r}."
            )
        self.section = section
        self.rounds = rounds

    def configure_train(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        nodes: Sequence[str],
        rng: np.random.Generator,
    ) -> list[NodeInstruction]:
        """The inner strategy's cohort, each told the clip and the noise (or target ε)."""
        section = self.section
        noise: dict[str, ConfigValue] = {
            "dp_target_epsilon": float(section.target_epsilon or 0.0),
            "dp_delta": section.delta,
            "dp_accounting": section.accounting,
        }
        if section.noise_multiplier is not None:
            noise = {"dp_noise_multiplier": section.noise_multiplier}
        settings: dict[str, ConfigValue] = {
            "dp_mode": section.mode,
            "dp_clip": section.clip,
            "dp_rounds": self.rounds,
            **noise,
        }
        return [
            NodeInstruction(i.node_id, {**i.config, **settings})
            for i in self.inner.configure_train(
                round_number=round_number, parameters=parameters, nodes=nodes, rng=rng
            )
        ]
