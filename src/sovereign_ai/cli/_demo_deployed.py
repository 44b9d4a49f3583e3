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
from dataclasses import dataclass
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
from sovereign_ai.governance import read_entries, verify_log
from sovereign_ai.governance.audit_log import AUDIT_FILE
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
    console: Console,
    spec: JobSpec,
    setup: SimulationSetup,
    *,
    folder: Path,
    job_source: str,
    registry: Path,
) -> tuple[FederationHistory, SimulationSetup]:
    """Run the demo job as processes; return its history and the setup the nodes really held.

    The coordinator registers the final model in ``registry``, its passport signed with its key.
    """
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
    _set_policies(federation, names)
    console.print(
        f"Coordinator on 127.0.0.1:{federation.port} (mutual TLS); each hospital runs its own "
        f"node process that dials out. Logs: {folder / 'logs'}"
    )
    extra = ["--test-data", str(held_out), "--label", _LABEL, "--classes", classes]
    extra += ["--registry", str(registry.resolve())]
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


_POLICY = """\
# What this hospital lets leave (docs/node-policy.md), as its data protection officer wrote it.
require_secure_aggregation = true
required_privacy_modes = ["dpsgd"]
max_epsilon_per_job = 8.5
min_cohort = 3
allowed_models = ["mlp"]
max_rounds = 50

[outputs]
train = true
train_metrics = false
statistics = false
evaluate = ["accuracy", "loss"]
"""


def _set_policies(federation: LocalFederation, names: list[str]) -> None:
    """Each hospital's policy.toml in its kit: what may leave it, checked by its own node."""
    for name in names:
        (federation.node_kit(name) / "policy.toml").write_text(_POLICY, encoding="utf-8")


@dataclass(frozen=True)
class SiteReport:
    """What one hospital's own records say of the run: its audit log and its policy's word."""

    hospital: str
    messages: int
    bytes_out: int
    policy: str
    audit: str
    matched: str


def site_reports(folder: Path, names: list[str]) -> list[SiteReport]:
    """Each hospital's report, read from its kit after its node stopped, and paired with the
    coordinator's own log: how many of the hospital's answers the coordinator recorded taking
    off the wire with the very digest the hospital recorded sending."""
    coordinator_log = folder.resolve() / "kits" / "coordinator" / AUDIT_FILE
    wire = [e.body for e in read_entries(coordinator_log) if e.kind == "wire_received"]
    reports = []
    for name in names:
        path = folder.resolve() / "kits" / "nodes" / name / AUDIT_FILE
        check = verify_log(path)
        entries = read_entries(path)
        sent = [e for e in entries if e.kind == "egress"]
        answers = {
            (e.body["sha256"], e.body["bytes"]) for e in sent if e.body["rpc"] == "PushResult"
        }
        seen = {(b["sha256"], b["bytes"]) for b in wire if b["from"] == name}
        decisions = sorted({e.kind.removeprefix("policy.job_").removeprefix("policy.")
                            for e in entries if e.kind.startswith("policy.")})  # fmt: skip
        audit = (
            f"verifies, {check.entries} signed"
            if check.ok and check.signed_through == check.entries
            else (f"verifies, {check.entries - check.signed_through} unsigned" if check.ok
                  else f"FAILS: {check.problem}")
        )  # fmt: skip
        reports.append(
            SiteReport(
                hospital=name,
                messages=len(sent),
                bytes_out=sum(int(e.body.get("bytes", 0)) for e in sent),
                policy=", ".join(decisions) or "no decision recorded",
                audit=audit,
                matched=f"{len(answers & seen)}/{len(answers)} answers",
            )
        )
    return reports


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
