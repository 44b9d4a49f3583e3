"""Benchmark 2: the same job in Flower's simulation and in ours, at 10 and 100 nodes.

Run::

    .venv/bin/python bench/flower_compare.py            # 20 rounds at 10 and 100 nodes
    .venv/bin/python bench/flower_compare.py --quick    # 5 rounds

On first use it creates ``bench/.flower-venv`` (git-ignored, never a project dependency) with
``python3 -m venv``, installs the local CPU build of torch first (``torch==2.13.0``; otherwise pip
pulls gigabytes of CUDA wheels), then ``flwr[simulation]``, numpy and scikit-learn.

The job: digits (1,797 8x8 images, 10 classes), 20 % held out for the coordinator, the rest split
over the nodes by Dirichlet(α = 0.5) label skew; an MLP with one hidden layer of 64; FedAvg over
every node each round; 2 local epochs of SGD, batch 16, learning rate 0.05; federated evaluation on
every node's local test rows and central evaluation on the held-out rows after every round.

Made identical on both sides:

* **data**: this script prepares our simulation and writes every node's rows to an ``.npz`` file
  the Flower clients read, so the partition is the same row for row (checked by digest);
* **model and initial weights**: Flower's clients build the same module tree and start from our
  initial parameters (written to an ``.npz``);
* **feature standardisation**: ours gathers federated feature statistics before round 1 and writes
  the global mean and standard deviation into the model's ``input_mean``/``input_std`` tensors. The
  Flower side gets the very same tensors in its initial parameters, computed here from the same
  rows. This keeps one code path on each side, and the statistics stage (a cost only ours pays)
  stays inside our wall time;
* **local training**: the Flower client runs the loop of ``sovereign_ai.learning.train`` with the
  same per-round, per-node seeds, so the two runs differ only by floating-point rounding in
  aggregation.

Each side runs as its own process; wall time is measured from launch to exit (``process``) and
inside the process from the start of the simulation call to its return (``job``: Ray start-up and
actor creation for Flower, worker pool and statistics stage for ours), plus the median round after
the first (``steady round``). Peak memory is the sum over the process tree (Ray's workers and our
process pool included), sampled with psutil: RSS every 0.1 s (counts shared library pages once per
process) and PSS every 2 s (shares them out; the fairer figure). ``--repeats N`` runs every side N
times and reports the median of each figure (the spread goes to the JSON file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _harness import (
    BENCH_DIR,
    RESULTS_DIR,
    background_note,
    command_line,
    console,
    job_document,
    median_of_runs,
    ratio,
    result_name,
    run_job_process,
    write_result,
)
from _ours_job import partition_digest
from sovereign_ai.federation import (
    JobSpec,
    SimulationSetup,
    initial_parameters,
    parse_job_spec,
    prepare_simulation,
)

FLOWER_VENV = BENCH_DIR / ".flower-venv"
FLOWER_PYTHON = FLOWER_VENV / "bin" / "python"
FLOWER_STAMP = FLOWER_VENV / ".installed.json"
TORCH_PIN = "torch==2.13.0"  # the local CPU wheel the project's venv uses too
CPUS = 2  # this machine's cores; Ray gets them all, one per client actor


def ensure_flower_venv(out: Console) -> dict[str, str]:
    """Create ``bench/.flower-venv`` with Flower on first use; return the installed versions.

    Raises
    ------
    RuntimeError
        With pip's last lines if the installation fails.
    """
    if not FLOWER_STAMP.exists():
        base_python = shutil.which("python3") or sys.executable
        steps = [
            [base_python, "-m", "venv", str(FLOWER_VENV)],
            [str(FLOWER_PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            [str(FLOWER_PYTHON), "-m", "pip", "install", "--quiet", TORCH_PIN],
            [
                str(FLOWER_PYTHON), "-m", "pip", "install", "--quiet",
                "flwr[simulation]", "numpy", "scikit-learn",
            ],
        ]  # fmt: skip
        with out.status("Creating bench/.flower-venv (Flower + Ray + CPU torch)..."):
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                    raise RuntimeError(f"`{' '.join(step)}` failed:\n{tail}")
        probe = (
            "import json, flwr, ray, torch, numpy; print(json.dumps({'flwr': flwr.__version__, "
            "'ray': ray.__version__, 'torch': torch.__version__, 'numpy': numpy.__version__}))"
        )
        done = subprocess.run(
            [str(FLOWER_PYTHON), "-c", probe], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"Flower does not import in {FLOWER_VENV}:\n{done.stderr[-2000:]}")
        FLOWER_STAMP.write_text(done.stdout.strip() + "\n", encoding="utf-8")
    versions: dict[str, str] = json.loads(FLOWER_STAMP.read_text(encoding="utf-8"))
    return versions


def job_summary(seed: int) -> dict[str, Any]:
    """The compared job in words, for the results file."""
    return {
        "dataset": "digits",
        "partition": "dirichlet alpha=0.5",
        "model": "mlp hidden=[64]",
        "strategy": "fedavg, every node every round",
        "local_epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.05,
        "seed": seed,
    }


def job_spec(*, nodes: int, rounds: int, seed: int, backend: str) -> JobSpec:
    """The compared job, on our side."""
    return parse_job_spec(
        job_document(
            name=f"flower-compare-{nodes}",
            rounds=rounds,
            seed=seed,
            model={"name": "mlp", "hidden": [64]},
            strategy={"name": "fedavg", "fraction_train": 1.0, "fraction_evaluate": 1.0},
            train={"local_epochs": 2, "batch_size": 16, "learning_rate": 0.05},
            data={"dataset": "digits", "partition": "dirichlet", "alpha": 0.5, "nodes": nodes},
            coordinator={"evaluate_every": 1, "standardize_features": True},
            simulation={"backend": backend, "workers": CPUS},
        ),
        source="flower comparison job",
    )


def write_partition(setup: SimulationSetup, path: Path) -> None:
    """Each node's training and local test rows (concatenated, with offsets); the held-out rows."""
    arrays: dict[str, np.ndarray] = {}
    for part in ("train", "test"):
        xs = [getattr(n.data, f"{part}_features") for n in setup.nodes]
        ys = [getattr(n.data, f"{part}_labels") for n in setup.nodes]
        arrays[f"{part}_x"] = np.concatenate(xs).astype(np.float32)  # (rows, d)
        arrays[f"{part}_y"] = np.concatenate(ys).astype(np.int64)  # (rows,)
        arrays[f"{part}_offsets"] = np.cumsum([0, *(len(y) for y in ys)]).astype(np.int64)
    arrays["held_out_x"] = setup.test_features.astype(np.float32)
    arrays["held_out_y"] = setup.test_labels.astype(np.int64)
    np.savez(path, **arrays)


