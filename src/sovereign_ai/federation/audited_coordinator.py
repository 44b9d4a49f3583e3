"""The coordinator's audit log: what it took in from each node, the models it adopted, and how
each job ended, signed with the coordinator's certificate key.

:class:`CoordinatorAudit` observes the round loop (a
:class:`~sovereign_ai.federation.RoundObserver`, plus its two model events) and records, in the
coordinator's own :class:`~sovereign_ai.governance.AuditLog` (its kit's ``audit-log.sqlite``):

- ``job_started``: the job's name, the digest of its settings (:attr:`JobSpec.digest`, the one
  its id is made of) and the SHA-256 of its whole canonical spec, its rounds, model, strategy,
  secure aggregation on or off, the privacy mode, and whether it resumes;
- ``starting_model``: the SHA-256 and size of the model the job starts from (round 0's, after
  feature scaling, or the model of the round it resumes after);
- ``received``: one per node per stage: the node, the stage, whether its answer was accepted and,
  if it was, the SHA-256 and size of its parameters as safetensors (the digest the node's
  ``egress`` entry records for the same answer), its example count and its metric names; if
  not, why (no answer, declined, refused and the rule it broke);
- ``attempt_failed``: a round's attempt that fell through, and why;
- ``round_completed``: the new global model's SHA-256 and size, the round's metrics, cohort,
  who was accepted, who failed and why, and the attempts it took; written when the model is
  adopted, *before* the round is saved, and signed (a checkpoint) with it;
- ``job_finished`` (the final model file's path, SHA-256 and size, and the rounds completed),
  ``job_failed`` (why, and the rounds completed) or ``job_stopped`` (interrupted; it may be
  resumed), each signed with it;
- ``wire_received``: what the transport took off the wire (the node, the SHA-256 and size of
  the bytes received), through :meth:`CoordinatorAudit.wire_received`, from any thread.

Fail closed: if an entry cannot be written, :class:`~sovereign_ai.errors.AuditError` is raised
and the round loop stops (it does not catch observer errors); the round being recorded is not
saved, so nothing is durable that the log does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sovereign_ai.errors import AuditError, ConfigError
from sovereign_ai.federation.digests import file_digest, payload_digest
from sovereign_ai.governance import AuditLog

if TYPE_CHECKING:
    from sovereign_ai.core import Parameters, Stage
    from sovereign_ai.federation.job import JobSpec
    from sovereign_ai.federation.rounds import RoundReport
    from sovereign_ai.federation.transports.grpc import Received
    from sovereign_ai.federation.workflow import StageResults
    from sovereign_ai.pki import CoordinatorKit

__all__ = ["CoordinatorAudit", "open_coordinator_log"]

_SHA256_HEX = 64


def open_coordinator_log(kit: CoordinatorKit) -> AuditLog:
    """The coordinator's audit log, ``audit-log.sqlite`` in its kit folder (created if missing),
    whose checkpoints the kit's certificate key signs.

    Raises
    ------
    AuditError
        If the file is not an audit log, is another party's, or is damaged.
    """
    from sovereign_ai.governance.audit_log import AUDIT_FILE
    from sovereign_ai.pki.signing import IdentitySigner

    return AuditLog(kit.folder / AUDIT_FILE, party=kit.name, signer=IdentitySigner.from_kit(kit))


@dataclass(frozen=True)
class _Entry:
    kind: str
    body: Mapping[str, Any]
    round_number: int | None = None


class CoordinatorAudit:
    """Records one job of the coordinator in its audit log.

    Pass it as the coordinator's observer (or beside others); call :meth:`job_started` before
    the round loop and :meth:`job_finished`, :meth:`job_failed` or :meth:`job_stopped` after it.

    Parameters
    ----------
    log
        The coordinator's own log (see :func:`open_coordinator_log`); the caller closes it.
    job_id
        The job recorded; every entry is filed under it.

    Notes
    -----
    The round loop's entries are written from its thread; :meth:`wire_received` may be called
    from the transport's threads at the same time (the log serialises writes). A stage's
    ``received`` entries go in one transaction, so another thread's entry falls before or after
    them, never among them.
    """

    def __init__(self, log: AuditLog, *, job_id: str) -> None:
        self.log = log
        self.job_id = job_id

    # Around the round loop -----------------------------------------------------------------------
    def job_started(self, spec: JobSpec, *, resume: bool) -> None:
        """Record the job about to run.

        Raises
        ------
        ConfigError
            If ``spec`` is not the job this audit records.
        AuditError
            If the entry cannot be written.
        """
        if spec.job_id != self.job_id:
            raise ConfigError(
                f"The job spec is of job {spec.job_id!r}, but this audit records {self.job_id!r}."
            )
        body = {
            "name": spec.job.name,
            "spec_digest": spec.digest,
            "spec_sha256": hashlib.sha256(spec.canonical_json().encode()).hexdigest(),
            "rounds": spec.job.rounds,
            "model": spec.model.name,
            "strategy": spec.strategy.name,
            "secure_aggregation": spec.secure_aggregation.enabled,
            "privacy": spec.privacy.mode,
            "resume": resume,
        }
        self._record([_Entry("job_started", body)])

    def job_finished(self, *, model_file: str | Path | None, rounds_completed: int) -> None:
        """Record that the job finished, with the digest of the final model file, and sign.

        Raises
        ------
        AuditError
            If the model file cannot be read or the entry cannot be written.
        """
        body: dict[str, Any] = {"rounds_completed": rounds_completed}
        if model_file is not None:
            path = Path(model_file).resolve()
            try:
                digest, size = file_digest(path)
            except OSError as exc:
                raise AuditError(
                    f"The final model {str(path)!r} cannot be read to record its digest: {exc}."
                ) from exc
            body |= {"model_file": str(path), "sha256": digest, "bytes": size}
        self._record([_Entry("job_finished", body)], sign=True)

    def job_failed(self, *, reason: str, rounds_completed: int) -> None:
        """Record that the job failed (it will not go on), and sign.

        Raises
        ------
        AuditError
            If the entry cannot be written.
        """
        body = {"reason": reason, "rounds_completed": rounds_completed}
        self._record([_Entry("job_failed", body)], sign=True)

    def job_stopped(self, *, reason: str, rounds_completed: int) -> None:
        """Record that the coordinator stopped mid-job (it may be resumed), and sign.

        Raises
        ------
        AuditError
            If the entry cannot be written.
        """
        body = {"reason": reason, "rounds_completed": rounds_completed}
        self._record([_Entry("job_stopped", body)], sign=True)

    # Round events (the coordinator calls these) --------------------------------------------------
    def on_starting_model(self, round_number: int, parameters: Parameters) -> None:
        """Record the model the job starts from (round 0's, or the resumed round's)."""
        digest, size = payload_digest(parameters)
        body = {"sha256": digest, "bytes": size}
        self._record([_Entry("starting_model", body, round_number)])

    def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
        """Record, per node, the answer taken in at this stage or why there is none."""
        per_node: dict[str, dict[str, Any]] = {}
        for result in answered.results:
            digest, size = payload_digest(result.parameters)
            per_node[result.node_id] = {
                "accepted": True,
                "sha256": digest,
                "bytes": size,
                "num_examples": result.num_examples,
                "metrics": sorted(result.metrics),
            }
        for node_id, reason in answered.failures.items():
            per_node.setdefault(node_id, {"accepted": False, "reason": reason})
        entries = [
            _Entry("received", {"from": node_id, "stage": stage.value, **fields}, round_number)
            for node_id, fields in sorted(per_node.items())
        ]
        self._record(entries)

    def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None:
        """Record an attempt of a round that fell through."""
        body = {"attempt": attempt, "reason": reason}
        self._record([_Entry("attempt_failed", body, round_number)])

    def on_round_adopted(self, report: RoundReport, parameters: Parameters) -> None:
        """Record the round's new global model and metrics, and sign, before it is saved."""
        digest, size = payload_digest(parameters)
        body = {
            "sha256": digest,
            "bytes": size,
            "metrics": dict(report.metrics),
            **report.record(),
        }
        self._record([_Entry("round_completed", body, report.round_number)], sign=True)

    # The transport's source ----------------------------------------------------------------------
    def wire_received(
        self,
        node_id: str,
        *,
        sha256: str,
        size: int,
        job_id: str | None = None,
        round_number: int | None = None,
        stage: str | None = None,
        refusal: str = "",
    ) -> None:
        """Record a message the transport received, as it came off the wire; any thread.

        Parameters
        ----------
        node_id
            The sender, as its certificate names it.
        sha256, size
            SHA-256 (hex) and length in bytes of what was received.
        job_id, round_number, stage
            What the message says it answers, if known; ``job_id`` defaults to this job's.
        refusal
            Why the transport refused the message; empty if it took it in.

        Raises
        ------
        ConfigError
            If ``sha256`` is not 64 hex digits or ``size`` is negative.
        AuditError
            If the entry cannot be written: the transport should then refuse the message.
        """
        if len(sha256) != _SHA256_HEX or any(c not in "0123456789abcdef" for c in sha256):
            raise ConfigError(
                "The 'sha256' parameter of wire_received must be 64 lower-case hex digits; "
                f"got {sha256!r}."
            )
        if size < 0:
            raise ConfigError(f"The 'size' parameter of wire_received must be >= 0; got {size}.")
        body: dict[str, Any] = {"from": node_id, "sha256": sha256, "bytes": size}
        if stage is not None:
            body["stage"] = stage
        if refusal:
            body["refused"] = refusal
        self._record([_Entry("wire_received", body, round_number)], job_id=job_id)

    def on_received(self, received: Received) -> None:
        """The transport's hook (``GrpcCoordinatorTransport(on_received=...)``): records each
        answer as it came off the wire, with the digest the node's egress guard recorded.

        Long-polls carry no data and are not recorded. An answer claiming another job is filed
        under this job, with the job it claimed. Called after the transport read the answer: if
        the entry cannot be written, the round's own entries fail next and the job stops.
        """
        if received.rpc != "PushResult":
            return
        claimed = received.job_id if received.job_id not in ("", self.job_id) else None
        self.wire_received(
            received.node_id,
            sha256=received.wire.sha256,
            size=received.wire.wire_bytes,
            round_number=received.round_number if received.stage else None,
            stage=received.stage if claimed is None else f"{received.stage} (job {claimed})",
            refusal=received.refusal,
        )

    # --------------------------------------------------------------------------------------------
    def _record(
        self, entries: Sequence[_Entry], *, sign: bool = False, job_id: str | None = None
    ) -> None:
        """Append ``entries`` (and a checkpoint if ``sign``) in one transaction, or raise."""
        if not entries and not sign:
            return
        try:
            with self.log.batch():
                for entry in entries:
                    self.log.append(
                        entry.kind,
                        entry.body,
                        job_id=job_id or self.job_id,
                        round_number=entry.round_number,
                    )
                if sign:
                    self.log.checkpoint()
        except (AuditError, OSError) as exc:
            kinds = ", ".join(sorted({e.kind for e in entries})) or "a checkpoint"
            raise AuditError(
                f"The coordinator could not record {kinds} of job {self.job_id!r} in its audit "
                f"log {str(self.log.path)!r}: {exc} The job stops rather than go on unrecorded; "
                "once the log can be written again, resume the job."
            ) from exc
