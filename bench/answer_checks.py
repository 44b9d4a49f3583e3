"""What checking every answer at receipt costs, against the aggregation it protects.

The coordinator holds every update to the global model's tensor names and shapes (matched by name,
reordered without a copy) before FedAvg sees it. This measures, in one run and on the same
updates, the time of those checks against the time of FedAvg's weighted mean over the same
cohort, for a small and a large model.

Run::

    .venv/bin/python bench/answer_checks.py            # 10 nodes; 100 k and 50 M parameters
    .venv/bin/python bench/answer_checks.py --quick    # 10 nodes; 100 k and 5 M parameters

Prints each figure as a ratio against FedAvg's aggregation of the same round and writes
``bench/results/answer_checks.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from _harness import command_line, console, ratio, result_name, write_result
from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.federation.answers import AnswerRules, check_update
from sovereign_ai.federation.node import EVALUATE_METRICS, TRAIN_METRICS
from sovereign_ai.strategies import FedAvg

NODES = 10
REPEATS = 5


def model_of(num_scalars: int) -> Parameters:
    """Four tensors like an MLP's, ``num_scalars`` float32 values in all."""
    width = int(np.sqrt(num_scalars / 2))
    return Parameters(
        {
            "layer1.weight": np.zeros((width, width), np.float32),
            "layer1.bias": np.zeros(width, np.float32),
            "layer2.weight": np.zeros((width, width), np.float32),
            "layer2.bias": np.zeros(width, np.float32),
        }
    )


def updates_for(model: Parameters, rng: np.random.Generator) -> list[Result]:
    names = list(reversed(list(model)))  # another order on the wire: matched by name
    return [
        Result(
            "job",
            1,
            Stage.TRAIN,
            f"node-{i:02d}",
            100 + i,
            Parameters({n: rng.standard_normal(model[n].shape, np.float32) for n in names}),
            {"train_loss": 0.5},
        )
        for i in range(NODES)
    ]


def best_of(action: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(num_scalars: int) -> dict[str, float]:
    model = model_of(num_scalars)
    results = updates_for(model, np.random.default_rng(0))
    rules = AnswerRules(train_metrics=TRAIN_METRICS, evaluate_metrics=EVALUATE_METRICS)
    strategy = FedAvg(min_train_nodes=NODES)
    checked = [check_update(r, model=model, rules=rules) for r in results]

    def check() -> None:
        for result in results:
            check_update(result, model=model, rules=rules)

    def aggregate() -> None:
        strategy.aggregate_train(round_number=1, parameters=model, results=checked)

    check_s = best_of(check)
    aggregate_s = best_of(aggregate)
    return {
        "parameters": float(model.num_scalars),
        "check_s": check_s,
        "aggregate_s": aggregate_s,
        "check_vs_aggregate": ratio(check_s, aggregate_s),
        "check_per_node_ms": 1000 * check_s / NODES,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 5 M model instead of 50 M")
    args = parser.parse_args(argv)
    sizes = (100_000, 5_000_000 if args.quick else 50_000_000)
    out = console()
    rows = {f"{size:,}": measure(size) for size in sizes}
    out.print(f"Answer checks vs FedAvg aggregation, {NODES} nodes, best of {REPEATS}:")
    for label, figures in rows.items():
        out.print(
            f"  {label:>12} parameters: checks {figures['check_s'] * 1000:8.2f} ms, "
            f"aggregation {figures['aggregate_s'] * 1000:8.2f} ms -> "
            f"{figures['check_vs_aggregate']:.4f}x the aggregation"
        )
    write_result(
        result_name("answer_checks", quick=args.quick),
        {
            "command": command_line("answer_checks.py", argv),
            "nodes": NODES,
            "repeats": REPEATS,
            "results": rows,
            "median_ratio": statistics.median(r["check_vs_aggregate"] for r in rows.values()),
        },
    )


if __name__ == "__main__":
    main()
