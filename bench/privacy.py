"""Benchmark: what client-level differential privacy costs in accuracy, against no DP, same run.

Run::

    .venv/bin/python bench/privacy.py            # ε in 1, 2, 4, 8 and no DP; 3 seeds each
    .venv/bin/python bench/privacy.py --quick    # one seed, fewer rounds

The job: digits (1,797 8x8 images, 10 classes), 20 % held out, the rest over 100 simulated nodes
(IID); an MLP with one hidden layer of 64; DP-FedAvg with central noise (``[privacy] mode =
"central"``), clip 1.0, Poisson cohorts with ``q = 0.3``, 30 rounds; the noise multiplier is
calibrated so that the whole job spends the target ε at δ = 1e-5 (RDP). Inputs are scaled to
[0, 1] before the job (feature statistics are refused under DP). The baseline is the same job
without ``[privacy]``, in the same run.

Reported: the held-out accuracy of the final model per ε, its difference from the non-private
model (points), and ε spent as the nodes' own ledgers record it.
A plot goes to ``bench/results/privacy.png``; figures to ``bench/results/privacy.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.table import Table

from _harness import RESULTS_DIR, command_line, console, result_name, write_result
from sovereign_ai.data import load_builtin
from sovereign_ai.federation import parse_job_spec, prepare_simulation, run_simulation

EPSILONS = (1.0, 2.0, 4.0, 8.0)


def job(*, epsilon: float | None, rounds: int, seed: int) -> dict[str, Any]:
    document: dict[str, Any] = {
        "job": {"name": "dp-utility", "rounds": rounds, "seed": seed},
        "model": {"name": "mlp", "hidden": [64]},
        "strategy": {"name": "fedavg", "fraction_train": 0.3, "min_train_nodes": 5},
        "train": {"local_epochs": 2, "batch_size": 16, "learning_rate": 0.1},
        "coordinator": {"standardize_features": False, "evaluate_every": 0},
        "data": {"dataset": "digits", "partition": "iid", "nodes": 100, "test_fraction": 0.2},
    }
    if epsilon is not None:
        document["privacy"] = {"mode": "central", "target_epsilon": epsilon, "clip": 1.0}
    return document


def run(epsilon: float | None, *, rounds: int, seed: int) -> dict[str, Any]:
    spec = parse_job_spec(job(epsilon=epsilon, rounds=rounds, seed=seed))
    dataset = load_builtin("digits")
    scaled = dataclasses.replace(dataset, features=dataset.features / 16.0)  # pixels are 0..16
    setup = prepare_simulation(spec, dataset=scaled)
    history, setup = run_simulation(spec, setup=setup)
    last = history.rounds[-1].metrics
    row: dict[str, Any] = {"epsilon": epsilon, "seed": seed, "accuracy": last["central_accuracy"]}
    if epsilon is not None:
        spent = [ledger.spent(node) for node, ledger in setup.ledgers.items()]
        row["ledger_epsilon_max"] = max(spent)
        row["ledger_epsilon_median"] = statistics.median(spent)
    return row


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 10 rounds")
    arguments = parser.parse_args(argv)
    seeds = [0] if arguments.quick else [0, 1, 2]
    rounds = 10 if arguments.quick else 30
    out = console()
    rows = []
    for epsilon in (None, *EPSILONS):
        label = "no DP" if epsilon is None else f"ε = {epsilon:g}"
        with out.status(f"{label}: {len(seeds)} run(s) of {rounds} rounds over 100 nodes..."):
            rows += [run(epsilon, rounds=rounds, seed=seed) for seed in seeds]
    baseline = statistics.mean(r["accuracy"] for r in rows if r["epsilon"] is None)
    table = Table(title="Client-level DP (central noise) on digits, 100 nodes, q = 0.3")
    for column in ("ε (δ = 1e-5)", "accuracy (mean)", "vs no DP (points)", "ledger ε (max)"):
        table.add_column(column, justify="right")
    summary = []
    for epsilon in (*EPSILONS, None):
        runs = [r for r in rows if r["epsilon"] == epsilon]
        accuracy = statistics.mean(r["accuracy"] for r in runs)
        ledger = max((r.get("ledger_epsilon_max", 0.0) for r in runs), default=0.0)
        summary.append(
            {"epsilon": epsilon, "accuracy": accuracy, "points": (accuracy - baseline) * 100}
        )
        table.add_row(
            "∞ (no DP)" if epsilon is None else f"{epsilon:g}",
            f"{accuracy:.3f}",
            f"{(accuracy - baseline) * 100:+.1f}",
            "-" if epsilon is None else f"{ledger:.3f}",
        )
    out.print(table)
    figure, axis = plt.subplots(figsize=(6, 4))
    private = [s for s in summary if s["epsilon"] is not None]
    axis.plot([s["epsilon"] for s in private], [s["accuracy"] for s in private], marker="o",
              label="DP-FedAvg, central noise")  # fmt: skip
    axis.axhline(baseline, linestyle="--", color="grey", label="no DP")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("ε of the whole job (δ = 1e-5)")
    axis.set_ylabel("held-out accuracy")
    axis.set_title("Digits, 100 nodes, 30 rounds: accuracy against ε")
    axis.legend()
    figure.tight_layout()
    name = result_name("privacy", quick=arguments.quick)
    figure.savefig(RESULTS_DIR / f"{name}.png", dpi=120)
    path = write_result(
        name,
        {
            "command": command_line("privacy.py", argv),
            "rounds": rounds,
            "seeds": seeds,
            "runs": rows,
            "summary": summary,
        },
    )
    out.print(f"Written to {path} and {RESULTS_DIR / f'{name}.png'}")


if __name__ == "__main__":
    main()
