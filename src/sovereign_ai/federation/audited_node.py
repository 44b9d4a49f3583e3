"""A node's audit log in its round: every task it takes and every byte it sends, recorded.

- :func:`enable_audit` records every task that passed the node's checks, before its handler
  runs (``task``: stage, job, round, the SHA-256 and size of the parameters received, the names
  of its settings);
- :func:`egress_recorder` is the recorder of the node's egress guard (the gRPC client's only way
  to the network): one ``egress`` entry per call, *before* it is sent — each connection (the
  certificate presented), each long-poll, and each answer with its header, metrics, payload
  digest, or refusal text, and the SHA-256 and size of the exact bytes handed to gRPC. After an
  answer's entry a checkpoint of the log is signed with the node's certificate key, in the same
  transaction, so every answer that left is covered by a signature;
- :func:`policy_recorder` records the node policy's decisions (``job_accepted``,
  ``job_refused``, ``task_refused``).

If the log cannot be written, nothing is sent (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sovereign_ai.core import Task
from sovereign_ai.federation.digests import payload_digest
from sovereign_ai.federation.governed_node import PolicyRecorder
from sovereign_ai.federation.node import Node
from sovereign_ai.governance import AuditLog

if TYPE_CHECKING:  # grpc is imported only where the node dials
    from sovereign_ai.federation.transports.grpc import Egress, EgressRecorder

__all__ = ["egress_recorder", "enable_audit", "policy_recorder"]


def enable_audit(node: Node, log: AuditLog) -> None:
    """Record in ``log`` every task ``node`` takes, before its handler runs.

    What the node sends is recorded by its egress guard (:func:`egress_recorder`).

    Parameters
    ----------
    node
        The node; gains a task check.
    log
        The node's own audit log (its kit's ``audit-log.sqlite``).
    """

    def record_task(task: Task) -> None:
        digest, size = payload_digest(task.parameters)
        log.append(
            "task",
            {"stage": task.stage.value, "sha256": digest, "bytes": size,
             "settings": sorted(task.config)},
            job_id=task.job_id, round_number=task.round_number,
        )  # fmt: skip

    node.add_task_check(record_task)


def egress_recorder(log: AuditLog) -> EgressRecorder:
    """The recorder for a node's egress guard (``GrpcNodeClient(record_egress=...)``).

    Each call becomes one ``egress`` entry: ``rpc``, ``to`` (the address), ``stage`` (the
    answer's stage; ``connect`` or ``poll`` for the others), ``sha256`` and ``bytes`` of what is
    sent (:mod:`~sovereign_ai.federation.transports.grpc._wire_digest`), ``messages``, and what
    the bytes say (``details``). An answer's entry is followed by a signed checkpoint.
    """

    def record(egress: Egress) -> None:
        stage = egress.stage or _OTHER_STAGES.get(egress.rpc, egress.rpc)
        body = {
            "rpc": egress.rpc,
            "to": egress.address,
            "stage": stage,
            "sha256": egress.wire.sha256,
            "bytes": egress.wire.wire_bytes,
            "messages": egress.wire.messages,
            **egress.details,
        }
        if egress.rpc != "PushResult":
            log.append("egress", body)
            return
        with log.batch():  # the entry and the signature over it, on disk together
            log.append("egress", body, job_id=egress.job_id, round_number=egress.round_number)
            log.checkpoint()

    return record


_OTHER_STAGES = {"connect": "connect", "PullTask": "poll"}


def policy_recorder(log: AuditLog) -> PolicyRecorder:
    """A ``record`` callback for :func:`~sovereign_ai.federation.governed_node.enable_policy`
    that appends each policy decision to ``log``."""

    def record(event: str, fields: dict[str, object]) -> None:
        job = fields.get("job_id")
        round_number = fields.get("round")
        log.append(
            f"policy.{event}",
            {k: v for k, v in fields.items() if k not in ("job_id", "round")},
            job_id=job if isinstance(job, str) else None,
            round_number=round_number if isinstance(round_number, int) else None,
        )

    return record
