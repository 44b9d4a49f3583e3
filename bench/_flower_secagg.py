"""Measure Flower's own SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) in its simulation.

Runs only with ``bench/.flower-venv/bin/python`` (Flower is never a project dependency)::

    bench/.flower-venv/bin/python bench/_flower_secagg.py --nodes 10 --params 100000 \\
        --dropout 0 --seed 0 [--repeats 3]

One ``run_simulation`` call (Ray backend, one CPU per client actor) runs a legacy ``ServerApp``
that executes, against the same ``ClientApp`` and the same nodes:

1. one warm-up plain FedAvg round (actor start-up; not counted), then ``--repeats`` plain rounds
   (``DefaultWorkflow`` with Flower's default fit workflow): the baseline;
2. ``--repeats`` secure rounds: ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``.

The client's ``fit`` does no training: it returns a fixed float32 vector of ``--params`` values,
uniform in ``[-1, 1)`` and seeded by ``(seed, partition-id)``, with ``num_examples=1``. The client
mods are Flower's ``secaggplus_mod``, reached through a two-line dispatcher that passes plain
rounds (whose messages carry no SecAgg+ config record) straight to ``fit``.

Dropout: ``round(dropout * nodes)`` partitions, chosen with ``seed``, raise an exception inside
``fit``. Under SecAgg+, ``fit`` is only called at the *collect masked vectors* stage, so these
nodes have sent their public keys (setup) and their encrypted shares (share keys) and vanish before
sending a masked input. Flower's simulation turns the exception into an error reply at once; the
workflow drops every node that replied with an error from its active set, asks the survivors for
the dropped nodes' secret-key shares and removes their pairwise masks in the unmask stage. No
timeout is involved (a silent node would instead stall the stage until ``timeout``). The same
nodes drop in the plain rounds, where FedAvg averages the survivors.

Timing, all on the server side: a secure round is timed from the start of the SecAgg+ workflow to
the return of its unmask stage (aggregate written); each stage is split into time inside
``grid.send_and_receive`` (client work, queueing, Flower's 0.1 s polling) and the server's own
computation around it. The unmask stage's computation includes the legacy ``FedAvg.aggregate_fit``
Flower calls on the unmasked vector, reported separately too. A plain round is timed around the
default fit workflow. The aggregated vector of every round is compared with the exact float64 mean
of the surviving nodes' vectors (max abs error). One JSON object goes to stdout; Flower's and Ray's
output goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any

# Before Flower or Ray is imported: nothing leaves this machine.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import warnings

import flwr
import numpy as np
import ray
from flwr.app.message_type import MessageType
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import Context, Message, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.default_workflows import default_fit_workflow
from flwr.simulation import run_simulation


def node_vector(seed: int, partition: int, params: int) -> np.ndarray:
    """The fixed update of one node: ``(params,)`` float32, uniform in ``[-1, 1)``."""
    rng = np.random.default_rng([seed, partition])
    return rng.uniform(-1.0, 1.0, params).astype(np.float32)


def dropped_partitions(nodes: int, dropout: float, seed: int) -> list[int]:
    """The partitions that drop out, ``round(dropout * nodes)`` of them, chosen with ``seed``."""
    count = round(dropout * nodes)
    rng = np.random.default_rng([seed, 0x5EC])
    return sorted(int(p) for p in rng.choice(nodes, size=count, replace=False))


def make_client_app(params: int, seed: int, dropped: list[int]) -> ClientApp:
    """The ClientApp: ``fit`` returns the node's fixed vector; dropped nodes raise instead."""
    dropped_set = frozenset(dropped)

    class FixedVectorClient(NumPyClient):
        def __init__(self, partition: int) -> None:
            self.partition = partition

        def fit(self, parameters: Any, config: Any) -> tuple[list[np.ndarray], int, dict]:
            if self.partition in dropped_set:
                raise RuntimeError(f"partition {self.partition} drops out (simulated)")
            return [node_vector(seed, self.partition, params)], 1, {}

    def client_fn(context: Context) -> Any:
        return FixedVectorClient(int(context.node_config["partition-id"])).to_client()

    def secaggplus_when_asked(msg: Message, ctxt: Context, call_next: Any) -> Message:
        # Plain rounds carry no SecAgg+ config record: they go straight to ``fit``.
        secure = RECORD_KEY_CONFIGS in msg.content.config_records
        if msg.metadata.message_type == MessageType.TRAIN and secure:
            return secaggplus_mod(msg, ctxt, call_next)
        return call_next(msg, ctxt)

    return ClientApp(client_fn=client_fn, mods=[secaggplus_when_asked])


