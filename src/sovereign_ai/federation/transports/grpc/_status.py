"""What a running coordinator reports about itself, and how an operator asks for it.

``sovereign coordinator status`` calls :func:`fetch_status`. Only parties of the federation may ask:
any admitted node, or the holder of the coordinator's own certificate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from sovereign_ai.errors import ConfigError, TransportError
from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._dial import Kit, open_channel, verify_coordinator
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._service import (
    NODE_ID_METADATA,
    FederationStub,
    translate_rpc_error,
)

__all__ = ["ConnectedNode", "CoordinatorStatus", "fetch_status"]


@dataclass(frozen=True)
class ConnectedNode:
    """A node the coordinator currently counts as connected.

    Parameters
    ----------
    node_id
        The node's name.
    seconds_since_seen
        Time since its last call.
    is_busy
        Whether it holds a task it has not answered yet.
    """

    node_id: str
    seconds_since_seen: float
    is_busy: bool


@dataclass(frozen=True)
class CoordinatorStatus:
    """A snapshot of a running coordinator.

    Parameters
    ----------
    federation, coordinator
        The federation's and the coordinator's names.
    job_id
        The job of the latest stage ("" before the first).
    round_number, total_rounds
        The current round and the job's total (0 when unknown).
    stage
        The latest stage run ("" before the first).
    nodes
        Connected nodes, sorted by id.
    metrics
        The metrics of the last completed round.
    uptime_s
        Seconds since the transport started serving.
    state
        ``waiting`` (for nodes), ``running``, ``finished`` or ``failed``.
    reason
        Why the job failed, or what it is waiting for.
    final_model
        Where the final model was written, once the job finished.
    failures
        Nodes of the latest round that failed or whose answer was refused, with the reason.
    refused
        Enrolled nodes the coordinator no longer admits (revoked), with the reason.
    """

    federation: str
    coordinator: str
    job_id: str = ""
    round_number: int = 0
    total_rounds: int = 0
    stage: str = ""
    nodes: tuple[ConnectedNode, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    uptime_s: float = 0.0
    state: str = "waiting"
    reason: str = ""
    final_model: str = ""
    failures: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def to_message(self) -> pb.StatusReply:
        """The wire form."""
        reply = pb.StatusReply(
            federation=self.federation,
            coordinator=self.coordinator,
            job_id=self.job_id,
            round_number=self.round_number,
            total_rounds=self.total_rounds,
            stage=self.stage,
            uptime_s=self.uptime_s,
            state=self.state,
            reason=self.reason,
            final_model=self.final_model,
        )
        for node_id, why in self.failures.items():
            reply.failures[node_id] = why
        for node_id, why in self.refused.items():
            reply.refused[node_id] = why
        for node in self.nodes:
            reply.nodes.add(
                node_id=node.node_id,
                seconds_since_seen=node.seconds_since_seen,
                is_busy=node.is_busy,
            )
        for name, value in self.metrics.items():
            reply.metrics[name] = float(value)
        return reply

    @classmethod
    def from_message(cls, reply: pb.StatusReply) -> CoordinatorStatus:
        """Parse the wire form (non-finite metrics are dropped)."""
        return cls(
            federation=reply.federation,
            coordinator=reply.coordinator,
            job_id=reply.job_id,
            round_number=reply.round_number,
            total_rounds=reply.total_rounds,
            stage=reply.stage,
            nodes=tuple(
                ConnectedNode(n.node_id, n.seconds_since_seen, n.is_busy) for n in reply.nodes
            ),
            metrics={
                name: reply.metrics[name]
                for name in sorted(reply.metrics)
                if math.isfinite(reply.metrics[name])
            },
            uptime_s=reply.uptime_s,
            state=reply.state,
            reason=reply.reason,
            final_model=reply.final_model,
            failures={node: reply.failures[node] for node in sorted(reply.failures)},
            refused={node: reply.refused[node] for node in sorted(reply.refused)},
        )


def fetch_status(
    kit: Kit,
    *,
    address: str | None = None,
    timeout_s: float = 10.0,
    allow_insecure: bool = False,
) -> CoordinatorStatus:
    """Ask a running coordinator what it is doing.

    Parameters
    ----------
    kit
        A node's kit, or the coordinator's own (its certificate must then allow ``clientAuth``).
    address
        ``host:port`` to dial; defaults to the kit's coordinator address.
    timeout_s
        Deadline for the handshake and the call.
    allow_insecure
        Plaintext, for tests against a coordinator started with ``allow_insecure=True``.

    Raises
    ------
    AuthenticationError
        If the server is not this federation's coordinator, or it refuses the caller.
    TransportError
        If the coordinator cannot be reached in time.
    """
    if timeout_s <= 0:
        raise ConfigError(
            f"The 'timeout_s' parameter of fetch_status must be > 0; got {timeout_s}."
        )
    target = address or kit.coordinator_address
    if not allow_insecure:
        verify_coordinator(kit, address=target, timeout_s=timeout_s)
    channel = open_channel(kit, address=target, limits=WireLimits(), allow_insecure=allow_insecure)
    try:
        metadata = ((NODE_ID_METADATA, kit.name),) if allow_insecure else ()
        reply = FederationStub(channel).status(
            pb.StatusRequest(), timeout=timeout_s, metadata=metadata
        )
    except grpc.RpcError as exc:
        raise translate_rpc_error(exc, action="Status", address=target) from exc
    finally:
        channel.close()
    if not isinstance(reply, pb.StatusReply):
        raise TransportError(f"The coordinator at {target} sent no status.")
    return CoordinatorStatus.from_message(reply)
