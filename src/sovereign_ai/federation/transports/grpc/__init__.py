"""The deployment transport: gRPC with mutual TLS, nodes dialling out to the coordinator.

Data owners run a node inside their own network and never open an inbound port: the coordinator
hosts the gRPC server (:class:`GrpcCoordinatorTransport`, a :class:`~sovereign_ai.core.Transport`)
and every node is a client (:class:`GrpcNodeClient`) that long-polls for its next task and pushes
the result back. The same :class:`~sovereign_ai.federation.Coordinator` and
:class:`~sovereign_ai.federation.Node` run here as in simulation; this package only carries
messages.

Wire protocol
    ``sovereign.federation.v1.Federation`` in ``transports/_proto/federation.proto``: ``PullTask``
    (long-poll, server-streamed), ``PushResult`` (client-streamed) and ``Status``. A message
    carries any stage: the stage is a string naming :class:`~sovereign_ai.core.Stage`, settings
    are a map of typed scalars, tensors a safetensors payload in chunks of at most 1 MiB after a
    header declaring its size. Once the job ends, a long-poll answers ``JobEnded``, and nodes
    stop. Each task has a random 128-bit id; its result must
    echo it and is accepted once, only from the node it was issued to, and only if bound to the
    task's job, round, stage and node.

Generated code
    ``federation_pb2.py`` (and its typed ``.pyi``) are generated with ``grpc_tools.protoc`` and
    committed in ``transports/_proto/``, so installing needs no build step and ``grpcio-tools``
    stays a development dependency (``make proto`` regenerates them). The service itself is bound
    by hand with gRPC's generic handlers rather than the generated ``_pb2_grpc`` module: it stays
    typed for ``mypy --strict`` and parses hostile requests into clear errors.

Identity
    The coordinator admits each call from the caller's client certificate with pki's
    :func:`~sovereign_ai.pki.verify_node_certificate` against the current roster and CRL, so
    revocation takes effect at the node's next call. The node checks, in a pre-flight TLS
    handshake before every new channel, that the server's certificate is this federation's
    *coordinator* certificate (gRPC's Python API does not expose it on the channel).

Egress guard
    The node's client sends only through its :class:`Egress` guard: each connection, long-poll
    and answer is described to the node's recorder (its audit log) with the SHA-256 of the exact
    bytes, and sent only once recorded; calls started any other way are refused. The coordinator
    can report every call it receives (:class:`Received`) with the same digest, so the two
    parties' records match message for message.

Plaintext (``allow_insecure=True`` on both ends) exists for tests only, logs a warning, and takes
the node's name from call metadata: anyone could then claim to be any node.
"""

from sovereign_ai.federation.transports.grpc._coordinator import GrpcCoordinatorTransport
from sovereign_ai.federation.transports.grpc._egress_guard import Egress, EgressRecorder
from sovereign_ai.federation.transports.grpc._limits import WireLimits
from sovereign_ai.federation.transports.grpc._node_client import (
    AnswerReport,
    GrpcNodeClient,
    JobEnd,
)
from sovereign_ai.federation.transports.grpc._status import (
    ConnectedNode,
    CoordinatorStatus,
    fetch_status,
)
from sovereign_ai.federation.transports.grpc._wire_digest import (
    Received,
    ReceivedCallback,
    WireDigest,
)

__all__ = [
    "AnswerReport",
    "ConnectedNode",
    "CoordinatorStatus",
    "Egress",
    "EgressRecorder",
    "GrpcCoordinatorTransport",
    "GrpcNodeClient",
    "JobEnd",
    "Received",
    "ReceivedCallback",
    "WireDigest",
    "WireLimits",
    "fetch_status",
]
