"""Benchmark 1: federated vs centralised (pooled) vs each hospital alone, on held-out rows.

Run::

    .venv/bin/python bench/accuracy.py            # 5 seeds per case
    .venv/bin/python bench/accuracy.py --quick    # 2 seeds per case

Ten nodes hold Dirichlet(α = 0.5) label-skewed shares of a dataset; 20 % of the rows are held out
by the coordinator and every model is scored on them. The baseline is the framework's own
:func:`~sovereign_ai.federation.train_centralised`: the same model, initial weights and optimiser
settings trained on all nodes' training rows pooled, for as many epochs as one node trains over the
whole federated run (``rounds * local_epochs``). :func:`~sovereign_ai.federation.train_alone` trains
each node on its own rows with the same budget, for contrast.

Target (foundation issue): federated within 1 point of centralised. Each seed changes the held-out
split, the partition, the initial weights and the shuffling, so the spread over seeds is the spread
a user would see.

Cases:

* ``breast_cancer``: 569 rows, 30 features, 2 classes; MLP [32], FedAvg, 20 rounds x 2 epochs
  (the job of ``examples/jobs/breast_cancer.toml``);
* ``digits``: 1,797 rows, 64 features, 10 classes; MLP [64], FedAvg, 50 rounds x 5 epochs;
* ``digits-short``: the same with 30 rounds x 2 epochs, to show what a smaller budget costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.table import Table

from _harness import (
    RESULTS_DIR,
    command_line,
    console,
    job_document,
    mean_std,
    ratio,
    result_name,
    write_result,
)
from sovereign_ai.federation import (
    parse_job_spec,
    prepare_simulation,
    run_simulation,
    train_alone,
    train_centralised,
)


@dataclass(frozen=True)
class Case:
    """One dataset with the settings it is federated with."""

    name: str
    dataset: str
    hidden: tuple[int, ...]
    rounds: int
    local_epochs: int
    batch_size: int = 16
    learning_rate: float = 0.05
    strategy: str = "fedavg"
    strategy_options: tuple[tuple[str, Any], ...] = ()

    def document(self, seed: int) -> dict[str, Any]:
        """The job spec document for one seed."""
        return job_document(
            name=f"accuracy-{self.name}",
            rounds=self.rounds,
            seed=seed,
            model={"name": "mlp", "hidden": list(self.hidden)},
            strategy={"name": self.strategy, "fraction_train": 1.0, **dict(self.strategy_options)},
            train={
                "local_epochs": self.local_epochs,
                "batch_size": self.batch_size,
                "learning_rate": self.learning_rate,
            },
            data={"dataset": self.dataset, "partition": "dirichlet", "alpha": 0.5, "nodes": 10},
            coordinator={"evaluate_every": 1, "standardize_features": True},
        )


CASES = (
    Case("breast_cancer", "breast_cancer", hidden=(32,), rounds=20, local_epochs=2),
    Case("digits", "digits", hidden=(64,), rounds=50, local_epochs=5),
    Case("digits-short", "digits", hidden=(64,), rounds=30, local_epochs=2),
)


def run_seed(case: Case, seed: int) -> dict[str, Any]:
    """Federated, centralised and alone accuracies for one seed."""
    spec = parse_job_spec(case.document(seed), source=f"accuracy job {case.name}")
    setup = prepare_simulation(spec)
    start = time.perf_counter()
    history, _ = run_simulation(spec, setup=setup)
    federated_s = time.perf_counter() - start
    centralised = train_centralised(setup)
    alone = [score.accuracy for score in train_alone(setup)]
    federated = history.rounds[-1].metrics["central_accuracy"]
    return {
        "seed": seed,
        "federated": federated,
        "centralised": centralised.accuracy,
        "difference_points": 100 * (federated - centralised.accuracy),
        "ratio_vs_centralised": ratio(federated, centralised.accuracy),
        "alone_mean": float(np.mean(alone)),
        "alone_min": float(np.min(alone)),
        "alone_max": float(np.max(alone)),
        "alone": alone,
        "held_out_rows": len(setup.test_labels),
        "node_train_rows": [len(node.data.train_labels) for node in setup.nodes],
        "federated_s": federated_s,
        "curve": [r.metrics.get("central_accuracy") for r in history.rounds],
    }


def summarise(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every figure, and whether the target was met."""
    summary: dict[str, Any] = {}
    for key in ("federated", "centralised", "difference_points", "ratio_vs_centralised",
                "alone_mean", "alone_min", "alone_max"):  # fmt: skip
        mean, std = mean_std([run[key] for run in runs])
        summary[key] = {"mean": mean, "std": std}
    worst = min(run["difference_points"] for run in runs)
    summary["worst_seed_difference_points"] = worst
    summary["target_met"] = abs(summary["difference_points"]["mean"]) <= 1.0
    return {
        "case": case.name,
        "settings": {
            "dataset": case.dataset,
            "model": f"mlp hidden={list(case.hidden)}",
            "strategy": case.strategy,
            "strategy_options": dict(case.strategy_options),
            "rounds": case.rounds,
            "local_epochs": case.local_epochs,
            "batch_size": case.batch_size,
            "learning_rate": case.learning_rate,
            "nodes": 10,
            "partition": "dirichlet alpha=0.5",
            "centralised_epochs": case.rounds * case.local_epochs,
        },
        "summary": summary,
        "seeds": runs,
    }


