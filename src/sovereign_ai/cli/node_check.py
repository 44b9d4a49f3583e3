"""``sovereign node check``: a dry run that checks a site's file against a job before it joins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.cli._node_data import (
    ClassesOption,
    ColumnsOption,
    DelimiterOption,
    IgnoreColumnsOption,
    file_layout,
    name_list,
)
from sovereign_ai.errors import ConfigError

__all__ = ["check"]

_NAMES_SHOWN = 12  # feature names listed in the summary; a wide file shows the count


def check(
    data: Annotated[Path, typer.Option("--data", help="Your dataset (CSV, Parquet or NPZ).")],
    job: Annotated[Path, typer.Option("--job", help="The job file of the federation to join.")],
    label: Annotated[
        str | None, typer.Option("--label", help="The column to predict (CSV and Parquet).")
    ] = None,
    classes: ClassesOption = None,
    columns: ColumnsOption = None,
    ignore_columns: IgnoreColumnsOption = None,
    delimiter: DelimiterOption = None,
) -> None:
    """Check that your file fits a job before your site joins: nothing is sent anywhere.

    Reads the file with the options `node start` would use and compares it with the job's model
    (`[model] num_features` and `num_classes`): width, classes, that every feature is a number,
    missing values, the label column. Prints what the file holds and every problem with what to
    do. Exit status: 0 if the file fits, 1 if it does not, 2 if the job or an option is invalid.
    """
    console = Console(highlight=False)
    with friendly_errors():
        from sovereign_ai.data import FileFormat, check_file, file_format
        from sovereign_ai.federation import load_job_spec
        from sovereign_ai.federation.deployment import deployed_dimensions

        spec = load_job_spec(job)
        num_features, num_classes = deployed_dimensions(spec)
        if label is None and file_format(data) is not FileFormat.NPZ:
            raise ConfigError("Which column holds the classes? Pass --label COLUMN.")
        layout = file_layout(
            columns=columns, ignore_columns=ignore_columns, delimiter=delimiter, settings={}
        )
        result = check_file(
            data,
            label=label,
            num_features=num_features,
            num_classes=num_classes,
            classes=name_list(classes, {}, "classes"),
            **layout.as_options(),
        )
    console.print(
        f"Checking [bold]{escape(str(data))}[/] against job [bold]{escape(spec.job.name)}[/] "
        f"(model {escape(spec.model.name)!r}: {num_features} features, {num_classes} classes)"
    )
    summary = Table.grid(padding=(0, 2))
    summary.add_row("rows", str(result.num_rows))
    if result.delimiter is not None:
        how = "given" if layout.delimiter is not None else "detected"
        shown = "tab" if result.delimiter == "\t" else repr(result.delimiter)
        summary.add_row("delimiter", f"{shown} ({how})")
    if result.feature_names:
        names = ", ".join(result.feature_names[:_NAMES_SHOWN])
        more = len(result.feature_names) - _NAMES_SHOWN
        names += f", ... ({more} more)" if more > 0 else ""
        summary.add_row("features", escape(f"{len(result.feature_names)}: {names}"))
    if result.class_names:
        counts = ", ".join(
            f"{name} {count}"
            for name, count in zip(result.class_names, result.class_counts, strict=True)
        )
        summary.add_row("classes", escape(f"{len(result.class_names)}: {counts}"))
    console.print(summary)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if result.fits:
        console.print(f"[bold green]OK[/] {escape(str(data))} fits job {spec.job.name!r}.")
        return
    count = len(result.problems)
    console.print(
        f"[bold red]FAIL[/] {escape(str(data))} does not fit job {spec.job.name!r}: "
        f"{count} problem{'s' if count > 1 else ''}."
    )
    listing = Table.grid(padding=(0, 1))  # wraps each problem under itself, not under "1."
    listing.add_column(justify="right")
    listing.add_column()
    for number, problem in enumerate(result.problems, start=1):
        listing.add_row(f" {number}.", escape(problem.problem))
        listing.add_row("", f"[cyan]->[/] {escape(problem.fix)}")
    console.print(listing)
    raise typer.Exit(code=1)
