"""``sovereign provision``: create a federation's CA and startup kits, enrol, renew and revoke.

Mounted by the main app as ``app.add_typer(provision_app, name="provision")``::

    sovereign provision FEDERATION.toml --out DIR      # same as `provision create ...`
    sovereign provision add-node NAME --out DIR
    sovereign provision renew NAME --out DIR [--new-key] [--revoke-old]
    sovereign provision revoke NAME --out DIR --reason TEXT
    sovereign provision list DIR
    sovereign provision check DIR

New private keys are encrypted; see :mod:`sovereign_ai.cli._kit_passphrase` for the options.
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
from sovereign_ai.cli._kit_passphrase import (
    AllowUnencryptedOption,
    PassphraseEnvOption,
    PassphraseFileOption,
    PassphrasePromptOption,
    key_encryption_from_options,
    terminal_prompt,
)
from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    CoordinatorKit,
    Enrolment,
    EnrolmentState,
    FederationSpec,
    IssuedKit,
    NodeKit,
    Role,
    Roster,
    expiry_warnings,
    kit_enrolment,
    list_enrolment,
    load_kit,
    parse_federation_spec,
    read_roster,
    recorded_passphrase_source,
    renew_certificate,
)
from sovereign_ai.pki import add_node as pki_add_node
from sovereign_ai.pki import provision as pki_provision
from sovereign_ai.pki import revoke_node as pki_revoke_node

__all__ = ["provision_app"]

_DEFAULT_COMMAND = "create"


class _DefaultCommandGroup(TyperGroup):
    """Runs ``create`` when the first argument names no subcommand.

    That makes ``sovereign provision FEDERATION.toml --out DIR`` work while ``add-node``,
    ``renew``, ``revoke``, ``list`` and ``check`` remain subcommands (a group cannot have both a
    positional argument of its own and subcommands: click would take ``add-node`` for the file
    name).
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
ValidityOption = Annotated[
    int | None,
    typer.Option(min=1, help="Certificate lifetime in days. Default: the federation's."),
]
WithinDaysOption = Annotated[
    int, typer.Option(min=0, help="Warn about certificates expiring within this many days.")
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
    passphrase_env: PassphraseEnvOption = None,
    passphrase_file: PassphraseFileOption = None,
    passphrase_prompt: PassphrasePromptOption = False,
    allow_unencrypted_keys: AllowUnencryptedOption = False,
) -> None:
    """Create the federation CA, the coordinator's kit and one kit per node in OUT.

    OUT must not exist yet, or be empty: keys are never overwritten.
    Private keys are encrypted with a passphrase (default: from $SOVEREIGN_KIT_PASSPHRASE, or
    typed twice); each party reads it from the same place when it starts.
    Copy OUT/coordinator/ to the coordinator's machine and OUT/nodes/NAME/ to each site.
    OUT/ca/ holds the CA key: it stays with you.
    """
    console = Console()
    with friendly_errors():
        spec = _read_federation_file(federation_file)
        encryption = key_encryption_from_options(
            env=passphrase_env,
            file=passphrase_file,
            prompt=passphrase_prompt,
            allow_unencrypted_keys=allow_unencrypted_keys,
            console=console,
        )
        report = pki_provision(
            spec,
            out,
            key_encryption=encryption,
            allow_unencrypted_keys=allow_unencrypted_keys,
        )
    table = _kit_table(f"Federation {report.federation!r} in {out}", report.kits, out=out)
    table.add_row("CA", report.federation, "ca", "", f"{report.ca_not_after:%Y-%m-%d}")
    console.print(table)
    console.print(
        f"Keep [bold]{report.ca_folder}[/] (the CA key) with you. Copy each kit folder to the "
        "machine it names; private keys are mode 0600"
        + (
            f" and encrypted: each party reads the passphrase from {encryption.source.describe()}."
            if encryption
            else ", NOT encrypted."
        ),
        highlight=False,
    )


