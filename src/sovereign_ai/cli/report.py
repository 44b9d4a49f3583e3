"""What a person reads and looks at after a run: the comparison table, metrics JSON and a plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from sovereign_ai.federation import BaselineScore, FederationHistory, RoundReport

__all__ = [
    "comparison_table",
    "complete_history",
    "history_from_json",
    "history_to_json",
    "plot_history",
    "write_json",
]


def comparison_table(
    federated: BaselineScore, centralised: BaselineScore, alone: Sequence[BaselineScore]
) -> Table:
    """Federated vs centralised vs each site alone, on the same held-out test set."""
    table = Table(title="Held-out test set: federated vs pooled vs each site alone")
    table.add_column("model", style="bold")
    table.add_column("trained on", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("vs federated", justify="right")

    def add(score: BaselineScore, label: str, style: str = "") -> None:
        delta = (score.accuracy - federated.accuracy) * 100
        table.add_row(
            label,
            f"{score.num_train_examples} rows",
            f"{score.accuracy:.3f}",
            f"{score.loss:.3f}",
            "—" if score is federated else f"{delta:+.1f} pts",
            style=style,
        )

    add(federated, "federated (no rows pooled)", "green")
    add(centralised, "centralised (all rows pooled)")
    for score in alone:
        add(score, f"{score.name} alone", "dim")
    return table


def history_to_json(history: FederationHistory) -> list[dict[str, Any]]:
    """Rounds as JSON-ready dictionaries."""
    return [
        {
            "round": r.round_number,
            "cohort": r.cohort,
            "answered": r.answered,
            "failures": r.failures,
            "attempts": r.attempts,
            "metrics": r.metrics,
        }
        for r in history.rounds
    ]


def history_from_json(rounds: Sequence[dict[str, Any]]) -> FederationHistory:
    """Rebuild a history from what :func:`history_to_json` wrote (e.g. by another process)."""
    return FederationHistory(rounds=[_report_from_json(r) for r in rounds])


def _report_from_json(entry: dict[str, Any]) -> RoundReport:
    return RoundReport(
        round_number=int(entry["round"]),
        cohort=list(entry.get("cohort", [])),
        answered=list(entry.get("answered", [])),
        failures=dict(entry.get("failures", {})),
        metrics={k: float(v) for k, v in entry["metrics"].items()},
        attempts=int(entry.get("attempts", 1)),
    )


def complete_history(history: FederationHistory, state_dir: Path) -> FederationHistory:
    """Every durable round of the job, not only those this process ran (after ``--resume``).

    Rounds run by an earlier process are rebuilt whole from the state: metrics, cohort, who
    answered, failures and attempts.
    """
    from sovereign_ai.federation import CheckpointStore

    ran = {report.round_number: report for report in history.rounds}
    with CheckpointStore(state_dir) as store:
        recorded = store.round_records()
    rounds = [ran.get(int(entry["round"])) or _report_from_json(entry) for entry in recorded]
    return FederationHistory(
        rounds=rounds, parameters=history.parameters, resumed_from=history.resumed_from
    )


def write_json(path: Path, document: Any) -> None:
    """Write JSON to ``path`` via a temporary file, so a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)


def plot_history(
    history: FederationHistory,
    path: Path,
    *,
    centralised: BaselineScore | None = None,
    title: str = "Federated training",
) -> None:
    """Accuracy and loss per round (central held-out test set), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, name, label in (
        (ax_acc, "accuracy", "accuracy"),
        (ax_loss, "loss", "cross-entropy loss"),
    ):
        for prefix, style in (("central_", "-o"), ("federated_", "--s")):
            points = history.metric(prefix + name)
            if points:
                rounds, values = zip(*points, strict=True)
                where = "held-out test set" if prefix == "central_" else "nodes' local test rows"
                ax.plot(rounds, values, style, markersize=3, label=f"federated model, {where}")
        if centralised is not None:
            value = centralised.accuracy if name == "accuracy" else centralised.loss
            ax.axhline(value, color="grey", linestyle=":", label="centralised (pooled) model")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    temporary = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(temporary, dpi=120)
    plt.close(fig)
    temporary.replace(path)
