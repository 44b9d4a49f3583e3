"""A whole federation on this machine, as real processes over gRPC with mutual TLS on loopback.

Used by ``sovereign demo``, the fault tests and the benchmarks: it provisions a fresh federation
(CA, coordinator and node certificates) for a free port, then starts ``sovereign coordinator
start`` and ``sovereign node start`` as separate processes, exactly as sites would run them. Each
process can be killed and restarted on its own.

The kits' private keys are encrypted like a real site's, with a random passphrase generated into
the working folder (``kit-passphrase``, mode 0600); each kit names that file, so every process
(and a test that loads a kit itself) finds the passphrase without being handed it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sovereign_ai.errors import ConfigError, FederationError
from sovereign_ai.federation.run_folder import RunFolder
from sovereign_ai.pki import KeyEncryption, PassphraseSource, parse_federation_spec, provision

__all__ = ["LocalFederation", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sovereign_ai.cli", *args]


@dataclass
class LocalFederation:
    """Provisioned kits and the processes of one local federation.

    Parameters
    ----------
    folder
        Working folder: ``kits/``, ``logs/`` and the coordinator's run folder ``run/`` go here.
    node_names
        The nodes to provision.
    port
        Coordinator port on 127.0.0.1; a free one by default.
    """

    folder: Path
    node_names: Sequence[str]
    port: int = field(default_factory=free_port)
    coordinator: subprocess.Popen[bytes] | None = field(default=None, init=False)
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        # Absolute, because every process runs with this folder as its working directory.
        self.folder = Path(self.folder).resolve()
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)

    # Layout -------------------------------------------------------------------------------------
    @property
    def kits(self) -> Path:
        """Where the provisioned kits are."""
        return self.folder / "kits"

    @property
    def run(self) -> RunFolder:
        """The coordinator's run folder (state, metrics, plot, final model, status)."""
        return RunFolder(self.folder / "run")

    @property
    def passphrase_file(self) -> Path:
        """The file holding the kits' passphrase (mode 0600)."""
        return self.folder / "kit-passphrase"

    def node_kit(self, name: str) -> Path:
        """The kit folder of node ``name``."""
        return self.kits / "nodes" / name

    def log(self, name: str) -> Path:
        """The log file of process ``name`` (``coordinator`` or a node)."""
        return self.folder / "logs" / f"{name}.log"

    # Lifecycle ----------------------------------------------------------------------------------
    def provision(
        self, *, federation: str = "local-federation", coordinator_jurisdiction: str | None = None
    ) -> None:
        """Create the CA and every kit for ``localhost:<port>``.

        ``coordinator_jurisdiction`` (e.g. ``"DE"``) is certified in the coordinator's
        certificate, for nodes' policies to require.
        """
        jurisdiction = (
            {} if coordinator_jurisdiction is None else {"jurisdiction": coordinator_jurisdiction}
        )
        spec = parse_federation_spec(
            {
                "federation": {"name": federation},
                "coordinator": {
                    "name": "coordinator",
                    "address": f"127.0.0.1:{self.port}",
                    "hosts": ["127.0.0.1", "localhost"],
                    **jurisdiction,
                },
                "nodes": [{"name": name} for name in self.node_names],
            }
        )
        passphrase = secrets.token_urlsafe(32).encode()
        descriptor = os.open(self.passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # in case the file existed with a looser mode
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(passphrase)
        source = PassphraseSource.file(self.passphrase_file)
        provision(
            spec, self.kits, key_encryption=KeyEncryption(passphrase=passphrase, source=source)
        )

    def start_coordinator(
        self,
        job: Path,
        *,
        resume: bool = False,
        extra: Sequence[str] = (),
        is_default_run_folder: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) the coordinator process on the job.

        The run goes to :attr:`run`, or with ``is_default_run_folder`` to where the command puts
        it by default (``runs/<job name>`` under :attr:`folder`). Paths in ``extra`` must be
        absolute: the process runs in :attr:`folder`.
        """
        out = [] if is_default_run_folder else ["--out", str(self.run.path)]
        args = [
            "coordinator",
            "start",
            "--kit",
            str(self.kits / "coordinator"),
            "--job",
            str(Path(job).resolve()),
            *out,
            "--listen",
            f"127.0.0.1:{self.port}",
            *extra,
        ]
        if resume:
            args.append("--resume")
        self.coordinator = self._spawn("coordinator", _command(*args))
        return self.coordinator

    def start_node(
        self, name: str, data: Path, *, label: str, extra: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) node ``name`` on its data file."""
        args = [
            "node",
            "start",
            "--kit",
            str(self.node_kit(name)),
            "--data",
            str(Path(data).resolve()),
            "--label",
            label,
            *extra,
        ]
        self.nodes[name] = self._spawn(name, _command(*args))
        return self.nodes[name]

    def start_python(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``python argv...`` as node ``name`` (e.g. a test's own node program)."""
        self.nodes[name] = self._spawn(name, [sys.executable, *argv])
        return self.nodes[name]

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.log(name), "ab")  # noqa: SIM115  # the child owns it; closed on exit
        env = {**os.environ, "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
        try:
            return subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.folder,
            )
        finally:
            log.close()

    def kill(self, name: str) -> None:
        """SIGKILL the coordinator or a node, as a crash would."""
        process = self.coordinator if name == "coordinator" else self.nodes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    def stop(self) -> None:
        """Stop every process still running (SIGTERM, then SIGKILL after 10 s)."""
        processes = [p for p in [self.coordinator, *self.nodes.values()] if p is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Watching -----------------------------------------------------------------------------------
    def durable_round(self) -> int:
        """The last round the coordinator has made durable (-1 before round 0)."""
        database = self.run.state / "state.db"
        if not database.exists():
            return -1
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
                row = db.execute("SELECT MAX(round_number) FROM rounds").fetchone()
        except sqlite3.Error:
            return -1
        return -1 if row is None or row[0] is None else int(row[0])

    def wait_for_round(self, round_number: int, *, timeout_s: float) -> int:
        """Block until ``round_number`` is durable; fail if the coordinator exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = self.durable_round()
            if current >= round_number:
                return current
            if self.coordinator is not None and self.coordinator.poll() is not None:
                if self.durable_round() >= round_number:
                    return self.durable_round()
                raise FederationError(
                    f"The coordinator exited with status {self.coordinator.returncode} before "
                    f"round {round_number}; see {self.log('coordinator')}:\n"
                    + self.tail("coordinator")
                )
            time.sleep(0.05)
        raise FederationError(
            f"Round {round_number} was not durable within {timeout_s:g} s; see "
            f"{self.log('coordinator')}:\n" + self.tail("coordinator")
        )

    def round_metrics(self, round_number: int) -> dict[str, float]:
        """The metrics the coordinator recorded for a durable round ({} if not there)."""
        import json

        database = self.run.state / "state.db"
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
                row = db.execute(
                    "SELECT metrics_json FROM rounds WHERE round_number = ?", (round_number,)
                ).fetchone()
        except sqlite3.Error:
            return {}
        return {} if row is None else dict(json.loads(row[0]))

    def wait_for_coordinator(self, *, timeout_s: float) -> int:
        """Wait for the coordinator process to exit; return its status."""
        if self.coordinator is None:
            raise ConfigError("The coordinator was never started.")
        try:
            return self.coordinator.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise FederationError(
                f"The coordinator did not finish within {timeout_s:g} s:\n"
                + self.tail("coordinator")
            ) from exc

    def tail(self, name: str, *, lines: int = 25) -> str:
        """The last lines of a process's log."""
        try:
            text = self.log(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