@provision_app.command(name="add-node")
def add_node(
    name: Annotated[str, typer.Argument(help="The new node's name (lowercase DNS label).")],
    out: OutOption,
    validity_days: ValidityOption = None,
    passphrase_env: PassphraseEnvOption = None,
    passphrase_file: PassphraseFileOption = None,
    passphrase_prompt: PassphrasePromptOption = False,
    allow_unencrypted_keys: AllowUnencryptedOption = False,
) -> None:
    """Enrol one more node; no other certificate is re-issued.

    Writes OUT/nodes/NAME/ (its key encrypted, as for create) and adds NAME to the roster.
    Copy OUT/coordinator/roster.json to the coordinator's machine so that it admits the node.
    """
    console = Console()
    with friendly_errors():
        encryption = key_encryption_from_options(
            env=passphrase_env,
            file=passphrase_file,
            prompt=passphrase_prompt,
            allow_unencrypted_keys=allow_unencrypted_keys,
            console=console,
        )
        kit = pki_add_node(
            out,
            name,
            key_encryption=encryption,
            allow_unencrypted_keys=allow_unencrypted_keys,
            validity_days=validity_days,
        )
    console.print(_kit_table(f"Enrolled node {name!r} in {out}", (kit,), out=out))
    console.print(
        f"Copy {kit.folder} to the node's site and {out / 'coordinator' / 'roster.json'} to the "
        "coordinator.",
        highlight=False,
    )


@provision_app.command(name="renew")
def renew(
    name: Annotated[str, typer.Argument(help="The coordinator's or a node's name.")],
    out: OutOption,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key", help="Also issue a new private key (if the old one may have leaked)."
        ),
    ] = False,
    revoke_old: Annotated[
        bool,
        typer.Option(
            "--revoke-old",
            help="Revoke the replaced certificate now; otherwise it works until it expires.",
        ),
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why the old certificate is revoked (with --revoke-old).")
    ] = "replaced by a renewed certificate",
    validity_days: ValidityOption = None,
    passphrase_env: PassphraseEnvOption = None,
    passphrase_file: PassphraseFileOption = None,
    passphrase_prompt: PassphrasePromptOption = False,
    allow_unencrypted_keys: AllowUnencryptedOption = False,
) -> None:
    """Issue a fresh certificate for one party, before or after it expires.

    Signed by the same federation CA; no other kit changes. The roster pins the new certificate
    at once: a coordinator whose kit is OUT/coordinator/ admits it without a restart (elsewhere,
    copy roster.json and crl.pem to its kit). Install the new node.pem (and node.key, with
    --new-key) at the site. A new key is encrypted like the old one unless a passphrase option
    says otherwise.
    """
    console = Console()
    with friendly_errors():
        encryption = None
        if new_key:
            encryption = key_encryption_from_options(
                env=passphrase_env,
                file=passphrase_file,
                prompt=passphrase_prompt,
                allow_unencrypted_keys=allow_unencrypted_keys,
                default=recorded_passphrase_source(out, name),
                console=console,
            )
        elif passphrase_env or passphrase_file or passphrase_prompt or allow_unencrypted_keys:
            raise ConfigError(
                "The passphrase options apply to a new key only; add --new-key, or leave them "
                "out to keep the current key."
            )
        report = renew_certificate(
            out,
            name,
            new_key=new_key,
            revoke_old=revoke_old,
            reason=reason,
            key_encryption=encryption,
            allow_unencrypted_keys=allow_unencrypted_keys,
            validity_days=validity_days,
        )
    kit = report.kit
    console.print(_kit_table(f"Renewed {kit.role.value} {name!r} in {out}", (kit,), out=out))
    replaced = f"{report.replaced_serial_number:x}"[:12] + "…"
    fate = (
        "is revoked: it is refused from now on"
        if report.is_replaced_revoked
        else "still works until it expires (add --revoke-old to refuse it at once)"
    )
    files = "node.pem and node.key" if report.has_new_key else "node.pem"
    if kit.role is Role.COORDINATOR:
        install = "Restart the coordinator to serve the new certificate."
    else:
        install = (
            f"Copy {files} from {kit.folder} to the site and restart its node. A coordinator "
            f"whose kit is not {out / 'coordinator'} needs its new roster.json and crl.pem."
        )
    console.print(f"The replaced certificate {replaced} {fate}. {install}", highlight=False)


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


