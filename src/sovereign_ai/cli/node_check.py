"""``sovereign node check``: a dry run that checks a site's file, and its policy, against a job
before it joins."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from sovereign_ai.data import FileCheck
    from sovereign_ai.federation import JobSpec
    from sovereign_ai.federation.policy_dry_run import PolicyDryRun
    from sovereign_ai.governance import NodePolicy

__all__ = ["check"]

_NAMES_SHOWN = 12  # feature names listed in the summary; a wide file shows the count


def check(
    job: Annotated[Path, typer.Option("--job", help="The job file of the federation to join.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Your dataset (CSV, Parquet or NPZ). Default: KIT/node.toml."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label", help="The column to predict (CSV and Parquet). Default: KIT/node.toml."
        ),
    ] = None,
    classes: ClassesOption = None,
    columns: ColumnsOption = None,
    ignore_columns: IgnoreColumnsOption = None,
    delimiter: DelimiterOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="A node policy to judge the job by. Default: KIT/policy.toml."
        ),
    ] = None,
    kit: Annotated[
        Path | None,
        typer.Option(
            "--kit", help="This site's kit folder: its policy.toml, and node.toml's data settings."
        ),
    ] = None,
) -> None:
    """Check that your file, and your policy, fit a job before your site joins: nothing is sent.

    Reads the file with the options `node start` would use and compares it with the job's model
    (`[model] num_features` and `num_classes`): width, classes, that every feature is a number,
    missing values, the label column. Prints what the file holds and every problem with what to
    do. With --policy (or --kit, whose policy.toml it reads), also validates the policy and
    judges the job by it, with the rules the node applies at run time; it says which rules wait
    for facts known only once the node connects. Exit status: 0 if the file fits and the policy
    accepts the job, 1 if not, 2 if the job, the policy or an option is invalid.
    """
    console = Console(highlight=False)
    with friendly_errors():
        from sovereign_ai.data import FileFormat, check_file, file_format
        from sovereign_ai.federation import load_job_spec
        from sovereign_ai.federation.deployment import deployed_dimensions
        from sovereign_ai.federation.policy_dry_run import dry_run_policy

        spec = load_job_spec(job)
        num_features, num_classes = deployed_dimensions(spec)
        settings = _kit_settings(kit)
        node_policy, policy_path = _policy(policy, kit)  # an invalid policy stops here: exit 2
        data = data or _kit_data(kit, settings)
        label = label or str(settings.get("label", "")) or None
        if label is None and file_format(data) is not FileFormat.NPZ:
            raise ConfigError("Which column holds the classes? Pass --label COLUMN.")
        layout = file_layout(
            columns=columns, ignore_columns=ignore_columns, delimiter=delimiter, settings=settings
        )
        result = check_file(
            data,
            label=label,
            num_features=num_features,
            num_classes=num_classes,
            classes=name_list(classes, settings, "classes"),
            **layout.as_options(),
        )
        dry_run = None
        if node_policy is not None:
            dry_run = dry_run_policy(
                node_policy,
                spec,
                num_features=num_features,
                num_classes=num_classes,
                rows=result.num_rows,
            )
    console.print(
        f"Checking [bold]{escape(str(data))}[/] against job [bold]{escape(spec.job.name)}[/] "
        f"(model {escape(spec.model.name)!r}: {num_features} features, {num_classes} classes)"
    )
    fits = _report_file(
        console, data, spec, result, is_delimiter_given=layout.delimiter is not None
    )
    is_accepted = True
    if node_policy is not None and dry_run is not None:
        console.print()
        is_accepted = _report_policy(console, policy_path, node_policy, spec, dry_run)
    elif kit is not None:
        console.print()
        console.print(
            f"No policy.toml in {escape(str(kit))}: this node would answer every job's tasks "
            "(docs/node-policy.md)."
        )
    if not (fits and is_accepted):
        raise typer.Exit(code=1)


def _kit_settings(kit: Path | None) -> dict[str, Any]:
    """The ``[node]`` table of KIT/node.toml (empty without a kit)."""
    if kit is None:
        return {}
    if not kit.is_dir():
        raise ConfigError(f"The kit folder {str(kit)!r} does not exist; pass this site's kit.")
    from sovereign_ai.cli.node import _node_settings  # node.py imports this module: import late

    return _node_settings(kit)


def _kit_data(kit: Path | None, settings: dict[str, Any]) -> Path:
    if kit is None:
        raise ConfigError(
            "Which data should be checked? Pass --data FILE, or --kit DIR whose node.toml names it."
        )
    from sovereign_ai.cli.node import _setting_path

    return _setting_path(kit, settings, "data")


def _policy(option: Path | None, kit: Path | None) -> tuple[NodePolicy | None, Path | None]:
    """The policy to judge the job by, validated, and its file: --policy, else KIT/policy.toml."""
    from sovereign_ai.cli.node import POLICY_FILE

    if option is None and kit is None:
        return None, None
    path = option if option is not None else kit / POLICY_FILE if kit is not None else None
    if path is None or (option is None and not path.exists()):
        return None, None
    if not path.is_file():
        raise ConfigError(
            f"The node policy {str(path)!r} does not exist; check the path given to --policy."
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The node policy {str(path)!r} cannot be read: {exc}.") from exc
    from sovereign_ai.governance import NodePolicy

    return NodePolicy.parse(document, source=repr(str(path))), path


def _report_file(
    console: Console, data: Path, spec: JobSpec, result: FileCheck, *, is_delimiter_given: bool
) -> bool:
    """Print what the file holds and each problem; whether it fits."""
    summary = Table.grid(padding=(0, 2))
    summary.add_row("rows", str(result.num_rows))
    if result.delimiter is not None:
        how = "given" if is_delimiter_given else "detected"
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
        return True
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
    return False


def _report_policy(
    console: Console, path: Path | None, policy: NodePolicy, spec: JobSpec, dry_run: PolicyDryRun
) -> bool:
    """Print the policy's rules and its judgement of the job; whether the node would join."""
    console.print(f"Policy [bold]{escape(str(path))}[/] is valid. What it allows:")
    rules = Table.grid(padding=(0, 1))
    if policy.jurisdiction:
        rules.add_row(
            " -", escape(f"this site is in {policy.jurisdiction} (recorded, not checked)")
        )
    for rule in policy.rules():
        rules.add_row(" -", escape(rule))
    if len(policy.rules()) == 1:  # only the outputs line: no rule refuses a job
        rules.add_row(" -", "no rule refuses a job")
    console.print(rules)
    console.print(escape(f"Job {spec.job.name!r} as the node reads it: {_terms(dry_run)}."))
    name = escape(repr(spec.job.name))
    if dry_run.refusal is not None:
        code = escape(str(dry_run.refusal.code))
        console.print(f"[bold red]REFUSED[/] this node would refuse job {name}: {code}")
        console.print(f"  why: {escape(dry_run.refusal.detail)}")
        console.print(
            f"  [cyan]->[/] The coordinator would see only the code {code}; the reason stays in "
            "this node's log. Change the job, or the policy if its owner agrees."
        )
    else:
        console.print(f"[bold green]ACCEPTED[/] this node would join job {name}.")
        for refused in dry_run.task_refusals:
            console.print(
                f"[yellow]note:[/] its {refused.output.value} tasks would be refused "
                f"({escape(str(refused.refusal.code))}): {escape(refused.refusal.detail)}; "
                "the job goes on without them."
            )
        if dry_run.metrics_kept is not None:
            console.print(
                "  evaluation metrics that would leave: "
                + escape(", ".join(dry_run.metrics_kept) or "none")
            )
    _bullets(console, "Checked now, from the job file:", dry_run.checked)
    _bullets(
        console, "Checked only when the node connects and runs the job:", dry_run.at_connection
    )
    return dry_run.is_accepted


def _bullets(console: Console, title: str, lines: tuple[str, ...]) -> None:
    console.print(title)
    listing = Table.grid(padding=(0, 1))
    for line in lines:
        listing.add_row(" -", escape(line))
    console.print(listing)


def _terms(dry_run: PolicyDryRun) -> str:
    terms = dry_run.terms
    size = "" if terms.model_parameters is None else f" ({terms.model_parameters:,} parameters)"
    secure = "on" if terms.secure_aggregation else "off"
    return (
        f"model {terms.model!r}{size}, {terms.rounds} rounds, secure aggregation {secure}, "
        f"privacy mode {terms.privacy_mode!r}, at least {terms.min_nodes} node(s) per round"
    )
