"""``sovereign audit``: check a party's audit log, say what left the site (a node's) or what it
took in (the coordinator's), prove one entry."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="A party's tamper-evident audit log: verify it, report what left or came in, prove an "
    "entry.",
    no_args_is_help=True,
)

KitOption = Annotated[
    Path, typer.Option("--kit", help="The party's kit folder, which holds audit-log.sqlite.")
]


_JOB_ENDINGS = ("job_finished", "job_failed", "job_stopped")
"""The entry kinds of how a coordinator's job ended."""


def _log_path(kit: Path) -> Path:
    from sovereign_ai.errors import AuditError
    from sovereign_ai.governance.audit_log import AUDIT_FILE

    path = kit / AUDIT_FILE
    if not path.is_file():
        raise AuditError(
            f"No audit log in {kit}: pass the kit folder of a node or coordinator that has run "
            "(it keeps audit-log.sqlite there)."
        )
    return path


@audit_app.command("verify")
def verify(kit: KitOption) -> None:
    """Recompute the log's Merkle tree and check every signed checkpoint.

    Exits with status 1 and names the first removed, altered or reordered entry if the log was
    tampered with; with status 2 if the file is missing or damaged.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.governance.audit_log import verify_log

        report = verify_log(_log_path(kit))
    if not report.ok:
        console.print(
            f"[bold red]FAILED[/]: the audit log of {report.party!r} does not verify: "
            f"{report.problem}. First bad entry: {report.first_bad}.",
            highlight=False,
        )
        raise typer.Exit(code=1)
    unsigned = report.entries - report.signed_through
    console.print(
        f"[bold green]OK[/]: the audit log of {report.party!r} verifies: {report.entries} entries, "
        f"{report.checkpoints} signed checkpoint(s) covering the first {report.signed_through}"
        + (f"; the last {unsigned} are not signed yet" if unsigned else "")
        + ".",
        highlight=False,
    )


@audit_app.command("report")
def report(
    kit: KitOption,
    job: Annotated[str | None, typer.Option("--job", help="Only this job id.")] = None,
) -> None:
    """Per job: what left this site (a node's log: how many messages of each kind, their bytes,
    and digests) or what it took in (the coordinator's log: per node, answers accepted and
    refused, their bytes, and how the job ended)."""
    console = Console()
    with friendly_errors():
        from sovereign_ai.governance.audit_log import read_entries

        entries = read_entries(_log_path(kit), job_id=job)
    per_job: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    received: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    ended: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in entries:
        job_id = entry.job_id or "-"
        if entry.kind == "egress":
            per_job[job_id][str(entry.body.get("stage", "?"))].append(dict(entry.body))
        elif entry.kind == "received":
            received[job_id][str(entry.body.get("from", "?"))].append(dict(entry.body))
        elif entry.kind in _JOB_ENDINGS:
            ended[job_id] = (entry.kind, dict(entry.body))
    if not per_job and not received:
        console.print("Nothing left this site" + (f" for job {job!r}." if job else "."))
        return
    _print_sent(console, per_job)
    _print_received(console, received, ended)


def _print_sent(console: Console, per_job: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for job_id, kinds in per_job.items():
        table = Table(title=f"What left this site for job {job_id}")
        for column in ("kind", "messages", "bytes", "first digest (SHA-256)"):
            table.add_column(column, justify="left" if column == "kind" else "right")
        for kind, sent in sorted(kinds.items()):
            total = sum(int(m.get("bytes", 0)) for m in sent)
            table.add_row(kind, str(len(sent)), f"{total:,}", str(sent[0].get("sha256", ""))[:16])
        console.print(table)


def _print_received(
    console: Console,
    per_job: dict[str, dict[str, list[dict[str, Any]]]],
    ended: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    """The coordinator's view: per job and node, the answers taken in and those refused."""
    for job_id, nodes in per_job.items():
        table = Table(title=f"What this coordinator took in for job {job_id}")
        for column in ("node", "accepted", "bytes", "not accepted", "last reason"):
            table.add_column(
                column, justify="left" if column in ("node", "last reason") else "right"
            )
        for node_id, answers in sorted(nodes.items()):
            taken = [a for a in answers if a.get("accepted")]
            refused = [a for a in answers if not a.get("accepted")]
            total = sum(int(a.get("bytes", 0)) for a in taken)
            why = str(refused[-1].get("reason", "")) if refused else ""
            table.add_row(
                escape(node_id), str(len(taken)), f"{total:,}", str(len(refused)), escape(why)
            )
        console.print(table)
        if job_id in ended:
            kind, body = ended[job_id]
            detail = (
                f"final model {body.get('model_file', '?')}, SHA-256 {body.get('sha256', '?')}"
                if kind == "job_finished"
                else str(body.get("reason", ""))
            )
            detail = escape(detail)
            console.print(
                f"{kind.replace('_', ' ').capitalize()} after {body.get('rounds_completed', '?')} "
                f"round(s): {detail}",
                soft_wrap=True,
                highlight=False,
            )


@audit_app.command("prove")
def prove_entry(
    kit: KitOption,
    entry: Annotated[int, typer.Option("--entry", help="The entry's number (from 0).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the proof here (default: print it).")
    ] = None,
) -> None:
    """A proof file that entry N is in this log, for a third party to check offline."""
    with friendly_errors():
        from sovereign_ai.governance.audit_log import prove

        document = json.dumps(prove(_log_path(kit), entry), indent=2, sort_keys=True)
    if out is None:
        typer.echo(document)
        return
    out.write_text(document + "\n", encoding="utf-8")
    Console().print(
        f"Proof of entry {entry} written to {out}; anyone can check it offline with "
        f"'sovereign audit check-proof {out}'."
    )


@audit_app.command("check-proof")
def check_proof_file(
    proof: Annotated[Path, typer.Argument(help="A proof file from 'sovereign audit prove'.")],
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca", help="The federation CA certificate (PEM): also check who signed the proof."
        ),
    ] = None,
) -> None:
    """Check a proof offline: the entry is in the log whose head the party signed."""
    console = Console()
    with friendly_errors():
        from sovereign_ai.errors import AuditError
        from sovereign_ai.governance.audit_log import check_proof

        try:
            document = json.loads(proof.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AuditError(f"{proof} is not a readable proof file: {exc}.") from exc
        checkpoint, entry = check_proof(document)
        signer = "its certificate"
        if ca is not None:
            from sovereign_ai.pki.signing import certificate_holder

            at = dt.datetime.fromisoformat(checkpoint.signed_at)
            signer = certificate_holder(checkpoint.certificate, ca_pem=ca.read_bytes(), at=at)
            if signer != checkpoint.party:
                raise AuditError(
                    f"The proof claims the log of {checkpoint.party!r} but is signed by {signer!r}."
                )
    console.print(
        f"[bold green]OK[/]: entry {entry.seq} ({entry.kind}, job {entry.job_id}) is in the audit "
        f"log of {checkpoint.party!r}, {checkpoint.tree_size} entries, signed at "
        f"{checkpoint.signed_at} by {signer}.",
        highlight=False,
    )
