"""The demo's federation as real processes: one coordinator and five hospital nodes over gRPC.

Each hospital's rows are written to its own CSV file, which only that hospital's node process
reads; the coordinator process holds the held-out patients for scoring. Kits are provisioned for
a free port on 127.0.0.1, so nothing listens beyond this machine.
"""

from __future__ import annotations

import csv
import json
import time
import tomllib
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sovereign_ai.cli.report import history_from_json
from sovereign_ai.data import Dataset, load_file
from sovereign_ai.errors import FederationError
from sovereign_ai.federation import FederationHistory, JobSpec, SimulationSetup
from sovereign_ai.federation.deployment import node_from_dataset
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.federation.private_node import LEDGER_FILE
from sovereign_ai.privacy import PrivacyLedger

__all__ = ["run_deployed_demo"]

_LABEL = "diagnosis"


def _write_csv(
    path: Path,
    dataset: Dataset,
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*dataset.feature_names, _LABEL])
        for row, label in zip(features, labels, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), dataset.class_names[int(label)]])


def _deployed_job(spec: JobSpec, dataset: Dataset, folder: Path, source: str) -> Path:
    document = tomllib.loads(source)
    document.pop("data", None)
    document.pop("simulation", None)
    document["job"]["rounds"] = spec.job.rounds
    document["model"].update(num_features=dataset.num_features, num_classes=dataset.num_classes)
    if spec.model.input_mean is not None:
        document["model"].update(input_mean=spec.model.input_mean, input_std=spec.model.input_std)
    document["coordinator"] = {
        **document.get("coordinator", {}),
        "round_timeout_s": 120,
        "wait_for_nodes": len(spec.data.node_names or []) if spec.data else 0,
        "wait_for_nodes_s": 120,
    }
    path = folder / "job.toml"
    path.write_text(_to_toml(document), encoding="utf-8")
    return path


def _to_toml(document: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in document.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def run_deployed_demo(
    console: Console, spec: JobSpec, setup: SimulationSetup, *, folder: Path, job_source: str
) -> tuple[FederationHistory, SimulationSetup]:
    """Run the demo job as processes; return its history and the setup the nodes really held."""
    folder = folder.resolve()  # the processes run in their own working directory
    dataset = setup.dataset
    names = [node.node_id for node in setup.nodes]
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    classes = ",".join(dataset.class_names)
    deployed_nodes = []
    for node in setup.nodes:
        path = data_dir / f"{node.node_id}.csv"
        rows = np.concatenate([node.data.train_features, node.data.test_features])
        labels = np.concatenate([node.data.train_labels, node.data.test_labels])
        _write_csv(path, dataset, rows, labels)
        own = load_file(path, label=_LABEL, classes=list(dataset.class_names))
        deployed_nodes.append(node_from_dataset(node.node_id, own, seed=0))
    held_out = data_dir / "held_out_patients.csv"
    _write_csv(held_out, dataset, setup.test_features, setup.test_labels)
    job = _deployed_job(spec, dataset, folder, job_source)

    federation = LocalFederation(folder, names)
    with console.status("Provisioning the federation's CA and six certificates..."):
        federation.provision(federation="five-hospitals")
    if spec.privacy.enabled:
        _set_budgets(federation, names)
    console.print(
        f"Coordinator on 127.0.0.1:{federation.port} (mutual TLS); each hospital runs its own "
        f"node process that dials out. Logs: {folder / 'logs'}"
    )
    extra = ["--test-data", str(held_out), "--label", _LABEL, "--classes", classes]
    with federation:
        federation.start_coordinator(job, extra=extra)
        for name in names:
            federation.start_node(
                name, data_dir / f"{name}.csv", label=_LABEL, extra=["--classes", classes]
            )
        _follow(console, federation, spec.job.rounds)
        status = federation.wait_for_coordinator(timeout_s=120)
        if status != 0:
            raise FederationError(
                f"The coordinator stopped with status {status}:\n" + federation.tail("coordinator")
            )
    document = json.loads(federation.run.metrics.read_text(encoding="utf-8"))
    deployed = SimulationSetup(
        spec=spec,
        dataset=dataset,
        nodes=deployed_nodes,
        test_features=setup.test_features,
        test_labels=setup.test_labels,
        summary=setup.summary,
        ledgers=_read_ledgers(federation, names) if spec.privacy.enabled else {},
    )
    return history_from_json(document["rounds"]), deployed


_BUDGETS = (10.0, 12.0, 10.0, 16.0, 9.0)  # each hospital's owner decides its own


def _set_budgets(federation: LocalFederation, names: list[str]) -> None:
    """Each hospital's privacy budget, in its kit's node.toml, as its owner would write it."""
    for name, budget in zip(names, _BUDGETS * len(names), strict=False):
        config = federation.node_kit(name) / "node.toml"
        config.write_text(
            config.read_text(encoding="utf-8")
            + f'\n[privacy]\ndataset = "{name}-patients"\nmax_epsilon = {budget}\n',
            encoding="utf-8",
        )


def _read_ledgers(federation: LocalFederation, names: list[str]) -> dict[str, PrivacyLedger]:
    """Each hospital's own ledger, from its kit (read after its node process stopped)."""
    return {name: PrivacyLedger(federation.node_kit(name) / LEDGER_FILE) for name in names}


def _follow(console: Console, federation: LocalFederation, rounds: int) -> None:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("Federated rounds", total=rounds, status="nodes connecting...")
        seen = 0
        while seen < rounds:
            current = federation.wait_for_round(seen + 1, timeout_s=300)
            for number in range(seen + 1, current + 1):
                metrics = federation.round_metrics(number)
                status = (
                    f"acc {metrics.get('central_accuracy', float('nan')):.3f} · "
                    f"loss {metrics.get('central_loss', float('nan')):.3f} · "
                    f"{int(metrics.get('train_nodes', 0))} nodes"
                )
                progress.update(task, completed=number, status=status)
            seen = current
            time.sleep(0.05)
