"""``sovereign registry list|show|verify|alias|card``: the models jobs registered."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.errors import RegistryError
from sovereign_ai.registry import ModelRegistry, VerificationReport, model_card, verify_version

__all__ = ["DEFAULT_REGISTRY", "RegistryOption", "registry_app"]

DEFAULT_REGISTRY = Path("registry")
"""Where ``sovereign simulate`` and ``sovereign coordinator start`` register models by default:
``registry/`` in the current folder, beside ``runs/``, so one registry collects every job."""

RegistryOption = Annotated[
    Path,
    typer.Option(
        "--registry",
        help="The model registry folder (SQLite file + one folder per version). Default: "
        "registry/ in the current folder, where simulate and coordinator start register.",
    ),
]
ReferenceArgument = Annotated[
    str, typer.Argument(help="NAME (latest version), NAME@ALIAS or NAME:VERSION.")
]

registry_app = typer.Typer(
    help="The model registry: every job's final model with its signed passport (lineage).",
    no_args_is_help=True,
)


@registry_app.command("list")
def list_models(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """List every registered version: name, version, aliases, job, time, signed or not."""
    console = Console()
    with friendly_errors(), ModelRegistry(registry) as store:
        versions = store.versions()
    table = Table(title=f"{len(versions)} version(s) in {registry}")
    for column in ("model", "version", "aliases", "job", "registered", "signed", "SHA-256"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            ", ".join(v.aliases),
            v.job_id,
            v.registered_at,
            "yes" if v.is_signed else "[yellow]no[/]",
            v.parameter_digest[:16] + "…",
        )
    console.print(table)


@registry_app.command("show")
def show(reference: ReferenceArgument, registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """Print a version's passport as stored (as JSON; 'verify' checks it)."""
    with friendly_errors(), ModelRegistry(registry) as store:
        version = store.resolve(reference)
        passport = store.passport(version.reference)
    Console(stderr=True).print(
        f"{version.reference}{' (' + ', '.join(version.aliases) + ')' if version.aliases else ''}"
        f": {'signed' if version.is_signed else 'unsigned'}; not verified here (see 'sovereign "
        "registry verify').",
        highlight=False,
    )
    typer.echo(json.dumps(passport.model_dump(mode="json"), indent=2, ensure_ascii=False))


@registry_app.command("verify")
def verify(
    reference: ReferenceArgument,
    registry: RegistryOption = DEFAULT_REGISTRY,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="The federation CA's certificate (PEM): also check that it certified the "
            "signer as the coordinator the passport names.",
        ),
    ] = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Accept an unsigned (simulation) version whose files agree with the registry's "
            "own record; that shows no corruption, not who made it.",
        ),
    ] = False,
) -> None:
    """Check a version: passport and model files unchanged, passport signature valid.

    Exits 0 if every check holds (and the version is signed, unless --allow-unsigned), 1 if
    one fails, naming it; 2 if the registry itself is unreadable or the reference unknown.
    """
    console = Console()
    with friendly_errors(), ModelRegistry(registry) as store:
        report = verify_version(store.resolve(reference))
        holder = None
        if ca is not None and report.is_ok():
            holder = _certified_coordinator(report, ca.read_bytes())
    for check in report.checks:
        mark = "[green]ok[/]" if check.is_ok else "[bold red]FAILED[/]"
        console.print(f"{mark}  {check.name}: {escape(check.detail)}", highlight=False)
    if holder is not None:
        console.print(f"[green]ok[/]  certificate: the CA certified it to {holder!r}")
    if not report.is_intact:
        names = ", ".join(check.name for check in report.failures)
        console.print(f"[bold red]{report.version.reference} does not verify[/]: {names}.")
        raise typer.Exit(code=1)
    if not report.is_ok(allow_unsigned=allow_unsigned):
        console.print(
            f"[bold red]{report.version.reference} is unsigned[/]: its files agree with the "
            "registry's record, but nothing shows who made it; --allow-unsigned accepts that."
        )
        raise typer.Exit(code=1)
    if ca is None and report.is_signed:
        console.print("[yellow]note:[/] pass --ca to check who the signer is.")
    console.print(f"[bold green]{report.version.reference} verifies.[/]")


def _certified_coordinator(report: VerificationReport, ca_pem: bytes) -> str | None:
    """The coordinator the CA certified in the signature's certificate, which the passport must
    name (``None`` for an unsigned version: nothing to certify)."""
    from sovereign_ai.errors import AuthenticationError
    from sovereign_ai.pki.signing import certificate_holder

    if report.certificate is None or report.passport is None:
        return None
    claimed = report.passport.lineage.coordinator
    at = dt.datetime.fromisoformat(report.passport.registered_at)
    try:
        holder = certificate_holder(report.certificate, ca_pem=ca_pem, at=at)
    except AuthenticationError as exc:
        raise RegistryError(f"The passport's signer is not certified by that CA: {exc}") from exc
    if claimed is None or claimed.name != holder:
        raise RegistryError(
            f"The passport names coordinator {claimed.name if claimed else None!r} but is "
            f"signed by {holder!r}."
        )
    return holder


@registry_app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[int, typer.Argument(help="The version the alias should point at.")],
    alias_name: Annotated[
        str, typer.Argument(metavar="ALIAS", help="e.g. production, staging (lower case).")
    ],
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """Point NAME@ALIAS at VERSION (moving the alias if it pointed elsewhere).

    Aliases are the registry's labels, not part of the signed passport.
    """
    with friendly_errors(), ModelRegistry(registry) as store:
        target = store.set_alias(name, alias_name, version)
    Console().print(f"{name}@{alias_name} -> {target.reference}", highlight=False)


@registry_app.command("card")
def card(
    reference: ReferenceArgument,
    registry: RegistryOption = DEFAULT_REGISTRY,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the card here instead of printing it.")
    ] = None,
) -> None:
    """Write a version's model card (Markdown, the sections of Mitchell et al. 2019) from its
    passport. Intended use, factors and ethical considerations are left for the owners."""
    with friendly_errors(), ModelRegistry(registry) as store:
        text = model_card(store.passport(reference))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    Console().print(f"Wrote {out}", highlight=False)
