"""Benchmark: what SecAgg+ costs, against a plain round measured in the same run.

Run::

    .venv/bin/python bench/secagg.py                  # every part below
    .venv/bin/python bench/secagg.py --quick          # smaller n and P, for a smoke test
    .venv/bin/python bench/secagg.py --with-flower    # also Flower's SecAgg+ (bench/.flower-venv)

1. **Round overhead.** One FedAvg round through the real :class:`Coordinator` over the in-memory
   transport, ``n = 100`` nodes, ``P = 100k`` and ``1M`` parameters, nodes that return a fixed
   random update instead of training (so the figure is the protocol's cost, not the model's):
   secure round over plain round, wall time of the whole simulated federation (every node's work
   runs on this machine, one after the other) and the coordinator's share of it.
2. **Bonawitz et al. 2017's setting.** ``n = 500`` nodes, ``P = 100k``, 0 / 10 / 30 % of the
   nodes drop out after sharing their keys and before sending their masked input (the case that
   costs the coordinator most: it rebuilds their mask keys and recomputes their pairwise masks).
   Run on the protocol's classes directly (no transport); reported: the median node's compute
   over the whole protocol and the coordinator's compute, split into relaying and unmasking. The
   plain baseline is the coordinator's example-weighted mean of the survivors' float updates.
3. **Bytes.** What one node sends in a secure round (keys, shares, masked input, revealed
   shares; safetensors payloads as they cross the wire) over its plain float32 update.
4. **Flower's SecAgg+** (``--with-flower``, or ``--parts 4``): its workflow at the same ``n``,
   ``P``, dropout, number of shares (our ``k + 1``) and threshold ``t``, via
   ``bench/_flower_secagg.py`` in Flower's own virtual environment (Ray, one actor per CPU),
   against our secure round over the in-memory transport, both with the dropped nodes failing
   at the masked-input stage; each side's plain round too.

Every secure sum is checked: part 2 against the exact sum of the survivors' encoded inputs.
Written to ``bench/results/secagg.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from _harness import BENCH_DIR, command_line, console, ratio, result_name, write_result
from sovereign_ai.core import Parameters, Result, Task
from sovereign_ai.errors import DataError
from sovereign_ai.federation import InMemoryTransport
from sovereign_ai.federation.coordinator import Coordinator
from sovereign_ai.federation.job import SecureAggregationSection
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.federation.secure_steps import summarise
from sovereign_ai.federation.secure_wire import (
    advert_to_tensors,
    masked_to_tensors,
    reveal_to_tensors,
    sealed_to_tensors,
)
from sovereign_ai.pki.signing import FederationIdentities, ephemeral_federation
from sovereign_ai.secagg.adverts import SessionId
from sovereign_ai.secagg.aggregation import CoordinatorSession
from sovereign_ai.secagg.encoding import encode_update
from sovereign_ai.secagg.graph import choose_neighbourhood, communication_graph
from sovereign_ai.secagg.node_session import NodeSession
from sovereign_ai.strategies import FedAvg

CLIPPING_RANGE = 2.0
QUANTISATION_BITS = 16
FLOWER_LIKE = SecureAggregationSection(
    enabled=True, clipping_range=1.0, quantisation_bits=22, max_weight=1
)
"""Flower's settings in its run (clipping 1.0, 2**22 levels, unweighted), for equal precision."""


class FixedUpdateNode(Node):
    """A node whose "training" returns a fixed random update of the model's shape.

    A node built with ``drops=True`` fails every training task: under secure aggregation that is
    after it shared its keys and before its masked input (the costliest dropout to recover).
    """

    drops = False

    def _train(self, task: Task) -> Result:
        if self.drops:
            raise DataError(f"{self.node_id} drops out (benchmark)")
        vector = fixed_update(self.node_id, task.parameters.num_scalars)
        return Result(
            task.job_id, task.round_number, task.stage, self.node_id, 100,
            task.parameters.with_vector(vector), {},
        )  # fmt: skip


