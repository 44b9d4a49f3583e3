"""``sovereign privacy``: a data owner's view of the privacy budget its node holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors

__all__ = ["privacy_app"]

privacy_app = typer.Typer(
    help="The privacy budget each dataset of this node has spent, across every job.",
    no_args_is_help=True,
)


@privacy_app.command("report")
def report(
    kit: Annotated[
        Path,
        typer.Option(
            "--kit", help="The node's kit folder, which holds its ledger (privacy-ledger.sqlite)."
        ),
    ],
) -> None:
    """Print, per dataset, the owner's budget, what every job spent, and what is left.

    Spending is composed across jobs (RDP curves added, or PLDs convolved, then converted to ε
    once), so the total is less than the sum of the jobs' ε.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.errors import ConfigError
        from sovereign_ai.federation.private_node import LEDGER_FILE
        from sovereign_ai.privacy import PrivacyLedger

        path = kit / LEDGER_FILE
        if not path.exists():
            raise ConfigError(
                f"No privacy ledger in {kit}: this node has not taken part in a job with "
                "differential privacy (or its kit is elsewhere; pass --kit)."
            )
        with PrivacyLedger(path) as ledger:
            for dataset in ledger.datasets():
                budget = ledger.budget(dataset)
                assert budget is not None
                spent = ledger.spent(dataset)
                table = Table(
                    title=(
                        f"Dataset {dataset!r}: ε spent {spent:.3f} of {budget.max_epsilon:g} "
                        f"(δ = {budget.delta:g}, {budget.accounting.value}); "
                        f"{max(budget.max_epsilon - spent, 0.0):.3f} left"
                    )
                )
                columns = ("job", "unit", "rounds recorded", "through round", "ε of the job alone")
                for column in columns:
                    left = column in columns[:2]
                    table.add_column(
                        column, justify="left" if left else "right", no_wrap=column == "job"
                    )
                for job in ledger.jobs(dataset):
                    entries = ledger.entries(dataset, job_id=job)
                    sample_level = [e for e in entries if e.what == "dpsgd"]
                    # A DP-SGD round is recorded as its SGD steps; a client-level one as one step.
                    rounds = len(sample_level) + sum(
                        e.event.steps for e in entries if e.what != "dpsgd"
                    )
                    table.add_row(
                        job,
                        "record (DP-SGD)" if sample_level else "site",
                        str(rounds),
                        str(max(e.round_number for e in entries)),
                        f"{ledger.spent(dataset, job_id=job):.3f}",
                    )
                console.print(table)
            if not ledger.datasets():
                console.print("The ledger holds no dataset yet.")
