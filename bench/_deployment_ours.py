"""Our side of ``bench/flower_deployment.py``: coordinator and nodes as processes, gRPC + mTLS.

Started by :class:`~sovereign_ai.federation.local_processes.LocalFederation`, as ``make demo``
does: a fresh federation CA and certificates (not timed), then ``sovereign coordinator start`` and
one ``sovereign node start`` per node, each its own process, all on 127.0.0.1.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from _deployment_job import PreparedJob, timeline
from _harness import wait_until_quiet
from _process_tree import ChildrenMonitor, ProcessTree
from sovereign_ai.federation.local_processes import LocalFederation

__all__ = ["run_ours"]


def run_ours(job: PreparedJob, folder: Path) -> dict[str, Any]:
    """One run of ours: coordinator and nodes as processes over gRPC + mTLS; its figures."""
    federation = LocalFederation(folder, job.node_names)
    setup_start = time.perf_counter()
    federation.provision(federation="bench-deployment")
    setup_s = time.perf_counter() - setup_start
    classes = ",".join(job.class_names)
    quiet = wait_until_quiet()
    monitor = ChildrenMonitor().start()
    tree = ProcessTree()
    try:
        with federation:
            t0 = time.time()
            federation.start_coordinator(
                job.ours_job,
                extra=["--test-data", str(job.held_out), "--label", "y", "--classes", classes],
            )
            for name in job.node_names:
                federation.start_node(
                    name, job.node_file(name), label="y", extra=["--classes", classes]
                )
            federation.wait_for_round(job.rounds, timeout_s=120 + 60 * job.rounds)
            status = federation.wait_for_coordinator(timeout_s=120)
            exited = time.time()
            if status != 0:
                raise RuntimeError(
                    f"Our coordinator stopped with status {status}:\n"
                    + federation.tail("coordinator")
                )
    finally:
        tree.stop()  # any process left; all reaped before the monitor reads the CPU accounts
        monitor.stop()
    database = federation.run.state / "state.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        ends = [
            float(row[0])
            for row in db.execute(
                "SELECT completed_at FROM rounds WHERE round_number >= 1 ORDER BY round_number"
            )
        ]
    metrics = [federation.round_metrics(r) for r in range(1, job.rounds + 1)]
    return {
        "framework": "ours",
        **timeline(t0, ends, ends[-1]),
        "all_done_s": exited - t0,  # the coordinator wrote its report and exited
        "central_accuracy": [m["central_accuracy"] for m in metrics],
        "final_accuracy": metrics[-1]["central_accuracy"],
        "federated_accuracy": metrics[-1].get("federated_accuracy"),
        "setup_s": setup_s,
        **monitor.to_json(),
        **quiet,
    }
