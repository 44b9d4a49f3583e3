"""A rich progress bar that follows the coordinator's rounds."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sovereign_ai.core import Stage
from sovereign_ai.federation import RoundReport, StageResults

__all__ = ["RoundProgress"]


class RoundProgress:
    """Shows one bar over the job's rounds with the latest accuracy and loss.

    Parameters
    ----------
    console
        Where to draw.
    label
        Text before the bar.
    """

    def __init__(self, console: Console, *, label: str = "Federated training") -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(label, total=None, status="")

    def __enter__(self) -> RoundProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_round_start(self, round_number: int, total_rounds: int) -> None:
        """Set the bar's length and position at the round about to run."""
        self._progress.update(self._task, total=total_rounds, completed=round_number - 1)

    def on_round_end(self, report: RoundReport) -> None:
        """Advance the bar and show the round's headline metrics."""
        metrics = report.metrics
        parts = []
        if "central_accuracy" in metrics:
            parts.append(f"acc {metrics['central_accuracy']:.3f}")
        elif "federated_accuracy" in metrics:
            parts.append(f"acc {metrics['federated_accuracy']:.3f}")
        if "central_loss" in metrics:
            parts.append(f"loss {metrics['central_loss']:.3f}")
        parts.append(f"{len(report.answered)}/{len(report.cohort)} nodes")
        self._progress.update(self._task, completed=report.round_number, status=" · ".join(parts))

    def on_waiting(self, connected: Sequence[str], needed: int, waited_s: float) -> None:
        """Print who is connected while the round waits for the minimum number of nodes."""
        self._progress.console.print(
            f"Waiting for nodes ({waited_s:.0f} s): {len(connected)} of the {needed} needed "
            f"connected{': ' + ', '.join(connected) if connected else ''}."
        )

    def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None:
        """Print why an attempt of a round fell through."""
        self._progress.console.print(
            f"[yellow]Round {round_number}, attempt {attempt} fell through:[/] {escape(reason)}"
        )

    def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
        """Nothing to draw per stage: the bar moves per round."""
        del round_number, stage, answered
