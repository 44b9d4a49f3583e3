"""``sovereign provision``: create a federation's CA and startup kits, enrol and revoke nodes.

Mounted by the main app as ``app.add_typer(provision_app, name="provision")``::

    sovereign provision FEDERATION.toml --out DIR      # same as `provision create ...`
    sovereign provision add-node NAME --out DIR
    sovereign provision revoke NAME --out DIR --reason TEXT
    sovereign provision check DIR
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.errors import ConfigError
from sovereign_ai.pki import (
    CoordinatorKit,
    FederationSpec,
    IssuedKit,
    NodeKit,
    Role,
    expiry_warnings,
    load_kit,
    parse_federation_spec,
)
from sovereign_ai.pki import add_node as pki_add_node
from sovereign_ai.pki import provision as pki_provision
from sovereign_ai.pki import revoke_node as pki_revoke_node

__all__ = ["provision_app"]

_DEFAULT_COMMAND = "create"


class _DefaultCommandGroup(TyperGroup):
    """Runs ``create`` when the first argument names no subcommand.

    That makes ``sovereign provision FEDERATION.toml --out DIR`` work while ``add-node``,
    ``revoke`` and ``check`` remain subcommands (a group cannot have both a positional argument of
    its own and subcommands: click would take ``add-node`` for the file name).
    """

    # ``ctx`` is typer's vendored click Context, which has no public name to annotate with.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [_DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


provision_app = typer.Typer(
    cls=_DefaultCommandGroup,
    help=(
        "Create the federation's certificate authority and one startup kit per party. "
        "Run `sovereign provision FEDERATION.toml --out DIR` to start a federation."
    ),
    no_args_is_help=True,
    add_completion=False,
)

OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="The provisioning folder (holds ca/, coordinator/ and nodes/<name>/).",
        file_okay=False,
    ),
]


@provision_app.command(name=_DEFAULT_COMMAND)
def create(
    federation_file: Annotated[
        Path,
        typer.Argument(
            help="Federation file (TOML) with federation, coordinator and nodes tables; "
            "see examples/federation.toml.",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FEDERATION.toml",
        ),
    ],
    out: OutOption,
) -> None:
    """Create the federation CA, the coordinator's kit and one kit per node in OUT.

    OUT must not exist yet, or be empty: keys are never overwritten.
    Copy OUT/coordinator/ to the coordinator's machine and OUT/nodes/NAME/ to each site.
    OUT/ca/ holds the CA key: it stays with you.
    """
    console = Console()
    with friendly_errors():
        spec = _read_federation_file(federation_file)
        report = pki_provision(spec, out)
    table = _kit_table(f"Federation {report.federation!r} in {out}", report.kits, out=out)
    table.add_row("CA", report.federation, "ca", "", f"{report.ca_not_after:%Y-%m-%d}")
    console.print(table)
    console.print(
        f"Keep [bold]{report.ca_folder}[/] (the CA key) with you. Copy each kit folder to the "
        "machine it names; private keys are mode 0600.",
        highlight=False,
    )


@provision_app.command(name="add-node")
def add_node(
    name: Annotated[str, typer.Argument(help="The new node's name (lowercase DNS label).")],
    out: OutOption,
    validity_days: Annotated[
        int | None,
        typer.Option(min=1, help="Certificate lifetime in days. Default: the federation's."),
    ] = None,
) -> None:
    """Enrol one more node; no other certificate is re-issued.

    Writes OUT/nodes/NAME/ and adds NAME to the roster.
    Copy OUT/coordinator/roster.json to the coordinator's machine so that it admits the node.
    """
    console = Console()
    with friendly_errors():
        kit = pki_add_node(out, name, validity_days=validity_days)
    console.print(_kit_table(f"Enrolled node {name!r} in {out}", (kit,), out=out))
    console.print(
        f"Copy {kit.folder} to the node's site and {out / 'coordinator' / 'roster.json'} to the "
        "coordinator.",
        highlight=False,
    )


@provision_app.command(name="revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The node to lock out.")],
    out: OutOption,
    reason: Annotated[
        str, typer.Option(help="Why the node is revoked (kept on the roster for the record).")
    ],
) -> None:
    """Revoke a node: it is refused at its next connection to the coordinator.

    Adds the node's certificate to the CRL and marks it revoked on the roster.
    Copy OUT/coordinator/crl.pem and roster.json to the coordinator's machine.
    """
    console = Console()
    with friendly_errors():
        entry = pki_revoke_node(out, name, reason=reason)
    revoked_on = f"{entry.revoked_at:%Y-%m-%d %H:%M} UTC" if entry.revoked_at else "earlier"
    console.print(
        f"Node [bold]{entry.name}[/] is revoked (since {revoked_on}; reason: "
        f"{entry.revocation_reason}). Copy {out / 'coordinator' / 'crl.pem'} and roster.json "
        "to the coordinator.",
        highlight=False,
    )


@provision_app.command(name="check")
def check(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A startup kit folder, or the provisioning folder (checks its coordinator kit, "
            "which lists every node).",
            exists=True,
            file_okay=False,
        ),
    ],
    within_days: Annotated[
        int, typer.Option(min=0, help="Warn about certificates expiring within this many days.")
    ] = 30,
) -> None:
    """Check a kit: it loads, its key is private, and nothing expires soon."""
    console = Console()
    with friendly_errors():
        kit = _load_any_kit(folder)
        warnings = expiry_warnings(kit, within_days=within_days)
    role = "Coordinator" if isinstance(kit, CoordinatorKit) else "Node"
    console.print(
        f"{role} kit [bold]{kit.name}[/] of federation {kit.federation!r} ({kit.folder}): "
        "complete, key private, certificate issued by the federation CA.",
        highlight=False,
    )
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    if not warnings:
        console.print(f"No certificate expires within {within_days} days.")


def _read_federation_file(path: Path) -> FederationSpec:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from exc
    return parse_federation_spec(data, source=str(path))


def _load_any_kit(folder: Path) -> CoordinatorKit | NodeKit:
    if not (folder / "kit.json").exists() and (folder / "coordinator" / "kit.json").exists():
        folder = folder / "coordinator"
    return load_kit(folder)


def _kit_table(title: str, kits: tuple[IssuedKit, ...], *, out: Path) -> Table:
    table = Table(title=title)
    for column in ("role", "name", "folder", "serial", "expires"):
        table.add_column(column, overflow="fold")
    for kit in kits:
        role = "coordinator" if kit.role is Role.COORDINATOR else "node"
        serial = f"{kit.serial_number:x}"[:12] + "…"
        folder = kit.folder.relative_to(out) if kit.folder.is_relative_to(out) else kit.folder
        table.add_row(role, kit.name, str(folder), serial, f"{kit.not_after:%Y-%m-%d}")
    return table
