"""``sovereign demo``: five hospitals train one model without pooling their records.

Uses the breast-cancer dataset scikit-learn ships (569 tumours, 30 features), split non-IID
(Dirichlet α = 0.5 over the diagnosis) across five named hospitals, and compares the federated
model with a model trained on all rows pooled and with each hospital training alone. Every
hospital trains with DP-SGD (ε = 8 for the job, δ = 1e-5, on its own rows), its updates are
summed under secure aggregation, and the ε each spent is read back from its own ledger.
"""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.cli._runtime import use_one_torch_thread
from sovereign_ai.cli.progress import RoundProgress
from sovereign_ai.cli.report import comparison_table, history_to_json, plot_history, write_json
from sovereign_ai.data import published_scaling
from sovereign_ai.federation import (
    BaselineScore,
    JobSpec,
    parse_job_spec,
    prepare_simulation,
    run_simulation,
    train_alone,
    train_centralised,
)
from sovereign_ai.federation.secure_steps import summarise
from sovereign_ai.federation.simulation import SIMULATED_BUDGET
from sovereign_ai.privacy import PrivacyLedger

if TYPE_CHECKING:
    from sovereign_ai.cli._demo_deployed import SiteReport

__all__ = ["DEMO_JOB", "demo", "demo_spec"]

DEMO_JOB = """
[job]
name = "five-hospitals"
rounds = 20
seed = 7

[model]
name = "mlp"
hidden = [32]
# input_mean and input_std: from the dataset's published ranges (its data dictionary), added
# by demo_spec, so that no statistics of a hospital's rows leave it

[strategy]
name = "fedavg"
min_train_nodes = 3

[train]
local_epochs = 2
batch_size = 16
learning_rate = 0.2

[coordinator]
standardize_features = false

[data]
dataset = "breast_cancer"
partition = "dirichlet"
alpha = 0.5
nodes = 5
node_names = ["northgate", "riverside", "st-elena", "lakeview", "hillcrest"]
test_fraction = 0.25

[secure_aggregation]
enabled = true

[privacy]
mode = "dpsgd"
target_epsilon = 8.0
clip = 1.0

[simulation]
backend = "serial"
"""


def demo_spec(*, quick: bool = False) -> JobSpec:
    """The demo's job; ``quick`` runs 3 rounds instead of 20."""
    document = tomllib.loads(DEMO_JOB)
    if quick:
        document["job"]["rounds"] = 3
    means, spreads = published_scaling(document["data"]["dataset"])
    document["model"].update(input_mean=list(means), input_std=list(spreads))
    return parse_job_spec(document, source="demo job")