def write_initial(spec: JobSpec, setup: SimulationSetup, path: Path) -> None:
    """Our initial parameters with the scaling our coordinator derives from node statistics."""
    start = dict(
        initial_parameters(spec, num_features=setup.num_features, num_classes=setup.num_classes)
    )
    # As Coordinator._with_feature_scaling: count, sum and sum of squares over every node's
    # training rows, in float64; population standard deviation, 1 where a feature is constant.
    rows = np.concatenate([n.data.train_features for n in setup.nodes]).astype(np.float64)
    mean = rows.sum(axis=0) / len(rows)
    std = np.sqrt(np.maximum(np.square(rows).sum(axis=0) / len(rows) - np.square(mean), 0.0))
    start["input_mean"] = mean.astype(np.float32)
    start["input_std"] = np.where(std > 1e-12, std, 1.0).astype(np.float32)
    np.savez(path, **{name: np.asarray(value) for name, value in start.items()})


def compare(nodes: int, *, rounds: int, seed: int, repeats: int, out: Console) -> dict[str, Any]:
    """Run Flower, ours (threads) and ours (processes) on one job; return every figure."""
    with tempfile.TemporaryDirectory(prefix="flower-compare-") as folder:
        work = Path(folder)
        thread_spec = job_spec(nodes=nodes, rounds=rounds, seed=seed, backend="thread")
        setup = prepare_simulation(thread_spec)
        write_partition(setup, work / "partition.npz")
        write_initial(thread_spec, setup, work / "initial.npz")
        common = {
            "rounds": rounds,
            "seed": seed,
            "num_nodes": len(setup.nodes),
            "num_classes": setup.num_classes,
            "hidden": [64],
            "local_epochs": 2,
            "batch_size": 16,
            "learning_rate": 0.05,
            "cpus": CPUS,
            "data": str(work / "partition.npz"),
            "init": str(work / "initial.npz"),
            "partition_digest": partition_digest(setup),
        }
        jobs: dict[str, tuple[Path, Path | None]] = {}
        for label, backend in (("ours (threads)", "thread"), ("ours (processes)", "process")):
            spec = job_spec(nodes=nodes, rounds=rounds, seed=seed, backend=backend)
            job_path = work / f"ours-{backend}.json"
            job_path.write_text(json.dumps({**common, "spec": spec.model_dump(mode="json")}))
            jobs[label] = (job_path, None)
        job_path = work / "flower.json"
        job_path.write_text(json.dumps(common))
        jobs["flower"] = (job_path, FLOWER_PYTHON)
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in jobs}
        for repeat in range(repeats):  # interleaved, so drift of the machine hits every side
            for label, (path, python) in jobs.items():
                script = "_ours_job.py" if python is None else "_flower_job.py"
                with out.status(f"{nodes} nodes: {label} (run {repeat + 1}/{repeats})..."):
                    runs[label].append(run_job_process(script, path, python=python))
        sides = {label: median_of_runs(label_runs) for label, label_runs in runs.items()}
    rows = [len(n.data.train_labels) for n in setup.nodes]
    return {
        "nodes": nodes,
        "rounds": rounds,
        "train_rows_per_node": {"min": min(rows), "max": max(rows), "total": sum(rows)},
        "sides": sides,
        "ratios_vs_flower": {
            label: {
                "process_wall": ratio(side["process_s"], sides["flower"]["process_s"]),
                "job_wall": ratio(side["job_s"], sides["flower"]["job_s"]),
                "steady_round": ratio(side["steady_round_s"], sides["flower"]["steady_round_s"]),
                "peak_rss": ratio(side["peak_rss_mib"], sides["flower"]["peak_rss_mib"]),
                "peak_pss": ratio(side["peak_pss_mib"], sides["flower"]["peak_pss_mib"]),
                "accuracy_points": 100
                * (side["final_accuracy"] - sides["flower"]["final_accuracy"]),
            }
            for label, side in sides.items()
            if label != "flower"
        },
    }


