"""What a node's operator reads: one line per task answered, and a summary when the job ends."""

from __future__ import annotations

from rich.markup import escape

from sovereign_ai.federation.transports.grpc import AnswerReport, JobEnd

__all__ = ["describe_answer", "describe_job_end"]

_WHAT_LEFT = {
    "statistics": "feature statistics (row count, sums, sums of squares; no rows)",
    "train": "a model update",
    "evaluate": "evaluation metrics",
    "secagg-advertise-keys": "its signed public keys for secure aggregation",
    "secagg-share-keys": "secret shares, encrypted to its neighbours",
    "secagg-masked-input": "its input, masked (only the cohort's sum is readable)",
    "secagg-unmask": "the shares that remove the masks",
}


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    if num_bytes < 1024**2:
        return f"{num_bytes / 1024:.1f} KiB"
    return f"{num_bytes / 1024**2:.1f} MiB"


def describe_answer(report: AnswerReport) -> str:
    """``round 3 train: 455 rows, sent a model update (12.3 KiB in 4 tensors); train_loss 0.31``."""
    task = report.task
    where = f"round {task.round_number} {task.stage.value}"
    if report.result is None:
        return f"[yellow]{where}: declined[/] — {escape(report.refusal or 'no reason given')}"
    result = report.result
    what = _WHAT_LEFT.get(task.stage.value, f"a {task.stage.value} answer")
    tensors = len(result.parameters)
    sent = f"sent {what}"
    if tensors:
        sent += f" ({_size(report.payload_bytes)} in {tensors} tensor{'s' * (tensors != 1)})"
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in sorted(result.metrics.items()))
    rows = "" if task.stage.value.startswith("secagg-") else f"{result.num_examples} rows, "
    return f"{where}: {rows}{sent}" + (f"; {metrics}" if metrics else "")


def describe_job_end(node_name: str, ended: JobEnd, *, tasks_answered: int) -> str:
    """A short summary once the coordinator announced the job's end."""
    if ended.is_finished:
        head = (
            f"[green]Job {escape(ended.job_id)} finished[/] after {ended.rounds_completed} of "
            f"{ended.total_rounds} rounds."
        )
    else:
        head = (
            f"[red]Job {escape(ended.job_id)} failed[/] after {ended.rounds_completed} of "
            f"{ended.total_rounds} rounds: {escape(ended.reason)}"
        )
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in ended.metrics.items())
    lines = [head, f"Node {node_name!r} answered {tasks_answered} task(s) in this session."]
    if metrics:
        lines.append(f"Last round: {metrics}")
    lines.append(f"Node {node_name!r} stops: the coordinator has no more work for it.")
    return "\n".join(lines)