@provision_app.command(name="list")
def list_parties(
    folder: Annotated[
        Path,
        typer.Argument(
            help="The provisioning folder, its ca/ folder, or a coordinator kit.",
            exists=True,
            file_okay=False,
        ),
    ],
    within_days: WithinDaysOption = 30,
) -> None:
    """List who is enrolled and their state: active, expiring soon, expired or revoked."""
    console = Console()
    with friendly_errors():
        roster = read_roster(folder)
        parties = list_enrolment(roster, within_days=within_days)
    table = Table(title=f"Federation {roster.federation!r}: {len(roster.nodes)} nodes enrolled")
    for column in ("role", "name", "state", "serial", "expires", "note"):
        table.add_column(column, overflow="fold")
    for party in parties:
        table.add_row(
            party.role.value,
            party.name,
            f"[{_STATE_STYLE[party.state]}]{party.state.value}[/]",
            f"{party.serial_number:x}"[:12] + "…",
            f"{party.not_after:%Y-%m-%d}",
            _note(party, roster),
        )
    console.print(table)


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
    within_days: WithinDaysOption = 30,
    roster: Annotated[
        Path | None,
        typer.Option(
            "--roster",
            help="Where the current roster is (provisioning folder, ca/ or coordinator kit), to "
            "tell whether a node kit is still enrolled. Found on its own for kits inside a "
            "provisioning folder.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Check a kit: it loads, its key is private, it is still enrolled, nothing expires soon.

    Exits with status 1 if the kit's certificate is revoked, expired, superseded or not enrolled.
    """
    console = Console()
    with friendly_errors():
        kit = _load_any_kit(folder)
        warnings = expiry_warnings(kit, within_days=within_days)
        standing = _standing(kit, roster, within_days=within_days)
    role = "Coordinator" if isinstance(kit, CoordinatorKit) else "Node"
    protection = (
        f"key encrypted (passphrase from {kit.manifest.key_passphrase.describe()})"
        if kit.manifest.key_passphrase
        else "key NOT encrypted (mode 0600 only)"
    )
    console.print(
        f"{role} kit [bold]{kit.name}[/] of federation {kit.federation!r} ({kit.folder}): "
        f"complete, {protection}, certificate issued by the federation CA.",
        highlight=False,
    )
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    if not warnings:
        console.print(f"No certificate expires within {within_days} days.")
    if standing is None:
        console.print(
            "Enrolment not checked: no roster here. Pass --roster DIR (the provisioning folder "
            "or the coordinator's kit) to learn whether this kit is revoked."
        )
        return
    if standing.state is EnrolmentState.REPLACED:
        console.print(f"[bold yellow]warning:[/] This certificate was {standing.detail}.")
    elif not standing.is_usable:
        detail = f" ({standing.detail})" if standing.detail else ""
        console.print(
            f"[bold red]{standing.state.value}:[/] the {kit.manifest.role.value} certificate of "
            f"{kit.name!r} is {standing.state.value}{detail}; the coordinator refuses it.",
            highlight=False,
        )
        raise typer.Exit(code=1)
    else:
        console.print(f"Enrolled on the federation's roster: {standing.state.value}.")


_STATE_STYLE = {
    EnrolmentState.ACTIVE: "green",
    EnrolmentState.EXPIRING: "yellow",
    EnrolmentState.REPLACED: "yellow",
    EnrolmentState.EXPIRED: "red",
    EnrolmentState.REVOKED: "bold red",
    EnrolmentState.NOT_ENROLLED: "red",
}


def _note(party: Enrolment, roster: Roster) -> str:
    entry = roster.entry(party.name)
    notes = [party.detail] if party.detail else []
    if entry is not None and entry.replaced:
        notes.append(f"renewed {len(entry.replaced)}x")
    if party.state is EnrolmentState.EXPIRING or party.state is EnrolmentState.EXPIRED:
        notes.append(f"sovereign provision renew {party.name}")
    return "; ".join(notes)


def _standing(
    kit: CoordinatorKit | NodeKit, roster_folder: Path | None, *, within_days: int
) -> Enrolment | None:
    """Where ``kit`` stands on the current roster, or ``None`` if no roster is at hand."""
    crl = None
    if roster_folder is not None:
        current = read_roster(roster_folder)
    elif isinstance(kit, CoordinatorKit):
        current, crl = kit.roster, kit.crl
    else:
        try:  # a kit inside a provisioning folder: OUT/nodes/NAME
            current = read_roster(kit.folder.parent.parent / "ca")
        except ProvisioningError:
            return None
    return kit_enrolment(
        kit.certificate,
        role=kit.manifest.role,
        name=kit.name,
        roster=current,
        crl=crl,
        within_days=within_days,
    )


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
    return load_kit(folder, prompt=terminal_prompt())


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