def fixed_update(node_id: str, length: int) -> np.ndarray:
    """The update a :class:`FixedUpdateNode` sends, ``(length,)`` float32 in about ``±0.2``."""
    seed = int.from_bytes(node_id.encode()[-8:].rjust(8, b"\0"), "big")
    return np.random.default_rng(seed).normal(0.0, 0.05, length).astype(np.float32)


def _nodes(
    count: int, identities: FederationIdentities | None, *, dropout: float = 0.0
) -> list[Node]:
    rows = np.zeros((2, 1), dtype=np.float32)
    data = LocalData(rows, np.zeros(2, np.int64), rows[:0], np.zeros(0, np.int64))
    dropping = set(np.random.default_rng(7).choice(count, round(dropout * count), replace=False))
    nodes: list[Node] = []
    for index in range(count):
        node = FixedUpdateNode(f"node-{index:03d}", data=data)
        node.drops = index in dropping
        if identities is not None:
            enable_secure_aggregation(
                node, signer=identities.signers[node.node_id], verifier=identities.verifier
            )
        nodes.append(node)
    return nodes


class _CoordinatorClock:
    """Transport wrapper: time spent inside the nodes, so the coordinator's share is the rest."""

    def __init__(self, inner: InMemoryTransport) -> None:
        self.inner = inner
        self.node_s = 0.0

    def available_nodes(self) -> list[str]:
        return self.inner.available_nodes()

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        return self.inner.wait_for_nodes(count, timeout_s=timeout_s)

    def run_stage(self, tasks: Sequence[Task], *, timeout_s: float) -> Any:
        start = time.perf_counter()
        outcome = self.inner.run_stage(tasks, timeout_s=timeout_s)
        self.node_s += time.perf_counter() - start
        return outcome

    def close(self) -> None:
        self.inner.close()


def one_round(
    count: int,
    length: int,
    *,
    secure: bool,
    dropout: float = 0.0,
    section: SecureAggregationSection | None = None,
) -> dict[str, float]:
    """Wall time of one FedAvg round, the coordinator's part of it, and its largest error."""
    names = [f"node-{i:03d}" for i in range(count)]
    identities = ephemeral_federation("bench", names) if secure else None
    nodes = _nodes(count, identities, dropout=dropout)
    transport = _CoordinatorClock(InMemoryTransport(nodes, max_workers=1))
    coordinator = Coordinator(
        job_id="bench", strategy=FedAvg(fraction_evaluate=0.0, min_train_nodes=2),
        transport=transport,  # type: ignore[arg-type]
        initial_parameters=Parameters({"w": np.zeros(length, np.float32)}), rounds=1,
        secure_aggregation=(section or SecureAggregationSection(enabled=True)) if secure else None,
    )  # fmt: skip
    start = time.perf_counter()
    history = coordinator.run()
    wall = time.perf_counter() - start
    transport.close()
    answered = history.rounds[0].answered
    exact = np.mean([fixed_update(node, length).astype(np.float64) for node in answered], axis=0)
    assert history.parameters is not None
    return {
        "round_s": wall,
        "coordinator_s": wall - transport.node_s,
        "answered": len(answered),
        "max_abs_error": float(np.max(np.abs(history.parameters["w"] - exact))),
    }