def report(results: list[dict[str, Any]], out: Console) -> None:
    """One table per node count: absolute figures with the ratio to Flower beside each."""
    for result in results:
        table = Table(
            title=f"{result['nodes']} nodes, {result['rounds']} rounds: ours vs Flower "
            "(ratio = ours / Flower, measured in this run)"
        )
        for column in ("side", "process wall", "job wall", "steady round", "peak RSS (tree)",
                       "peak PSS (tree)", "procs", "accuracy"):  # fmt: skip
            table.add_column(column, justify="left" if column == "side" else "right")
        flower = result["sides"]["flower"]
        for label, side in result["sides"].items():
            r = result["ratios_vs_flower"].get(label)

            def cell(value: str, key: str, r: dict[str, float] | None = r) -> str:
                return value if r is None else f"{value} ({r[key]:.2f}x)"

            accuracy = f"{side['final_accuracy']:.4f}"
            if r is not None:
                accuracy += f" ({round(r['accuracy_points'], 1) + 0.0:+.1f} pts)"
            table.add_row(
                label,
                cell(f"{side['process_s']:.1f} s", "process_wall"),
                cell(f"{side['job_s']:.1f} s", "job_wall"),
                cell(f"{side['steady_round_s'] * 1000:.0f} ms", "steady_round"),
                cell(f"{side['peak_rss_mib']:.0f} MiB", "peak_rss"),
                cell(f"{side['peak_pss_mib']:.0f} MiB", "peak_pss"),
                f"{side['peak_processes']:.0f}",
                accuracy,
                style="bold" if side is flower else "",
            )
        out.print(table)
        every_run = [run for side in result["sides"].values() for run in side["repeats"]]
        out.print(background_note(every_run))
        for key, what in (
            ("remote_addresses_seen", "other machines"),
            ("own_interface_addresses_seen", "this machine's own non-loopback addresses"),
        ):
            seen = {label: side[key] for label, side in result["sides"].items() if side[key]}
            out.print(f"Connections to {what} (checked every 2 s): {seen or 'none'}")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Held-out accuracy against round and against elapsed seconds, ours vs Flower."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 8), squeeze=False)
    styles: dict[str, dict[str, Any]] = {
        # Flower drawn first, wide and pale, so that identical curves of ours show on top of it.
        "flower": {"color": "tab:green", "linewidth": 6, "alpha": 0.35},
        "ours (threads)": {"color": "tab:blue", "marker": "s", "markersize": 3},
        "ours (processes)": {"color": "tab:orange", "linestyle": "--", "marker": "^",
                             "markersize": 3},
    }  # fmt: skip
    for column, result in enumerate(results):
        order = sorted(result["sides"], key=lambda label: label != "flower")
        for label in order:
            side = result["sides"][label]
            accuracy = side["central_accuracy"]
            rounds = range(1, len(accuracy) + 1)
            axes[0][column].plot(rounds, accuracy, label=label, **styles[label])
            axes[1][column].plot(side["round_end_s"], accuracy, label=label, **styles[label])
        axes[0][column].set_title(f"{result['nodes']} nodes: held-out accuracy per round")
        axes[0][column].set_xlabel("round")
        axes[1][column].set_title(f"{result['nodes']} nodes: accuracy against wall time")
        axes[1][column].set_xlabel("seconds since the simulation call (round ends)")
        axes[1][column].set_xlim(left=0)
        for row in axes:
            row[column].set_ylabel("accuracy")
            row[column].grid(alpha=0.3)
            row[column].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 20")
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=None, help="override the round count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (median reported)")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the plot and tables from the last JSON"
    )
    args = parser.parse_args(argv)
    if args.replot:
        saved = json.loads((RESULTS_DIR / "flower_compare.json").read_text(encoding="utf-8"))
        report(saved["results"], console())
        plot(saved["results"], RESULTS_DIR / "flower_compare.png")
        return 0
    rounds = args.rounds or (5 if args.quick else 20)
    out = console()
    custom = args.nodes != [10, 100] or args.rounds is not None or args.seed != 0
    name = result_name("flower_compare", quick=args.quick, custom=custom)
    try:
        versions = ensure_flower_venv(out)
    except RuntimeError as exc:
        out.print(f"[red]Flower could not be installed; nothing compared.[/]\n{exc}")
        write_result(name, {"flower_unavailable": str(exc)})
        return 1
    out.print(f"Flower side: {versions} in {FLOWER_VENV}")
    results = [
        compare(n, rounds=rounds, seed=args.seed, repeats=args.repeats, out=out) for n in args.nodes
    ]
    report(results, out)
    plot(results, RESULTS_DIR / f"{name}.png")
    path = write_result(
        name,
        {
            "command": command_line("flower_compare.py", argv),
            "flower_versions": versions,
            "job": {**job_summary(args.seed), "cpus": CPUS},
            "results": results,
        },
    )
    out.print(f"Results: {path}\nPlot:    {RESULTS_DIR / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