class TimedGrid:
    """A Grid proxy that adds up the time spent inside ``send_and_receive``."""

    def __init__(self, grid: Any) -> None:
        self._grid = grid
        self.comm_s = 0.0

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> Any:
        start = time.perf_counter()
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.comm_s += time.perf_counter() - start
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class RecordingFedAvg(FedAvg):
    """Flower's legacy FedAvg, keeping the aggregate of the last round and the time it took."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last: dict[str, Any] = {}

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        start = time.perf_counter()
        out = super().aggregate_fit(server_round, results, failures)
        elapsed = time.perf_counter() - start
        vector = parameters_to_ndarrays(out[0])[0] if out[0] is not None else None
        self.last = {
            "aggregate_fit_s": elapsed,
            "results": len(results),
            "failures": len(failures),
            "vector": vector,
        }
        return out


class TimedSecAggPlus(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow, unchanged, with a stopwatch around the round and each stage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}

    def __call__(self, grid: Any, context: Any) -> None:
        self._current = {"stages": {}, "completed": False}
        start = time.perf_counter()
        super().__call__(grid, context)
        self._current["round_s"] = time.perf_counter() - start
        self.rounds.append(self._current)

    def _timed(self, name: str, stage: Any, grid: Any, context: Any, state: Any) -> bool:
        timed_grid = TimedGrid(grid)
        start = time.perf_counter()
        ok = bool(stage(timed_grid, context, state))
        total = time.perf_counter() - start
        self._current["stages"][name] = {
            "total_s": total,
            "send_and_receive_s": timed_grid.comm_s,
            "server_compute_s": total - timed_grid.comm_s,
            "active_nodes_after": len(state.active_node_ids),
        }
        return ok

    def setup_stage(self, grid: Any, context: Any, state: Any) -> bool:
        ok = self._timed("setup", super().setup_stage, grid, context, state)
        self._current["num_shares"] = int(state.num_shares)
        self._current["threshold"] = int(state.threshold)
        return ok

    def share_keys_stage(self, grid: Any, context: Any, state: Any) -> bool:
        return self._timed("share_keys", super().share_keys_stage, grid, context, state)

    def collect_masked_vectors_stage(self, grid: Any, context: Any, state: Any) -> bool:
        stage = super().collect_masked_vectors_stage
        return self._timed("collect_masked_vectors", stage, grid, context, state)

    def unmask_stage(self, grid: Any, context: Any, state: Any) -> bool:
        ok = self._timed("unmask", super().unmask_stage, grid, context, state)
        self._current["completed"] = ok
        return ok


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--params", type=int, required=True)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs, one per client actor")
    parser.add_argument("--num-shares", type=int, default=None, help="default: nodes")
    parser.add_argument(
        "--threshold", type=int, default=None, help="default: survivors (nodes - dropped)"
    )
    parser.add_argument("--clipping-range", type=float, default=1.0)
    parser.add_argument("--quantization-range", type=int, default=1 << 22)
    parser.add_argument("--modulus-range", type=int, default=1 << 32)
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args(argv)
    if args.nodes < 3 or args.params < 1 or args.repeats < 1:
        parser.error("need --nodes >= 3, --params >= 1, --repeats >= 1")
    if not 0.0 <= args.dropout < 1.0:
        parser.error("--dropout must be in [0, 1)")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    nodes, params, seed, repeats = args.nodes, args.params, args.seed, args.repeats
    dropped = dropped_partitions(nodes, args.dropout, seed)
    survivors = [p for p in range(nodes) if p not in set(dropped)]
    exact_mean = np.mean(
        np.stack([node_vector(seed, p, params).astype(np.float64) for p in survivors]), axis=0
    )  # (params,)

    num_shares = args.num_shares if args.num_shares is not None else nodes
    threshold = args.threshold if args.threshold is not None else nodes - len(dropped)
    # Flower rejects an integer threshold >= num_shares; the float 1.0 means "all shares".
    threshold_arg: int | float = 1.0 if threshold >= num_shares else threshold
    secagg_settings = {
        "num_shares": num_shares,
        "reconstruction_threshold": threshold_arg,
        "max_weight": 1.0,  # every node sends num_examples=1: no precision lost to weighting
        "clipping_range": args.clipping_range,
        "quantization_range": args.quantization_range,
        "modulus_range": args.modulus_range,
        "timeout": args.timeout,
    }
    secure_workflow = TimedSecAggPlus(**secagg_settings)

    def strategy() -> RecordingFedAvg:
        return RecordingFedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=nodes,
            min_available_clients=nodes,
            initial_parameters=ndarrays_to_parameters([np.zeros(params, dtype=np.float32)]),
        )

    plain_rounds: list[dict[str, Any]] = []
    secure_errors: list[float | None] = []

    def error_of(vector: np.ndarray | None) -> float | None:
        if vector is None:
            return None
        return float(np.max(np.abs(vector.astype(np.float64) - exact_mean)))

    server_app = ServerApp()

    @server_app.main()
    def server_main(grid: Any, context: Any) -> None:
        random.seed(seed)  # the workflow shuffles nodes into its share graph with `random`
        plain_strategy = strategy()

        def timed_plain_fit(grid: Any, ctx: Any) -> None:
            plain_strategy.last = {}
            timed_grid = TimedGrid(grid)
            start = time.perf_counter()
            default_fit_workflow(timed_grid, ctx)
            total = time.perf_counter() - start
            last = plain_strategy.last
            plain_rounds.append(
                {
                    "round_s": total,
                    "send_and_receive_s": timed_grid.comm_s,
                    "server_compute_s": total - timed_grid.comm_s,
                    "aggregate_fit_s": last.get("aggregate_fit_s"),
                    "results": last.get("results"),
                    "failures": last.get("failures"),
                    "max_abs_error": error_of(last.get("vector")),
                }
            )

        plain = LegacyContext(
            context=context,
            config=ServerConfig(num_rounds=repeats + 1),
            strategy=plain_strategy,
        )
        DefaultWorkflow(fit_workflow=timed_plain_fit)(grid, plain)

        secure_strategy = strategy()
        secure = LegacyContext(
            context=context, config=ServerConfig(num_rounds=repeats), strategy=secure_strategy
        )

        def secure_fit(grid: Any, ctx: Any) -> None:
            secure_strategy.last = {}
            secure_workflow(grid, ctx)
            last = secure_strategy.last
            secure_errors.append(error_of(last.get("vector")))
            secure_workflow.rounds[-1]["aggregate_fit_s"] = last.get("aggregate_fit_s")
            secure_workflow.rounds[-1]["results"] = last.get("results")

        DefaultWorkflow(fit_workflow=secure_fit)(grid, secure)

    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": args.cpus,
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": "error",
            "log_to_driver": False,
        },
    }
    # Keep stdout for the JSON line: everything Flower, Ray and their children write to file
    # descriptor 1 during the run goes to stderr.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_simulation(
                server_app=server_app,
                client_app=make_client_app(params, seed, dropped),
                num_supernodes=nodes,
                backend_config=backend_config,
            )
        job_s = time.perf_counter() - start
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)

    warmup, counted = plain_rounds[:1], plain_rounds[1:]
    secure_rounds = secure_workflow.rounds
    for record, err in zip(secure_rounds, secure_errors, strict=False):
        record["max_abs_error"] = err
    complete = len(secure_rounds) == repeats and all(r["completed"] for r in secure_rounds)

    def median(values: list[Any]) -> float | None:
        numbers = [v for v in values if v is not None]
        return statistics.median(numbers) if numbers else None

    secure_median = median([r["round_s"] for r in secure_rounds])
    plain_median = median([r["round_s"] for r in counted])
    unmask = [r["stages"].get("unmask", {}) for r in secure_rounds]
    unmask_compute = median([u.get("server_compute_s") for u in unmask])
    legacy_aggregate = median([r.get("aggregate_fit_s") for r in secure_rounds])
    output = {
        "framework": "flower-secaggplus",
        "versions": {
            "flwr": flwr.__version__,
            "ray": ray.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "nodes": nodes,
        "params": params,
        "dropout": args.dropout,
        "dropped": len(dropped),
        "dropped_partitions": dropped,
        "seed": seed,
        "repeats": repeats,
        "cpus": args.cpus,
        "secagg_parameters": {
            **secagg_settings,
            "num_shares_effective": secure_rounds[0].get("num_shares") if secure_rounds else None,
            "threshold_effective": secure_rounds[0].get("threshold") if secure_rounds else None,
            "quantization_step": 2.0 * args.clipping_range / args.quantization_range,
        },
        "drop_simulation": "fit() raises at the collect-masked-vectors stage -> error reply",
        "secure_complete": complete,
        "secure_round_s": secure_median,
        "plain_round_s": plain_median,
        "secure_over_plain": (
            secure_median / plain_median if secure_median and plain_median else None
        ),
        "secure_unmask_server_compute_s": unmask_compute,
        "secure_unmask_legacy_aggregate_fit_s": legacy_aggregate,
        "secure_server_compute_s": median(
            [sum(s["server_compute_s"] for s in r["stages"].values()) for r in secure_rounds]
        ),
        "secure_max_abs_error": max((e for e in secure_errors if e is not None), default=None),
        "plain_max_abs_error": max(
            (r["max_abs_error"] for r in counted if r["max_abs_error"] is not None), default=None
        ),
        "secure_rounds": secure_rounds,
        "plain_rounds": counted,
        "plain_warmup_round": warmup[0] if warmup else None,
        "job_s": job_s,
    }
    print(json.dumps(output), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
