"""``sovereign coordinator start|status``: run the coordinator of a real federation."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.cli._runtime import use_one_torch_thread
from sovereign_ai.cli.progress import RoundProgress
from sovereign_ai.cli.report import (
    complete_history,
    history_to_json,
    plot_history,
    write_json,
)
from sovereign_ai.federation import RoundObserver, RoundReport

if TYPE_CHECKING:
    from sovereign_ai.federation.transports.grpc import (
        CoordinatorStatus,
        GrpcCoordinatorTransport,
    )

__all__ = ["coordinator_app"]

coordinator_app = typer.Typer(
    help="Run the coordinator: it serves tasks to nodes that dial in over mutual TLS.",
    no_args_is_help=True,
)

KitOption = Annotated[
    Path, typer.Option("--kit", help="The coordinator's startup kit folder (from provision).")
]
StateOption = Annotated[
    Path | None,
    typer.Option("--state", help="Folder of the durable job state. Default: KIT/state."),
]


@coordinator_app.command("start")
def start(
    kit: KitOption,
    job: Annotated[Path, typer.Option("--job", help="Job spec TOML (see docs/job-spec.md).")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last completed round in --state.")
    ] = False,
    state: StateOption = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="host:port to listen on. Default: 0.0.0.0 and the port of the kit's address.",
        ),
    ] = None,
    test_data: Annotated[
        Path | None,
        typer.Option("--test-data", help="Optional test set the coordinator may hold (CSV/...)."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Label column of --test-data.")
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option("--classes", help="Class names in order, comma-separated, for --test-data."),
    ] = None,
    allow_insecure: Annotated[
        bool,
        typer.Option(
            "--allow-insecure",
            help="Serve plaintext without certificates. For local tests ONLY: anyone can then "
            "claim to be any node.",
        ),
    ] = False,
) -> None:
    """Serve a job to the federation's nodes until every round is done.

    Each round is durable in --state before the next starts. If this process is killed, start it
    again with --resume: it continues from the last completed round, the nodes reconnect on their
    own, and the final model is the same as an uninterrupted run's.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.data import load_file
        from sovereign_ai.federation import load_job_spec, test_set_evaluator
        from sovereign_ai.federation.deployment import deployed_dimensions, run_coordinator
        from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport
        from sovereign_ai.pki import expiry_warnings, load_coordinator_kit

        use_one_torch_thread()
        coordinator_kit = load_coordinator_kit(kit)
        for warning in expiry_warnings(coordinator_kit):
            console.print(f"[yellow]warning:[/] {warning}")
        spec = load_job_spec(job)
        deployed_dimensions(spec)
        evaluator = None
        if test_data is not None:
            names = [c.strip() for c in classes.split(",")] if classes else None
            held = load_file(test_data, label=label, classes=names)
            evaluator = test_set_evaluator(
                spec, held.features, held.labels, num_classes=deployed_dimensions(spec)[1]
            )
        folder = state or kit / "state"
        folder.mkdir(parents=True, exist_ok=True)
        port = coordinator_kit.coordinator_address.rsplit(":", 1)[-1]
        transport = GrpcCoordinatorTransport(
            kit=coordinator_kit,
            bind_address=listen or f"0.0.0.0:{port}",
            allow_insecure=allow_insecure,
        )
        stop_writer = threading.Event()
        writer = threading.Thread(
            target=_write_status_loop, args=(transport, folder, stop_writer), daemon=True
        )
        writer.start()
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        console.print(
            f"Coordinator {coordinator_kit.name!r} of federation {coordinator_kit.federation!r} "
            f"listening on port {transport.port}; job {spec.job_id}; state in {folder}."
        )
        try:
            with RoundProgress(console, label=spec.job.name) as progress:
                history = run_coordinator(
                    spec,
                    transport=transport,
                    state_dir=folder / "rounds",
                    resume=resume,
                    observer=_Both(progress, transport),
                    central_evaluator=evaluator,
                )
        finally:
            stop_writer.set()
            writer.join(timeout=5)
            _write_status(transport, folder)
            transport.close()
    if history.resumed_from:
        console.print(f"Resumed after round {history.resumed_from}.")
    history = complete_history(history, folder / "rounds")
    write_json(folder / "metrics.json", {"job_id": spec.job_id, "rounds": history_to_json(history)})
    if history.rounds:
        plot_history(history, folder / "plot.png", title=spec.job.name)
        last = history.rounds[-1]
        console.print(
            f"Job {spec.job_id} finished: round {last.round_number}, "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(last.metrics.items()))
        )
    console.print(f"Wrote {folder / 'metrics.json'} and {folder / 'plot.png'}")


