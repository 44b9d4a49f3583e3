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
- **deployed round** - a federated round of 5 nodes (breast cancer, an MLP of 32 hidden units,
  FedAvg) over gRPC with mutual TLS on loopback (coordinator and node clients in this process),
  every party with its audit log on disk (nodes: a task entry, and through the egress guard an
  entry per long-poll and per answer with a signed checkpoint; the coordinator: each answer off
  the wire, each stage, each adopted model signed), all fsynced, against the same federation
  without; median of 9 rounds each (the first, which waits for connections, is dropped).

Every figure is a ratio against pymerkle measured in the same run, with the absolute numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
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
    """Wall time of each round of a 5-node job over gRPC with mutual TLS, audited or not.

    The coordinator's transport and five node clients run in this process and talk over
    loopback TLS. Audited: every node records its tasks and, through its egress guard, every
    call before it is sent (answers signed), and the coordinator records what it took off the
    wire, each stage and each adopted model (signed per round), all fsynced to SQLite.
    """
    from sovereign_ai.data import load_builtin, partition
    from sovereign_ai.federation import parse_job_spec
    from sovereign_ai.federation.audited_coordinator import CoordinatorAudit
    from sovereign_ai.federation.audited_node import egress_recorder, enable_audit
    from sovereign_ai.federation.deployment import node_from_dataset, run_coordinator
    from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport, GrpcNodeClient
    from sovereign_ai.pki import (
        IdentitySigner,
        load_coordinator_kit,
        load_node_kit,
        parse_federation_spec,
        provision,
    )

    names = [f"site-{i}" for i in range(5)]
    kits = folder / ("kits-audited" if audited else "kits-plain")
    federation = parse_federation_spec({
        "federation": {"name": "bench", "validity_days": 2},
        "coordinator": {"name": "coordinator", "address": "127.0.0.1:1",
                        "hosts": ["127.0.0.1"]},
        "nodes": [{"name": name} for name in names],
    })  # fmt: skip
    provision(federation, kits, allow_unencrypted_keys=True)
    coordinator_kit = load_coordinator_kit(kits / "coordinator")
    spec = parse_job_spec({
        "job": {"name": "audit-overhead", "rounds": rounds, "seed": 3},
        "model": {"name": "mlp", "hidden": [32], "num_features": 30, "num_classes": 2},
        "strategy": {"name": "fedavg", "min_train_nodes": 5},
        "coordinator": {"standardize_features": False, "evaluate_every": 1},
    })  # fmt: skip
    times: list[float] = []
    logs: list[AuditLog] = []
    audit = None
    if audited:
        log = AuditLog(folder / "coordinator.sqlite", party="coordinator",
                       signer=IdentitySigner.from_kit(coordinator_kit))  # fmt: skip
        logs.append(log)
        audit = CoordinatorAudit(log, job_id=spec.job_id)

    class Timer:
        def on_round_end(self, report: Any) -> None:
            times.append(time.perf_counter())

        def __getattr__(self, event: str) -> Any:
            if audit is None:
                raise AttributeError(event)
            return getattr(audit, event)

    transport = GrpcCoordinatorTransport(
        kit=coordinator_kit, poll_wait_s=2.0,
        on_received=None if audit is None else audit.on_received,
    )  # fmt: skip
    dataset = load_builtin("breast_cancer")
    stop = threading.Event()
    threads = []
    for name, rows in zip(names, partition(dataset, scheme="iid", num_nodes=5, seed=0),
                          strict=True):  # fmt: skip
        kit = load_node_kit(kits / "nodes" / name)
        node = node_from_dataset(name, dataset.subset(rows))
        record = None
        if audited:
            log = AuditLog(folder / f"{name}.sqlite", party=name,
                           signer=IdentitySigner.from_kit(kit))  # fmt: skip
            enable_audit(node, log)
            record = egress_recorder(log)
            logs.append(log)
        client = GrpcNodeClient(kit=kit, node=node, address=f"127.0.0.1:{transport.port}",
                                poll_wait_s=2.0, record_egress=record)  # fmt: skip
        threads.append(threading.Thread(target=client.run, args=(stop,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        times.append(time.perf_counter())
        run_coordinator(spec, transport=transport, state_dir=folder / f"state-{audited}",
                        observer=Timer(), max_node_wait_s=60)  # type: ignore[arg-type]  # fmt: skip
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        transport.close()
        for log in logs:
            log.close()
    return [b - a for a, b in itertools.pairwise(times)][1:]  # the first waits for connections


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
        "a deployed 5-node round, audited / not", f"{audited * 1e3:.0f} ms",
        f"{plain * 1e3:.0f} ms (no log)", f"{ratio(audited, plain):.2f}x", "",
    )  # fmt: skip
    out.print(table)
    path = write_result(result_name("audit", quick=arguments.quick), results)
    out.print(f"Written to {path}")


if __name__ == "__main__":
    main()
