"""A node's audit log in its round: every task it takes and every answer it lets out, recorded.

:func:`enable_audit` records, in the node's own :class:`~sovereign_ai.governance.AuditLog`:

- ``task``: every task that passed the node's checks, before its handler runs (stage, job,
  round, the SHA-256 and size of the parameters received, the names of its settings);
- ``egress``: every answer, in the egress pipeline's last slot (``audit``, after policy,
  privacy and masking), so what is recorded is what leaves: stage, recipient, the SHA-256 and
  size of the parameters payload exactly as the transport streams it (safetensors), the example
  count and the metrics sent. The entry is on disk and a checkpoint of the log signed with the
  node's certificate key *before* the answer is handed to the transport, so every answer that
  left is covered by a signature;
- the node policy's decisions (``job_accepted``, ``job_refused``, ``task_refused``), through
  :func:`policy_recorder`.

If the log cannot be written, the answer does not leave (fail closed).
"""

from __future__ import annotations

from sovereign_ai.core import Result, Task
from sovereign_ai.federation.digests import payload_digest
from sovereign_ai.federation.governed_node import PolicyRecorder
from sovereign_ai.federation.node import Node
from sovereign_ai.governance import AuditLog

__all__ = ["enable_audit", "policy_recorder"]


def enable_audit(node: Node, log: AuditLog, *, recipient: str = "coordinator") -> None:
    """Record ``node``'s tasks and answers in ``log``.

    Parameters
    ----------
    node
        The node; gains a task check and fills its ``audit`` egress slot.
    log
        The node's own audit log (its kit's ``audit-log.sqlite``).
    recipient
        Whom the answers go to, as recorded.

    Raises
    ------
    ConfigError
        If the node's audit slot is already filled.
    """

    def record_task(task: Task) -> None:
        digest, size = payload_digest(task.parameters)
        log.append(
            "task",
            {"stage": task.stage.value, "sha256": digest, "bytes": size,
             "settings": sorted(task.config)},
            job_id=task.job_id, round_number=task.round_number,
        )  # fmt: skip

    def record_egress(task: Task, result: Result) -> Result:
        digest, size = payload_digest(result.parameters)
        body = {
            "stage": task.stage.value,
            "to": recipient,
            "sha256": digest,
            "bytes": size,
            "num_examples": result.num_examples,
            "metrics": dict(result.metrics),
        }
        with log.batch():  # the entry and the signature over it, on disk together
            log.append("egress", body, job_id=task.job_id, round_number=task.round_number)
            log.checkpoint()
        return result

    node.add_task_check(record_task)
    node.egress.install("audit", record_egress)


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
