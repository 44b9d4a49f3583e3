"""Benchmark: what the audit log costs, against pymerkle (an RFC 9162 library) in the same run.

Run::

    .venv/bin/python bench/audit.py            # 1M-entry verification included (~2 min)
    .venv/bin/python bench/audit.py --quick    # 100k entries

Reported:

- **append** - adding one leaf and knowing the new tree head, in memory: our
  ``MerkleFrontier`` against pymerkle's ``InmemoryTree.append_entry`` + ``get_root``, per entry
  (the issue's target: at most 20 µs). Then durable appends: ``AuditLog.append`` (one SQLite
  transaction in WAL mode with ``synchronous = FULL``, so on disk before the message it records
  is sent) against pymerkle's ``SqliteTree.append_entry``.
- **verify** - ``verify_log`` over a log of N entries (re-hash every entry, rebuild the tree,
  check the signed checkpoints), against pymerkle rebuilding the head of the same N entries from
  its SQLite file (target: 1M entries in at most 10 s).
- **proofs** - the size of an inclusion proof file and the time to check it offline, at N.
- **round** - a federated round of 5 nodes (breast cancer, an MLP of 32 hidden units, FedAvg),
  nodes in this process over the in-memory transport, each with its audit log on disk (a task
  entry, an egress entry and a signed checkpoint per answer, fsynced) against the same nodes
  without; median of 10 rounds each.

Every figure is a ratio against pymerkle measured in the same run, with the absolute numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from _harness import command_line, console, ratio, result_name, wait_until_quiet, write_result
from sovereign_ai.governance.audit_log import AuditLog, check_proof, prove, verify_log
from sovereign_ai.governance.merkle import MerkleFrontier, leaf_hash
from sovereign_ai.pki.signing import ephemeral_federation

SIGNER = ephemeral_federation("bench", ["north"]).signers["north"]


def entry_bytes(i: int) -> bytes:
    """About what an egress entry holds: stage, recipient, digest, size, job, round."""
    body = {"stage": "train", "to": "coordinator", "sha256": f"{i:064x}", "bytes": 4_000_000,
            "job": "job-abc123", "round": i // 5}  # fmt: skip
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def best_per_entry(run: Callable[[int], float], count: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``run(count)`` (seconds), per entry, in µs."""
    return min(run(count) for _ in range(repeats)) / count * 1e6


def ours_in_memory(count: int) -> float:
    frontier = MerkleFrontier()
    data = [entry_bytes(i) for i in range(count)]
    start = time.perf_counter()
    for item in data:
        frontier.append(leaf_hash(item))
        frontier.root()
    return time.perf_counter() - start


def pymerkle_in_memory(count: int) -> float:
    from pymerkle import InmemoryTree

    tree = InmemoryTree(algorithm="sha256")
    data = [entry_bytes(i) for i in range(count)]
    start = time.perf_counter()
    for item in data:
        tree.append_entry(item)
        tree.get_root()
    return time.perf_counter() - start


def ours_durable(count: int) -> float:
    with (
        tempfile.TemporaryDirectory() as folder,
        AuditLog(Path(folder) / "audit.sqlite", party="north", signer=SIGNER) as log,
    ):
        start = time.perf_counter()
        for i in range(count):
            log.append("egress", {"sha256": f"{i:064x}", "bytes": 4_000_000}, job_id="job")
        return time.perf_counter() - start


def pymerkle_durable(count: int) -> float:
    from pymerkle import SqliteTree

    with tempfile.TemporaryDirectory() as folder:
        tree = SqliteTree(str(Path(folder) / "merkle.db"), algorithm="sha256")
        start = time.perf_counter()
        for i in range(count):
            tree.append_entry(entry_bytes(i))
        elapsed = time.perf_counter() - start
        tree.con.close()
        return elapsed


def build_log(path: Path, count: int) -> None:
    """A log of ``count`` entries, appended in batches of 10,000 (one transaction each, so the
    build does not take an fsync per entry), with a checkpoint after each batch."""
    with AuditLog(path, party="north", signer=SIGNER) as log:
        for start in range(0, count, 10_000):
            with log.batch():
                for i in range(start, min(start + 10_000, count)):
                    log.append("egress", {"sha256": f"{i:064x}", "bytes": 4_000_000}, job_id="job")
            log.checkpoint()


def pymerkle_rebuild(count: int, folder: Path) -> float:
    """pymerkle's verification counterpart: recompute the head of ``count`` stored entries."""
    from pymerkle import SqliteTree

    path = folder / "merkle.db"
    tree = SqliteTree(str(path), algorithm="sha256")
    tree.append_entries([entry_bytes(i) for i in range(count)])
    tree.con.close()
    tree = SqliteTree(str(path), algorithm="sha256")
    start = time.perf_counter()
    tree.cache_clear()
    tree.get_root(count)
    elapsed = time.perf_counter() - start
    tree.con.close()
    return elapsed


