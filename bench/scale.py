"""Benchmark 3: 1,000 simulated nodes on one 2-core machine: rounds per minute and peak memory.

Run::

    .venv/bin/python bench/scale.py            # 1,000 nodes, 10 rounds
    .venv/bin/python bench/scale.py --quick    # 1,000 nodes, 3 rounds

The job: multinomial logistic regression (``logreg``) on a synthetic 4-class, 32-feature dataset
(scikit-learn's ``make_classification``, fixed seed) written to an ``.npz`` file and loaded
through the framework's own NPZ loader; 125 rows per node, so after the coordinator's 20 % hold-out
every node holds 100 rows (80 to train, 20 to evaluate locally), IID. Every node trains in every
round (1 local epoch, batch 16, SGD 0.05) and evaluates after every round, so a round is 1,000
train tasks + 1,000 evaluate tasks + a central evaluation. Nodes run on the in-memory transport
with 2 worker threads (the CLI's default) and, for comparison, one at a time (``serial``).

Baselines, measured in the same run, each in its own process:

* **10 nodes** holding the same 100 rows each: per node-task throughput at 1,000 nodes divided by
  that at 10 nodes shows whether a task costs more as the federation grows (1.0 = no);
* **plain torch loop**: FedAvg over the same 1,000 partitions as a for-loop in one process with
  one thread (``bench/_plain_job.py``): the same training, averaging and evaluation with nothing of
  the framework. Our rounds per minute over its rounds per minute is what the framework costs
  (serial) or costs and gains (2 workers).

Target (foundation issue): peak resident memory of the 1,000-node job below 4 GB.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from _harness import (
    background_note,
    command_line,
    console,
    job_document,
    ratio,
    result_name,
    run_job_process,
    write_result,
)

ROWS_PER_NODE = 125  # 100 after the 20 % central hold-out: 80 train + 20 local test
FEATURES = 32
CLASSES = 4
TARGET_RSS_MIB = 4 * 1024


def write_dataset(path: Path, *, rows: int) -> None:
    """A synthetic classification problem as ``x``/``y`` arrays (the NPZ loader's defaults)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=FEATURES,
        n_informative=16,
        n_redundant=8,
        n_classes=CLASSES,
        class_sep=2.0,
        random_state=0,
    )
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))


def document(
    *,
    dataset: Path,
    nodes: int,
    rounds: int,
    backend: str,
    workers: int,
    hidden: list[int] | None = None,
) -> dict[str, Any]:
    """The scale job for ``nodes`` nodes (``logreg``, or an MLP with ``hidden`` layers)."""
    return job_document(
        name=f"scale-{nodes}",
        rounds=rounds,
        seed=0,
        model={"name": "mlp", "hidden": hidden} if hidden else {"name": "logreg"},
        strategy={"name": "fedavg", "fraction_train": 1.0, "fraction_evaluate": 1.0},
        train={"local_epochs": 1, "batch_size": 16, "learning_rate": 0.05},
        data={"dataset": str(dataset), "partition": "iid", "nodes": nodes},
        coordinator={"evaluate_every": 1, "standardize_features": True},
        simulation={"backend": backend, "workers": workers},
    )