@coordinator_app.command("status")
def status(
    kit: KitOption,
    state: StateOption = None,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="The coordinator serves plaintext (tests).")
    ] = False,
) -> None:
    """Show the running job: round, connected nodes and the last metrics.

    Asks the coordinator over mutual TLS, with the coordinator's own kit or any node's kit. If the
    coordinator cannot be reached and this is the coordinator's kit, shows the last status it
    wrote to its state folder instead, with its age.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.errors import TransportError
        from sovereign_ai.federation.transports.grpc import fetch_status
        from sovereign_ai.pki import CoordinatorKit, load_kit

        loaded = load_kit(kit)
        try:
            report = fetch_status(loaded, allow_insecure=allow_insecure)
        except TransportError as exc:
            if not isinstance(loaded, CoordinatorKit):
                raise
            Console(stderr=True).print(
                f"[yellow]note:[/] {escape(str(exc))}\nShowing the last status the coordinator "
                "wrote instead."
            )
            report = _read_status(state or kit / "state")
        _print_status(console, report)


def _print_status(console: Console, report: CoordinatorStatus) -> None:
    console.print(
        f"Federation [bold]{report.federation}[/], coordinator {report.coordinator}, "
        f"up {report.uptime_s:.0f} s"
    )
    console.print(
        f"Job {report.job_id or '(none yet)'}: round {report.round_number}/"
        f"{report.total_rounds or '?'}, stage {report.stage or '-'}"
    )
    table = Table(title=f"{len(report.nodes)} connected node(s)")
    table.add_column("node")
    table.add_column("last seen", justify="right")
    table.add_column("busy")
    for node in report.nodes:
        table.add_row(node.node_id, f"{node.seconds_since_seen:.1f} s ago", str(node.is_busy))
    console.print(table)
    if report.metrics:
        console.print(
            "Last round: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(report.metrics.items()))
        )


class _Both:
    """Forwards round events to the progress bar and to the transport's status."""

    def __init__(self, *observers: RoundObserver) -> None:
        self._observers = observers

    def on_round_start(self, round_number: int, total_rounds: int) -> None:
        for observer in self._observers:
            observer.on_round_start(round_number, total_rounds)

    def on_round_end(self, report: RoundReport) -> None:
        for observer in self._observers:
            observer.on_round_end(report)


def _write_status(transport: GrpcCoordinatorTransport, folder: Path) -> None:
    document = asdict(transport.status())
    document["written_at"] = time.time()
    write_json(folder / "status.json", document)


def _write_status_loop(
    transport: GrpcCoordinatorTransport, folder: Path, stop: threading.Event
) -> None:
    _write_status(transport, folder)
    while not stop.wait(1.0):
        _write_status(transport, folder)


def _read_status(folder: Path) -> CoordinatorStatus:
    from sovereign_ai.errors import ConfigError
    from sovereign_ai.federation.transports.grpc import ConnectedNode, CoordinatorStatus

    path = folder / "status.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"No coordinator status in {str(folder)!r}: is the coordinator running with this "
            "kit (or pass --state where it keeps its state)?"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"The status file {str(path)!r} cannot be read: {exc}.") from exc
    age = time.time() - float(document.pop("written_at", 0.0))
    nodes = tuple(ConnectedNode(**n) for n in document.pop("nodes", []))
    if age > 5:
        Console(stderr=True).print(
            f"[yellow]note:[/] the status is {age:.0f} s old; the coordinator may have stopped."
        )
    return CoordinatorStatus(nodes=nodes, **document)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    del signum, frame
    raise KeyboardInterrupt