def round_times(*, audited: bool, folder: Path, rounds: int = 10) -> list[float]:
    """Wall time of each round of a 5-node job, the nodes audited or not."""
    from sovereign_ai.data import load_builtin, partition
    from sovereign_ai.federation import InMemoryTransport, build_coordinator, parse_job_spec
    from sovereign_ai.federation.audited_node import enable_audit
    from sovereign_ai.federation.deployment import node_from_dataset

    spec = parse_job_spec({
        "job": {"name": "audit-overhead", "rounds": rounds, "seed": 3},
        "model": {"name": "mlp", "hidden": [32]},
        "strategy": {"name": "fedavg", "min_train_nodes": 5},
        "coordinator": {"standardize_features": False, "evaluate_every": 1},
    })  # fmt: skip
    dataset = load_builtin("breast_cancer")
    signers = ephemeral_federation("bench", [f"site-{i}" for i in range(5)]).signers
    nodes, logs = [], []
    for i, rows in enumerate(partition(dataset, scheme="iid", num_nodes=5, seed=0)):
        node = node_from_dataset(f"site-{i}", dataset.subset(rows))
        if audited:
            log = AuditLog(
                folder / f"site-{i}.sqlite", party=node.node_id, signer=signers[node.node_id]
            )
            enable_audit(node, log)
            logs.append(log)
        nodes.append(node)
    times: list[float] = []

    class Timer:
        def on_round_end(self, report: Any) -> None:
            times.append(time.perf_counter())

    with InMemoryTransport(nodes, max_workers=1) as transport:
        coordinator = build_coordinator(
            spec, transport=transport, num_features=dataset.num_features,
            num_classes=dataset.num_classes, observer=Timer(),  # type: ignore[arg-type]
        )  # fmt: skip
        times.append(time.perf_counter())
        coordinator.run()
    for log in logs:
        log.close()
    return [b - a for a, b in itertools.pairwise(times)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries instead of 1M")
    arguments = parser.parse_args(argv)
    out = console()
    size = 100_000 if arguments.quick else 1_000_000
    results: dict[str, Any] = {"command": command_line("audit.py", argv), "entries": size}
    results["machine_before"] = wait_until_quiet()

    with out.status("Appends in memory and on disk..."):
        memory = {"ours_us": best_per_entry(ours_in_memory, 20_000, 5),
                  "pymerkle_us": best_per_entry(pymerkle_in_memory, 20_000, 5)}  # fmt: skip
        durable = {"ours_us": best_per_entry(ours_durable, 300, 3),
                   "pymerkle_us": best_per_entry(pymerkle_durable, 300, 3)}  # fmt: skip
    results["append_in_memory"] = memory
    results["append_durable"] = durable

    with tempfile.TemporaryDirectory() as folder, out.status(f"A log of {size:,} entries..."):
        path = Path(folder) / "audit.sqlite"
        build_log(path, size)
        start = time.perf_counter()
        report = verify_log(path)
        verify_s = time.perf_counter() - start
        assert report.ok and report.entries == size, report.problem
        rebuild_s = pymerkle_rebuild(size, Path(folder))
        start = time.perf_counter()
        document = prove(path, size // 3)
        prove_s = time.perf_counter() - start
        proof_bytes = len(json.dumps(document).encode())
        checks = []
        for _ in range(20):
            start = time.perf_counter()
            check_proof(document)
            checks.append(time.perf_counter() - start)
    results["verify"] = {"ours_s": verify_s, "pymerkle_rebuild_s": rebuild_s}
    results["proof"] = {
        "bytes": proof_bytes, "path_hashes": len(document["inclusion"]), "prove_s": prove_s,
        "check_ms": statistics.median(checks) * 1e3,
    }  # fmt: skip

    with tempfile.TemporaryDirectory() as folder, out.status("Rounds with and without..."):
        plain = statistics.median(round_times(audited=False, folder=Path(folder)))
        audited = statistics.median(round_times(audited=True, folder=Path(folder)))
    results["round"] = {"plain_s": plain, "audited_s": audited, "ratio": ratio(audited, plain)}

    table = Table(title=f"Audit log against pymerkle 7.0 (same run), {size:,} entries")
    for column in ("what", "ours", "pymerkle", "ours / pymerkle", "target"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row("append + head, in memory", f"{memory['ours_us']:.1f} µs",
                  f"{memory['pymerkle_us']:.1f} µs",
                  f"{ratio(memory['ours_us'], memory['pymerkle_us']):.2f}x", "≤ 20 µs")  # fmt: skip
    table.add_row("append, durable (SQLite)", f"{durable['ours_us']:.0f} µs",
                  f"{durable['pymerkle_us']:.0f} µs",
                  f"{ratio(durable['ours_us'], durable['pymerkle_us']):.2f}x", "")  # fmt: skip
    table.add_row(f"verify {size:,} entries", f"{verify_s:.1f} s", f"{rebuild_s:.1f} s (head only)",
                  f"{ratio(verify_s, rebuild_s):.2f}x", "≤ 10 s at 1M")  # fmt: skip
    table.add_row("inclusion proof file", f"{proof_bytes:,} B", "", "", "")
    table.add_row("check a proof offline", f"{results['proof']['check_ms']:.2f} ms", "", "", "")
    table.add_row(
        "a 5-node round, audited / not", f"{audited * 1e3:.0f} ms",
        f"{plain * 1e3:.0f} ms (no log)", f"{ratio(audited, plain):.2f}x", "",
    )  # fmt: skip
    out.print(table)
    path = write_result(result_name("audit", quick=arguments.quick), results)
    out.print(f"Written to {path}")


if __name__ == "__main__":
    main()