def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="3 rounds instead of 20 (for tests).")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json and the accuracy/loss plot.")
    ] = Path("demo-output"),
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Simulate the hospitals inside this process instead of running a coordinator "
            "and five node processes over gRPC with mutual TLS.",
        ),
    ] = False,
) -> None:
    """Five hospitals train one tumour classifier together; no hospital's rows leave it.

    By default the coordinator and each hospital run as separate processes talking gRPC over
    mutual TLS on 127.0.0.1, with certificates from a freshly provisioned federation CA. Prints
    each hospital's share of the data, a progress bar per round, then a table comparing the
    federated model with pooled (centralised) training and each hospital alone, all scored on the
    same held-out patients. Writes metrics.json and accuracy_loss.png to --out.
    """
    console = Console()
    with friendly_errors():
        use_one_torch_thread()
        spec = demo_spec(quick=quick)
        setup = prepare_simulation(spec)
        names = [node.node_id for node in setup.nodes]
        console.rule("[bold]Five hospitals, one model, no pooled records")
        console.print(
            f"Dataset: {setup.dataset.name} ({setup.dataset.num_examples} rows, "
            f"{setup.num_features} features); {len(setup.test_labels)} patients held out for "
            "scoring. Each hospital's share (non-IID, Dirichlet α = 0.5):"
        )
        console.print(setup.summary.to_table())
        out.mkdir(parents=True, exist_ok=True)
        if in_process:
            from sovereign_ai.federation.registration import register_simulated_model

            with RoundProgress(console, label="Federated rounds") as progress:
                history, setup = run_simulation(spec, observer=progress, setup=setup)
            register_simulated_model(out / "registry", history, setup)
        else:
            from sovereign_ai.cli._demo_deployed import run_deployed_demo

            folder = out / "federation"
            if folder.exists():
                shutil.rmtree(folder)
            history, setup = run_deployed_demo(
                console, spec, setup, folder=folder, job_source=DEMO_JOB, registry=out / "registry"
            )
        last = history.rounds[-1].metrics
        federated = BaselineScore(
            name="federated",
            accuracy=last["central_accuracy"],
            loss=last["central_loss"],
            num_train_examples=sum(len(n.data.train_labels) for n in setup.nodes),
        )
        with console.status("Training the pooled and hospital-alone baselines..."):
            centralised = train_centralised(setup)
            alone = train_alone(setup)
        console.print(comparison_table(federated, centralised, alone))
        write_json(
            out / "metrics.json",
            {
                "job_id": spec.job_id,
                "mode": "in-process" if in_process else "grpc-processes",
                "rounds": history_to_json(history),
                "comparison": {
                    s.name: {"accuracy": s.accuracy, "loss": s.loss, "rows": s.num_train_examples}
                    for s in [federated, centralised, *alone]
                },
            },
        )
        plot_history(
            history,
            out / "accuracy_loss.png",
            centralised=centralised,
            title="Five hospitals: federated model on held-out patients",
        )
    gap = (federated.accuracy - centralised.accuracy) * 100
    console.print(
        f"The federated model scores {gap:+.1f} points against pooling every record, "
        "and not one record left its hospital."
    )
    if spec.secure_aggregation.enabled:
        cohort = max(len(r.answered) for r in history.rounds)
        protocol = summarise(spec.secure_aggregation, len(setup.nodes))
        statistics = (
            " and of the feature statistics" if spec.coordinator.standardize_features else ""
        )
        console.print(
            f"Secure aggregation: {protocol.describe()}. The coordinator saw only the sum of each "
            f"round's updates (of up to {cohort} hospitals){statistics}, never one hospital's "
            "update or row count."
        )
    if spec.privacy.enabled:
        console.print(
            f"Differential privacy: every hospital trained with {_mode_name(spec.privacy.mode)} "
            "for "
            f"ε = {spec.privacy.target_epsilon or 0:g} over the whole job (δ = "
            f"{spec.privacy.delta:g}), calibrated for its own rows; the inputs were scaled by the "
            "dataset's published ranges, so no statistics of any hospital's rows left it. The "
            "pooled and alone baselines above are trained without DP."
        )
        console.print(privacy_table(setup.ledgers, spec))
    if not in_process:
        from sovereign_ai.cli._demo_deployed import site_reports

        console.print(governance_table(site_reports(out / "federation", names)))
    signed = "unsigned: simulated" if in_process else "passport signed by the coordinator"
    console.print(
        f"Registry: [bold]{(out / 'registry').resolve()}[/] ({signed}; 'sovereign registry list "
        f"--registry {out / 'registry'}')"
    )
    console.print(f"Metrics: [bold]{(out / 'metrics.json').resolve()}[/]")
    console.print(f"Plot:    [bold]{(out / 'accuracy_loss.png').resolve()}[/]")


def privacy_table(ledgers: Mapping[str, PrivacyLedger], spec: JobSpec) -> Table:
    """ε spent by each hospital on this job, read from that hospital's own ledger."""
    table = Table(
        title=f"Differential privacy ({spec.privacy.mode}): each hospital's own ledger",
        caption="ε over all jobs on the dataset, composed by the node itself (RDP, δ as shown)",
    )
    for column in ("hospital", "dataset", "ε spent", "budget", "δ"):
        table.add_column(column, justify="left" if column in ("hospital", "dataset") else "right")
    for hospital, ledger in sorted(ledgers.items()):
        for dataset in ledger.datasets():
            budget = ledger.budget(dataset)
            if budget is None:
                continue
            simulated = budget.max_epsilon >= SIMULATED_BUDGET
            table.add_row(
                hospital,
                dataset,
                f"{ledger.spent(dataset):.2f}",
                "(simulated)" if simulated else f"{budget.max_epsilon:g}",
                f"{budget.delta:g}",
            )
    return table


def governance_table(reports: Sequence[SiteReport]) -> Table:
    """What left each hospital, from its own audit log, and what its policy decided."""
    table = Table(
        title="What left each hospital, from its own signed audit log",
        caption="coordinator's log: the hospital's answers it recorded receiving, same SHA-256; "
        "check one yourself: sovereign audit verify --kit <out>/federation/kits/nodes/<hospital>",
    )
    columns = ("hospital", "policy", "calls out", "bytes out", "own log", "coordinator's log")
    for column in columns:
        table.add_column(column, justify="right" if column.endswith("out") else "left")
    for report in reports:
        table.add_row(
            report.hospital, report.policy, str(report.messages), f"{report.bytes_out:,}",
            report.audit, report.matched,
        )  # fmt: skip
    return table


def _mode_name(mode: str) -> str:
    return "DP-SGD" if mode == "dpsgd" else f"client-level DP ({mode} noise)"