def bench_round_overhead(count: int, lengths: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for length in lengths:
        plain = one_round(count, length, secure=False)
        secure = one_round(count, length, secure=True)
        rows.append(
            {
                "nodes": count,
                "parameters": length,
                "plain_round_s": plain["round_s"],
                "secure_round_s": secure["round_s"],
                "round_ratio": ratio(secure["round_s"], plain["round_s"]),
                "plain_coordinator_s": plain["coordinator_s"],
                "secure_coordinator_s": secure["coordinator_s"],
                "coordinator_ratio": ratio(secure["coordinator_s"], plain["coordinator_s"]),
            }
        )
    return rows


def _payload_bytes(parameters: Parameters) -> int:
    return len(parameters.to_bytes())


def protocol_run(
    count: int, length: int, dropout: float, *, identities: FederationIdentities, seed: int = 0
) -> dict[str, Any]:
    """One session of the protocol on its own classes; per-party compute and bytes."""
    rng = np.random.default_rng(seed)
    ids = sorted(identities.signers)[:count]
    neighbourhood = choose_neighbourhood(count, dropout_rate=max(dropout, 0.05))
    bits = 32
    session_id = SessionId("bench", 1, 1)
    node_s = dict.fromkeys(ids, 0.0)
    sent = dict.fromkeys(ids, 0)
    coordinator_relay_s = 0.0

    def timed(node: str, work: Any) -> Any:
        start = time.perf_counter()
        value = work()
        node_s[node] += time.perf_counter() - start
        return value

    start = time.perf_counter()
    graph = communication_graph(ids, degree=neighbourhood.degree, rng=rng)
    coordinator = CoordinatorSession(
        session=session_id, graph=graph, neighbourhood=neighbourhood, modulus_bits=bits,
        length=length + 1,
    )  # fmt: skip
    coordinator_relay_s += time.perf_counter() - start
    nodes = {
        i: timed(
            i,
            lambda i=i: NodeSession(
                node_id=i,
                session=session_id,
                neighbours=graph[i],
                threshold=neighbourhood.threshold,
                modulus_bits=bits,
                signer=identities.signers[i],
            ),
        )
        for i in ids
    }
    for i in ids:
        advert = timed(i, nodes[i].advertise)
        sent[i] += _payload_bytes(Parameters.typed(advert_to_tensors(advert)))
        start = time.perf_counter()
        coordinator.accept_advert(advert)
        coordinator_relay_s += time.perf_counter() - start
    for i in ids:
        start = time.perf_counter()
        adverts = coordinator.adverts_for(i)
        coordinator_relay_s += time.perf_counter() - start
        sealed = timed(
            i, lambda i=i, a=adverts: nodes[i].share_keys(a, verifier=identities.verifier)
        )
        sent[i] += _payload_bytes(sealed_to_tensors(sealed))
        start = time.perf_counter()
        coordinator.accept_shares(i, sealed)
        coordinator_relay_s += time.perf_counter() - start
    dropped = set(rng.choice(ids, round(dropout * count), replace=False).tolist())
    updates = {i: rng.normal(0, 0.05, length).astype(np.float32) for i in ids}
    encoded: dict[str, np.ndarray] = {}
    for i in ids:
        if i in dropped:
            continue  # shared its keys, then went away before its masked input
        start = time.perf_counter()
        shares = coordinator.shares_for(i)
        coordinator_relay_s += time.perf_counter() - start

        def mask(i: str = i, shares: dict[str, bytes] = shares) -> np.ndarray:
            nodes[i].receive_shares(shares)
            encoded[i] = encode_update(
                updates[i], weight=100, clipping_range=CLIPPING_RANGE,
                quantisation_bits=QUANTISATION_BITS, modulus_bits=bits,
                rng=np.random.default_rng(1),
            )  # fmt: skip
            return nodes[i].mask(encoded[i])

        masked = timed(i, mask)
        sent[i] += _payload_bytes(masked_to_tensors(masked, modulus_bits=bits))
        start = time.perf_counter()
        coordinator.accept_masked(i, masked)
        coordinator_relay_s += time.perf_counter() - start
    reveals = {}
    for i in coordinator.survivors:
        alive, gone = coordinator.unmask_request(i)
        reveals[i] = timed(i, lambda i=i, a=alive, g=gone: nodes[i].reveal(survivors=a, dropped=g))
        sent[i] += _payload_bytes(reveal_to_tensors(reveals[i]))
    start = time.perf_counter()
    total = coordinator.unmask(reveals)
    unmask_s = time.perf_counter() - start
    expected = np.zeros(length + 1, np.uint64)
    for vector in encoded.values():
        expected += vector
    expected &= np.uint64((1 << bits) - 1)
    survivors = coordinator.survivors
    start = time.perf_counter()  # the plain baseline: a weighted mean of the float updates
    plain = np.zeros(length, np.float64)
    for i in survivors:
        plain += 100.0 * updates[i]
    plain /= 100.0 * len(survivors)
    plain_s = time.perf_counter() - start
    survivor_bytes = [sent[i] for i in survivors]
    return {
        "nodes": count,
        "parameters": length,
        "dropout": dropout,
        "neighbours": neighbourhood.degree,
        "threshold": neighbourhood.threshold,
        "survivors": len(survivors),
        "exact": bool(np.array_equal(total, expected)),
        "node_median_s": statistics.median(node_s[i] for i in survivors),
        "coordinator_relay_s": coordinator_relay_s,
        "coordinator_unmask_s": unmask_s,
        "coordinator_s": coordinator_relay_s + unmask_s,
        "plain_coordinator_s": plain_s,
        "coordinator_ratio": ratio(coordinator_relay_s + unmask_s, plain_s),
        "bytes_per_node": statistics.median(survivor_bytes),
        "plain_bytes_per_node": _payload_bytes(Parameters({"w": updates[ids[0]]})),
    }


def bench_flower(count: int, length: int, dropout: float) -> dict[str, Any]:
    """Flower's SecAgg+ at the same n, P, dropout, shares (k + 1) and threshold as ours."""
    from flower_compare import FLOWER_PYTHON, ensure_flower_venv

    ensure_flower_venv(console())
    ours = summarise(FLOWER_LIKE, count)
    done = subprocess.run(
        [str(FLOWER_PYTHON), str(BENCH_DIR / "_flower_secagg.py"), "--nodes", str(count),
         "--params", str(length), "--dropout", str(dropout), "--num-shares",
         str(ours.neighbours + 1), "--threshold", str(ours.threshold)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"Flower's SecAgg+ run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 20 and P = 10k everywhere")
    parser.add_argument("--with-flower", action="store_true", help="also Flower's SecAgg+ (part 4)")
    parser.add_argument(
        "--parts", default="1,2,3", help="which parts to run, e.g. '4' with --with-flower"
    )
    arguments = parser.parse_args(argv)
    parts = set(arguments.parts.split(",")) | ({"4"} if arguments.with_flower else set())
    out = console()
    count, lengths = (20, [10_000]) if arguments.quick else (100, [100_000, 1_000_000])
    big_n, big_p = (50, 10_000) if arguments.quick else (500, 100_000)
    document: dict[str, Any] = {"command": command_line("secagg.py", argv)}
    if "1" in parts:
        document["round_overhead"] = part_one(count, lengths)
    if "2" in parts or "3" in parts:
        identities = ephemeral_federation("bench", [f"node-{i:03d}" for i in range(big_n)])
        if "2" in parts:
            document["bonawitz_setting"] = part_two(big_n, big_p, identities)
        if "3" in parts:
            document["bytes"] = part_three(count, lengths[0], identities)
    if "4" in parts:
        document["flower"] = part_four(count, lengths[0])
    base = "secagg_flower" if parts == {"4"} else "secagg"
    name = result_name(base, quick=arguments.quick, custom=parts not in ({"1", "2", "3"}, {"4"}))
    path = write_result(name, document)
    out.print(f"Written to {path}")


def part_one(count: int, lengths: Sequence[int]) -> list[dict[str, Any]]:
    """One plain and one secure round per model size."""
    out = console()
    with out.status("Part 1: one plain and one secure round per model size..."):
        overhead = bench_round_overhead(count, lengths)
    table = Table(title=f"1. One FedAvg round, n = {count}, in-memory transport (all nodes here)")
    for column in ("P", "plain", "secure", "× plain", "coord. plain", "coord. secure", "×"):
        table.add_column(column, justify="right")
    for row in overhead:
        table.add_row(
            f"{row['parameters']:,}", f"{row['plain_round_s']:.2f} s",
            f"{row['secure_round_s']:.2f} s", f"{row['round_ratio']:.1f}",
            f"{row['plain_coordinator_s']:.2f} s", f"{row['secure_coordinator_s']:.2f} s",
            f"{row['coordinator_ratio']:.1f}",
        )  # fmt: skip
    out.print(table)
    return overhead


def part_two(big_n: int, big_p: int, identities: FederationIdentities) -> list[dict[str, Any]]:
    """The protocol at Bonawitz et al.'s 500 nodes, 0 / 10 / 30 % dropout."""
    out = console()
    settings = []
    with out.status(f"Part 2: the protocol at n = {big_n}, P = {big_p:,}..."):
        for dropout in (0.0, 0.1, 0.3):
            settings.append(protocol_run(big_n, big_p, dropout, identities=identities))
    table = Table(title=f"2. Bonawitz et al.'s setting: n = {big_n}, P = {big_p:,}")
    for column in ("dropout", "k", "t", "exact", "node", "coord. relay", "coord. unmask",
                   "coordinator", "plain mean", "×"):  # fmt: skip
        table.add_column(column, justify="right")
    for row in settings:
        table.add_row(
            f"{row['dropout']:.0%}", str(row["neighbours"]), str(row["threshold"]),
            "yes" if row["exact"] else "NO", f"{row['node_median_s']:.3f} s",
            f"{row['coordinator_relay_s']:.2f} s", f"{row['coordinator_unmask_s']:.2f} s",
            f"{row['coordinator_s']:.2f} s", f"{row['plain_coordinator_s']:.3f} s",
            f"{row['coordinator_ratio']:.0f}",
        )  # fmt: skip
    out.print(table)
    return settings


def part_three(count: int, length: int, identities: FederationIdentities) -> dict[str, Any]:
    """Bytes one node sends in a secure round over its plain update."""
    bytes_row = protocol_run(count, length, 0.0, identities=identities)
    console().print(
        f"3. Bytes one node sends in a secure round (n = {count}, P = {length:,}): "
        f"{bytes_row['bytes_per_node']:,} against its plain update's "
        f"{bytes_row['plain_bytes_per_node']:,} = "
        f"{ratio(bytes_row['bytes_per_node'], bytes_row['plain_bytes_per_node']):.3f}x"
    )
    return bytes_row


def part_four(count: int, length: int) -> list[dict[str, Any]]:
    """Flower's SecAgg+ round and ours, same n, P, dropout, shares and threshold."""
    out = console()
    rows = []
    table = Table(title=f"4. SecAgg+ round, Flower vs ours, n = {count}, P = {length:,}")
    for column in ("dropout", "shares / t", "Flower", "ours", "Flower / ours", "Flower plain",
                   "our plain", "max error Flower / ours"):  # fmt: skip
        table.add_column(column, justify="right")
    for dropout in (0.0, 0.1):
        with out.status(f"Part 4: Flower's SecAgg+ at {dropout:.0%} dropout (minutes)..."):
            theirs = bench_flower(count, length, dropout)
        ours = one_round(count, length, secure=True, dropout=dropout, section=FLOWER_LIKE)
        plain = one_round(count, length, secure=False, dropout=dropout)
        row = {
            "dropout": dropout,
            "flower": theirs,
            "ours_secure_round_s": ours["round_s"],
            "ours_plain_round_s": plain["round_s"],
            "ours_answered": ours["answered"],
            "ours_max_abs_error": ours["max_abs_error"],
            "flower_over_ours": ratio(theirs["secure_round_s"], ours["round_s"]),
        }
        rows.append(row)
        parameters = theirs.get("secagg_parameters", {})
        table.add_row(
            f"{dropout:.0%}",
            f"{parameters.get('num_shares_effective')} / {parameters.get('threshold_effective')}",
            f"{theirs['secure_round_s']:.1f} s", f"{ours['round_s']:.1f} s",
            f"{row['flower_over_ours']:.1f}", f"{theirs['plain_round_s']:.2f} s",
            f"{plain['round_s']:.2f} s",
            f"{theirs.get('secure_max_abs_error', float('nan')):.1e} / {ours['max_abs_error']:.1e}",
        )  # fmt: skip
    out.print(table)
    return rows


if __name__ == "__main__":
    main()
