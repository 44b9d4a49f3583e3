"""Run one job in our simulation and print its figures as one JSON line.

Started by ``bench/flower_compare.py`` (and ``bench/backends.py``) as a separate process, so its
peak memory and wall time are measured exactly as Flower's are::

    python bench/_ours_job.py JOB.json

``JOB.json`` holds the job spec document; the partition is rebuilt by
:func:`~sovereign_ai.federation.prepare_simulation` and checked against the digest of the
partition file the Flower side reads, so both sides train on the same rows.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import torch

from sovereign_ai.federation import (
    RoundReport,
    SimulationSetup,
    parse_job_spec,
    prepare_simulation,
    run_simulation,
)


def partition_digest(setup: SimulationSetup) -> str:
    """SHA-256 over every node's training and local test rows, in node order."""
    digest = hashlib.sha256()
    for node in setup.nodes:
        for array in (
            node.data.train_features,
            node.data.train_labels,
            node.data.test_features,
            node.data.test_labels,
        ):
            digest.update(array.tobytes())
    digest.update(setup.test_features.tobytes())
    digest.update(setup.test_labels.tobytes())
    return digest.hexdigest()


class RoundClock:
    """Records when each round became durable (the coordinator's observer hook)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.ends: list[float] = []

    def on_round_start(self, round_number: int, total_rounds: int) -> None:
        """Nothing to do at the start."""

    def on_round_end(self, report: RoundReport) -> None:
        """Seconds since the job started."""
        self.ends.append(time.perf_counter() - self.start)


def main(job_path: str) -> None:
    job = json.loads(open(job_path, encoding="utf-8").read())  # noqa: SIM115
    # One intra-op thread per worker, as the CLI runs simulations (bench/backends.py also tries 2).
    torch.set_num_threads(int(job.get("torch_threads", 1)))
    spec = parse_job_spec(job["spec"], source="benchmark job")
    setup = prepare_simulation(spec)
    digest = partition_digest(setup)
    if job.get("partition_digest") not in (None, digest):
        raise SystemExit("The partition differs from the one the Flower side reads.")
    start = time.perf_counter()
    clock = RoundClock(start)
    history, _ = run_simulation(spec, setup=setup, observer=clock)
    job_s = time.perf_counter() - start
    last = history.rounds[-1].metrics
    print(
        json.dumps(
            {
                "framework": "ours",
                "backend": spec.simulation.backend.value,
                "workers": spec.simulation.workers,
                "torch_threads": torch.get_num_threads(),
                "job_s": job_s,
                "round_end_s": clock.ends,
                "central_accuracy": [r.metrics.get("central_accuracy") for r in history.rounds],
                "central_loss": [r.metrics.get("central_loss") for r in history.rounds],
                "federated_accuracy": last.get("federated_accuracy"),
                "partition_digest": digest,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