def table(results: list[dict[str, Any]]) -> Table:
    """Mean ± std over seeds; federated as a ratio of, and points from, centralised."""
    grid = Table(title="Held-out accuracy, 10 nodes, Dirichlet α = 0.5 (mean ± std over seeds)")
    for column in ("case", "rounds x epochs", "seeds", "centralised (baseline)", "federated",
                   "federated / centralised", "difference", "worst seed", "alone mean [min, max]",
                   "within 1 pt"):  # fmt: skip
        grid.add_column(column, justify="left" if column == "case" else "right")
    for result in results:
        s = result["summary"]

        def pm(key: str, scale: float = 1.0, digits: int = 3, s: dict[str, Any] = s) -> str:
            return f"{s[key]['mean'] * scale:.{digits}f} ± {s[key]['std'] * scale:.{digits}f}"

        grid.add_row(
            result["case"],
            f"{result['settings']['rounds']} x {result['settings']['local_epochs']}",
            str(len(result["seeds"])),
            pm("centralised"),
            pm("federated"),
            pm("ratio_vs_centralised"),
            pm("difference_points", digits=2) + " pts",
            f"{s['worst_seed_difference_points']:+.2f} pts",
            f"{s['alone_mean']['mean']:.3f} [{s['alone_min']['mean']:.3f}, "
            f"{s['alone_max']['mean']:.3f}]",
            "yes" if s["target_met"] else "[red]no[/]",
        )
    return grid


def plot(results: list[dict[str, Any]], path: Any) -> None:
    """Federated accuracy per round (mean over seeds, min-max band) against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        curves = np.array([run["curve"] for run in result["seeds"]], dtype=float)  # (seeds, R)
        rounds = np.arange(1, curves.shape[1] + 1)
        axis.plot(rounds, curves.mean(axis=0), label="federated (mean)", color="tab:green")
        axis.fill_between(rounds, curves.min(axis=0), curves.max(axis=0), color="tab:green",
                          alpha=0.2, label="federated (min-max over seeds)")  # fmt: skip
        s = result["summary"]
        axis.axhline(s["centralised"]["mean"], color="black", label="centralised (mean)")
        axis.axhline(s["centralised"]["mean"] - 0.01, color="black", linestyle=":",
                     label="centralised - 1 pt")  # fmt: skip
        low = max(0.0, float(np.nanmin(curves[:, 1:])) - 0.05)
        alone = s["alone_mean"]["mean"]
        where = ", below the axis" if alone < low else ""
        axis.axhline(
            alone, color="tab:red", linestyle="--", label=f"node alone (mean {alone:.3f}{where})"
        )
        axis.set_title(
            f"{result['case']}: {result['settings']['rounds']} rounds x "
            f"{result['settings']['local_epochs']} epochs"
        )
        axis.set_xlabel("round")
        axis.set_ylabel("held-out accuracy")
        axis.set_ylim(low, 1.0)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds per case instead of 5")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0, 1, ...)")
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=None)
    parser.add_argument("--rounds", type=int, help="override the rounds of the chosen cases")
    parser.add_argument("--local-epochs", type=int, help="override their local epochs")
    parser.add_argument("--strategy", help="override their strategy, e.g. fedadam or fedprox")
    parser.add_argument(
        "--strategy-options",
        type=json.loads,
        default=None,
        help="options of that strategy as JSON, e.g. '{\"server_learning_rate\": 0.01}'",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the CLI runs simulations: one intra-op thread per worker
    seeds = list(range(args.seeds or (2 if args.quick else 5)))
    chosen = [c for c in CASES if args.cases is None or c.name in args.cases]
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("rounds", args.rounds),
            ("local_epochs", args.local_epochs),
            ("strategy", args.strategy),
        )
        if value is not None
    }
    if args.strategy_options is not None:
        overrides["strategy_options"] = tuple(sorted(args.strategy_options.items()))
    chosen = [dataclasses.replace(case, **overrides) for case in chosen]
    out = console()
    results = []
    for case in chosen:
        runs = []
        for seed in seeds:
            with out.status(f"{case.name}: seed {seed}..."):
                runs.append(run_seed(case, seed))
        results.append(summarise(case, runs))
    out.print(table(results))
    # A run with overrides is an experiment: keep the reference results of the default run.
    custom = bool(overrides) or args.seeds is not None or args.cases is not None
    name = result_name("accuracy", quick=args.quick, custom=custom)
    plot(results, RESULTS_DIR / f"{name}.png")
    path = write_result(
        name,
        {
            "command": command_line("accuracy.py", argv),
            "baseline": "train_centralised: all nodes' training rows pooled, rounds x local_epochs "
            "epochs, same model, initial weights and optimiser settings",
            "results": results,
        },
    )
    out.print(f"Results: {path}\nPlot:    {RESULTS_DIR / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
