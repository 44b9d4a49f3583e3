"""The coordinator's end of the deployment transport: a gRPC server that nodes dial out to."""

from __future__ import annotations

import concurrent.futures as cf
import errno
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import grpc

from sovereign_ai.core import Stage, StageOutcome, Task
from sovereign_ai.errors import ConfigError, TransportError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._book import TaskBook
from sovereign_ai.federation.transports.grpc._codec import Payload
from sovereign_ai.federation.transports.grpc._limits import WireLimits, server_options
from sovereign_ai.federation.transports.grpc._service import service_handler
from sovereign_ai.federation.transports.grpc._servicer import CoordinatorServicer
from sovereign_ai.federation.transports.grpc._status import ConnectedNode, CoordinatorStatus
from sovereign_ai.federation.transports.grpc._trust import PeerAuthenticator
from sovereign_ai.federation.transports.grpc._wire_digest import ReceivedCallback
from sovereign_ai.pki import CoordinatorKit, NodeStatus

if TYPE_CHECKING:
    from sovereign_ai.federation.rounds import RoundReport
    from sovereign_ai.federation.workflow import StageResults

__all__ = ["GrpcCoordinatorTransport"]

logger = logging.getLogger(__name__)


def _check_port_free(bind_address: str) -> None:
    """Refuse, in words, an address another process listens on (gRPC would log C-core lines)."""
    host, _, port_text = bind_address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104  # probes the address gRPC will bind
    if not port_text.isdigit() or int(port_text) == 0:
        return  # port 0 picks a free port; gRPC reports anything malformed itself
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gRPC does: a port whose old connections linger in TIME_WAIT is free to reuse.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port_text)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TransportError(
                f"Port {port_text} on {host} is already in use: is another coordinator (or "
                "another program) running there? Stop it, or listen elsewhere with --listen "
                "HOST:PORT (nodes dial the address in their kits, so keep them in step)."
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise TransportError(
                f"Cannot listen on {bind_address}: {host} is not an address of this machine."
            ) from exc


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(
            f"The {name!r} parameter of GrpcCoordinatorTransport must be > 0; got {value!r}."
        )


class GrpcCoordinatorTransport:
    """Serves tasks to nodes over gRPC with mutual TLS; a :class:`~sovereign_ai.core.Transport`.

    The server starts listening in the constructor; nodes connect with
    :class:`~sovereign_ai.federation.transports.grpc.GrpcNodeClient`. Pass the transport to the
    :class:`~sovereign_ai.federation.Coordinator` (and, for ``Status`` replies with round
    metrics, also as its ``observer``).

    Parameters
    ----------
    kit
        The coordinator's startup kit: its certificate and key, the CA, roster and CRL.
    bind_address
        ``host:port`` to listen on; port 0 picks a free port (see :attr:`port`).
    allow_insecure
        Serve plaintext and take each node's name from the ``sovereign-node-id`` metadata.
        **For tests only**: anyone on the network can then impersonate any node.
    limits
        Payload, chunk and header limits (the nodes must use the same chunk ceiling).
    poll_wait_s
        Longest a node's long-poll is held open when no task is waiting for it.
    liveness_window_s
        A node that has not called for this long no longer counts as connected; defaults to
        twice ``poll_wait_s`` plus 5 s.
    max_workers
        Server threads; each connected node holds one while it long-polls.
    max_streams_per_connection
        Concurrent calls one connection may carry (HTTP/2 ``MAX_CONCURRENT_STREAMS``).
    watch_kit_folder
        Re-read the roster and CRL when a file of ``kit.folder`` changes, so ``sovereign
        provision revoke`` locks a node out at its next call without a restart.
    on_received
        Called, from a server thread, with each node call received (:class:`Received`: the
        SHA-256 and size of its request bytes, what it answers, accepted or why refused), so
        the coordinator's audit log can be matched against each node's record of what it sent.
    keep_received_bytes
        Also pass the received messages' bytes to ``on_received`` (inspection and tests; holds
        one more copy of each payload until the callback returns).

    Raises
    ------
    TransportError
        If the address cannot be bound.

    Notes
    -----
    One server thread per waiting node keeps the design simple and is ample for federations of
    tens of sites; raise ``max_workers`` above the number of nodes plus a margin for larger ones.
    """

    def __init__(
        self,
        *,
        kit: CoordinatorKit,
        bind_address: str = "127.0.0.1:0",
        allow_insecure: bool = False,
        limits: WireLimits | None = None,
        poll_wait_s: float = 10.0,
        liveness_window_s: float | None = None,
        max_workers: int = 64,
        max_streams_per_connection: int = 100,
        watch_kit_folder: bool = True,
        on_received: ReceivedCallback | None = None,
        keep_received_bytes: bool = False,
    ) -> None:
        _positive("poll_wait_s", poll_wait_s)
        window_s = liveness_window_s if liveness_window_s is not None else 2 * poll_wait_s + 5
        _positive("liveness_window_s", window_s)
        _positive("max_workers", max_workers)
        _positive("max_streams_per_connection", max_streams_per_connection)
        self._kit_name, self._federation = kit.name, kit.federation
        self._limits = limits or WireLimits()
        self._book = TaskBook(liveness_window_s=window_s)
        self._auth = PeerAuthenticator(
            kit, allow_insecure=allow_insecure, watch_kit_folder=watch_kit_folder
        )
        self._started = time.monotonic()
        self._status_lock = threading.Lock()
        self._status = CoordinatorStatus(federation=kit.federation, coordinator=kit.name)
        self._closed = threading.Event()
        servicer = CoordinatorServicer(
            book=self._book,
            authenticator=self._auth,
            limits=self._limits,
            poll_wait_s=poll_wait_s,
            status=self.status,
            on_received=on_received,
            keep_received_bytes=keep_received_bytes,
        )
        self._server = grpc.server(
            cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sovereign-grpc"),
            handlers=(service_handler(servicer),),
            options=server_options(
                self._limits, max_streams_per_connection=max_streams_per_connection
            ),
            maximum_concurrent_rpcs=max_workers,
        )
        self._port = self._bind(kit, bind_address, allow_insecure=allow_insecure)
        self._server.start()
        logger.info(
            "Coordinator %r of federation %r serving on %s (port %d)",
            kit.name,
            kit.federation,
            bind_address,
            self._port,
        )

    def _bind(self, kit: CoordinatorKit, bind_address: str, *, allow_insecure: bool) -> int:
        _check_port_free(bind_address)
        try:
            if allow_insecure:
                logger.warning(
                    "INSECURE: the coordinator serves PLAINTEXT on %s and believes whatever node "
                    "name a caller claims. Use allow_insecure=True only in tests.",
                    bind_address,
                )
                port = self._server.add_insecure_port(bind_address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(kit.private_key_pem, kit.certificate_pem)],
                    root_certificates=kit.ca_pem,
                    require_client_auth=True,
                )
                port = self._server.add_secure_port(bind_address, credentials)
        except RuntimeError as exc:
            raise TransportError(f"Cannot listen on {bind_address}: {exc}") from exc
        if not port:
            raise TransportError(f"Cannot listen on {bind_address}: the port is taken or invalid.")
        return int(port)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    def node_certificates(self) -> dict[str, bytes]:
        """Each node's certificate (PEM) as pki verified it at its last admitted call, by node
        name (what a passport records of the nodes); empty when serving plaintext."""
        return self._auth.node_certificates()

    # Transport protocol -------------------------------------------------------------------------
    def available_nodes(self) -> list[str]:
        """Connected nodes still active on the roster, sorted.

        A node is connected if it called within the liveness window, is waiting in a long-poll, or
        holds a task it has not answered; a node revoked meanwhile is left out at once.
        """
        active = self._auth.active_nodes()
        return [node for node in self._book.live_nodes() if node in active]

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> StageOutcome:
        """Queue each task for its node and collect the results until all came or ``timeout_s``.

        Raises
        ------
        TransportError
            If the transport was closed.
        SerializationError
            If a task's settings cannot be sent.
        """
        _positive("timeout_s", timeout_s)
        if self._closed.is_set():
            raise TransportError("The gRPC coordinator transport is closed.")
        if tasks:
            first = tasks[0]
            self._update_status(
                job_id=first.job_id,
                round_number=first.round_number,
                stage=first.stage.value,
                state="running",
                reason="",
            )
        run = self._book.open_stage(tasks, encode=Payload.of, timeout_s=timeout_s)
        active = self._auth.active_nodes
        outcome = self._book.wait(run, is_admitted=lambda node_id: node_id in active())
        logger.info(
            "Stage %s: %d result(s), %d failure(s)",
            tasks[0].stage.value if tasks else "-",
            len(outcome.results),
            len(outcome.failures),
        )
        return outcome

    def close(self) -> None:
        """Stop serving: open stages end at once, calls in flight get 1 s to finish."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._book.close()
        self._server.stop(grace=1.0).wait()

    def __enter__(self) -> GrpcCoordinatorTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Operations ---------------------------------------------------------------------------------
    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        """Block until at least ``count`` nodes are connected or ``timeout_s`` passed.

        Returns
        -------
        list of str
            The nodes connected then, sorted: possibly fewer than ``count``; the round loop
            decides whether they are enough.
        """
        _positive("count", count)
        _positive("timeout_s", timeout_s)
        self._book.wait_until(lambda: len(self.available_nodes()) >= count, timeout_s=timeout_s)
        return self.available_nodes()

    def reload_trust(self, kit: CoordinatorKit | None = None) -> None:
        """Admit nodes by ``kit``'s roster and CRL from now on (default: re-read the kit folder).

        Raises
        ------
        ProvisioningError
            If the kit folder cannot be loaded; every node is refused until a reload succeeds.
        """
        self._auth.reload(kit)

    def status(self) -> CoordinatorStatus:
        """A snapshot of this coordinator (what ``Status`` calls return).

        Nodes revoked meanwhile are not listed as connected, even while they still hold a
        connection; they are listed as refused.
        """
        active = self._auth.active_nodes()
        refused = {
            entry.name: f"certificate {entry.status.value}"
            for entry in self._auth.kit.roster.nodes
            if entry.status is not NodeStatus.ACTIVE
        }
        nodes = tuple(
            ConnectedNode(a.node_id, a.seconds_since_seen, a.is_busy)
            for a in self._book.activity()
            if a.node_id in active
        )
        with self._status_lock:
            current = self._status
        return replace(
            current, nodes=nodes, refused=refused, uptime_s=time.monotonic() - self._started
        )

    def _update_status(self, **changes: Any) -> None:
        with self._status_lock:
            self._status = replace(self._status, **changes)

    # The job's end ------------------------------------------------------------------------------
    def end_job(
        self,
        *,
        job_id: str,
        is_finished: bool,
        reason: str = "",
        final_model: str = "",
        rounds_completed: int = 0,
    ) -> None:
        """Record the job's outcome and tell every node that asks for a task from now on.

        Parameters
        ----------
        job_id
            The job that ended.
        is_finished
            ``True`` if every round completed; ``False`` if the job failed.
        reason
            Why it failed.
        final_model
            Where the final model was written.
        rounds_completed
            The last durable round.
        """
        state = "finished" if is_finished else "failed"
        with self._status_lock:
            self._status = replace(
                self._status,
                job_id=job_id or self._status.job_id,
                state=state,
                reason=reason,
                final_model=final_model,
                stage="",
            )
            current = self._status
        announcement = pb.JobEnded(
            job_id=current.job_id,
            state=state,
            reason=reason,
            rounds_completed=rounds_completed,
            total_rounds=current.total_rounds,
        )
        for name, value in current.metrics.items():
            announcement.metrics[name] = float(value)
        self._book.end_job(announcement)

    def mark_stopped(self, reason: str) -> None:
        """Record that the job stopped without ending (killed, misconfigured): nodes wait on."""
        self._update_status(state="stopped", reason=reason)

    def wait_until_nodes_told(self, *, timeout_s: float) -> list[str]:
        """After :meth:`end_job`, wait until every connected node has heard; return who has not.

        Call before :meth:`close`, so that nodes stop instead of reconnecting to a coordinator
        that is gone.
        """
        told = self._book.told_ended
        self._book.wait_until(
            lambda: set(self.available_nodes()) <= told(), timeout_s=max(timeout_s, 1e-3)
        )
        return sorted(set(self.available_nodes()) - told())

    # RoundObserver ------------------------------------------------------------------------------
    def on_round_start(self, round_number: int, total_rounds: int) -> None:
        """Record the round in progress (for ``Status``)."""
        self._update_status(round_number=round_number, total_rounds=total_rounds)

    def on_round_end(self, report: RoundReport) -> None:
        """Record the finished round's metrics and failures (for ``Status``)."""
        self._update_status(
            round_number=report.round_number,
            metrics=dict(report.metrics),
            failures=dict(report.failures),
        )

    def on_waiting(self, connected: Sequence[str], needed: int, waited_s: float) -> None:
        """Record that the job waits for nodes (for ``Status``)."""
        self._update_status(
            state="waiting",
            reason=f"waiting for {needed} node(s) to connect; {len(connected)} connected after "
            f"{waited_s:.0f} s",
        )

    def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
        """Show the nodes that failed or were refused in the latest stage (for ``Status``)."""
        del round_number, stage
        self._update_status(failures=dict(answered.failures))

    def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None:
        """Record why an attempt of the round fell through (for ``Status``)."""
        self._update_status(reason=f"round {round_number} attempt {attempt} failed: {reason}")
