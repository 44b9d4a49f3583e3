"""What a round leaves behind (:class:`RoundReport`), a job's history, and who hears of it.

Kept apart from the round loop so that transports and the command line can record and show rounds
without importing the coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sovereign_ai.core import Parameters, Stage
from sovereign_ai.federation.workflow import StageResults

__all__ = ["FederationHistory", "RoundObserver", "RoundReport"]


@dataclass(frozen=True)
class RoundReport:
    """What happened in one round, for people and plots."""

    round_number: int
    cohort: list[str]
    answered: list[str]
    failures: dict[str, str]
    metrics: dict[str, float]
    attempts: int = 1

    def record(self) -> dict[str, Any]:
        """Who took part and why others did not, as JSON-ready values (kept with the round)."""
        return {
            "cohort": list(self.cohort),
            "answered": list(self.answered),
            "failures": dict(self.failures),
            "attempts": self.attempts,
        }


@dataclass
class FederationHistory:
    """Every round's report, in order, plus the final parameters."""

    rounds: list[RoundReport] = field(default_factory=list)
    parameters: Parameters | None = None
    resumed_from: int = 0

    def metric(self, name: str) -> list[tuple[int, float]]:
        """``(round, value)`` of one metric over the rounds that reported it."""
        return [(r.round_number, r.metrics[name]) for r in self.rounds if name in r.metrics]


class RoundObserver(Protocol):
    """Receives progress and per-stage events; the CLI draws a progress bar with them.

    An observer implements the methods it needs: the coordinator calls only those present.
    An exception an observer raises stops the job (the coordinator does not catch it).

    Notes
    -----
    Two more events, with the models themselves, for observers that record them (the
    coordinator's audit log, :mod:`sovereign_ai.federation.audited_coordinator`); they are not
    members of this protocol, so that progress displays need not implement them:

    - ``on_starting_model(round_number: int, parameters: Parameters)``: once the job's starting
      point is settled: round 0 and the initial model (after feature scaling), or the round
      resumed after and its model;
    - ``on_round_adopted(report: RoundReport, parameters: Parameters)``: when a round's new
      global model is adopted, *before* it is saved, so that raising leaves the round not
      durable (it is run again on resume).
    """

    def on_round_start(self, round_number: int, total_rounds: int) -> None:
        """Called before a round's first stage."""

    def on_round_end(self, report: RoundReport) -> None:
        """Called once a round is durable."""

    def on_waiting(self, connected: Sequence[str], needed: int, waited_s: float) -> None:
        """Called every ``wait_report_s`` while fewer than ``needed`` nodes are connected."""

    def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None:
        """Called when an attempt of a round falls through (it is retried if attempts remain)."""

    def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
        """Called after every stage of a round: who was accepted, who failed and why."""