def measure(
    label: str,
    script: str,
    *,
    work: Path,
    nodes: int,
    rounds: int,
    backend: str = "thread",
    workers: int = 2,
    hidden: list[int] | None = None,
) -> dict[str, Any]:
    """Run one configuration in its own process and derive the per-round figures."""
    dataset = work / f"synthetic-{nodes}.npz"
    if not dataset.exists():
        write_dataset(dataset, rows=nodes * ROWS_PER_NODE)
    job_path = work / f"{label}.json"
    spec = document(
        dataset=dataset,
        nodes=nodes,
        rounds=rounds,
        backend=backend,
        workers=workers,
        hidden=hidden,
    )
    job_path.write_text(json.dumps({"spec": spec}))
    figures = run_job_process(script, job_path)
    steady = figures["steady_round_s"]
    figures.update(
        {
            "label": label,
            "nodes": nodes,
            "rounds": rounds,
            "rounds_per_minute_steady": 60.0 / steady,
            "rounds_per_minute_job": 60.0 * rounds / figures["job_s"],
            # one train and one evaluate task per node per round
            "node_tasks_per_s_steady": 2 * nodes / steady,
        }
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help="use an MLP with these hidden layers instead of logreg (e.g. 1024 1024)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 10)
    out = console()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        work = Path(folder)
        plan = [
            (f"ours, {args.nodes} nodes, thread x2", "_ours_job.py", args.nodes, "thread", 2),
            (f"ours, {args.nodes} nodes, serial", "_ours_job.py", args.nodes, "serial", 1),
            ("ours, 10 nodes, thread x2", "_ours_job.py", 10, "thread", 2),
            (f"plain torch loop, {args.nodes} nodes", "_plain_job.py", args.nodes, "serial", 1),
        ]
        for label, script, nodes, backend, workers in plan:
            with out.status(f"{label}, {rounds} rounds..."):
                runs[label] = measure(
                    label,
                    script,
                    work=work,
                    nodes=nodes,
                    rounds=rounds,
                    backend=backend,
                    workers=workers,
                    hidden=args.hidden,
                )
    big, big_serial, small, plain = runs.values()
    ratios = {
        "node_task_throughput_vs_10_nodes": ratio(
            big["node_tasks_per_s_steady"], small["node_tasks_per_s_steady"]
        ),
        "rounds_per_minute_vs_plain_loop": ratio(
            big["rounds_per_minute_steady"], plain["rounds_per_minute_steady"]
        ),
        "rounds_per_minute_serial_vs_plain_loop": ratio(
            big_serial["rounds_per_minute_steady"], plain["rounds_per_minute_steady"]
        ),
        "peak_rss_vs_plain_loop": ratio(big["peak_rss_mib"], plain["peak_rss_mib"]),
    }
    target_met = big["peak_rss_mib"] < TARGET_RSS_MIB

    model = f"mlp {args.hidden}" if args.hidden else "logreg"
    grid = Table(title=f"Scale: {model}, 100 rows per node, IID, {rounds} rounds")
    columns = ("run", "rounds/min (steady)", "rounds/min (whole job)", "first round",
               "node-tasks/s", "CPU cores used", "peak RSS", "peak PSS", "accuracy")  # fmt: skip
    for column in columns:
        grid.add_column(column, justify="left" if column == "run" else "right")
    for label, run in runs.items():
        grid.add_row(
            label,
            f"{run['rounds_per_minute_steady']:.1f}",
            f"{run['rounds_per_minute_job']:.1f}",
            f"{run['first_round_end_s']:.2f} s",
            f"{run['node_tasks_per_s_steady']:.0f}",
            f"{run['tree_cores']:.2f}",
            f"{run['peak_rss_mib']:.0f} MiB",
            f"{run['peak_pss_mib']:.0f} MiB",
            f"{run['final_accuracy']:.3f}",
        )
    out.print(grid)
    out.print(background_note(list(runs.values())))
    out.print(
        f"Per node-task throughput, {args.nodes} vs 10 nodes: "
        f"[bold]{ratios['node_task_throughput_vs_10_nodes']:.2f}x[/]\n"
        f"Rounds per minute vs the plain torch loop ({args.nodes} nodes): thread x2 "
        f"[bold]{ratios['rounds_per_minute_vs_plain_loop']:.2f}x[/], serial "
        f"[bold]{ratios['rounds_per_minute_serial_vs_plain_loop']:.2f}x[/]\n"
        f"Peak RSS {big['peak_rss_mib']:.0f} MiB = {ratios['peak_rss_vs_plain_loop']:.2f}x the "
        f"plain loop's; target < {TARGET_RSS_MIB} MiB: "
        + ("[green]met[/]" if target_met else "[red]not met[/]")
    )
    custom = args.nodes != 1000 or args.hidden is not None or args.rounds is not None
    path = write_result(
        result_name("scale", quick=args.quick, custom=custom),
        {
            "command": command_line("scale.py", argv),
            "job": {
                "model": model,
                "dataset": f"synthetic make_classification, {FEATURES} features, {CLASSES} "
                f"classes, {ROWS_PER_NODE} rows per node (100 after the hold-out)",
                "partition": "iid",
                "local_epochs": 1,
                "batch_size": 16,
                "evaluate_every": 1,
                "backend": "thread x2 (the CLI default) and serial",
                "rounds": rounds,
            },
            "runs": runs,
            "ratios": ratios,
            "target_peak_rss_mib": TARGET_RSS_MIB,
            "target_met": target_met,
        },
    )
    out.print(f"Results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
