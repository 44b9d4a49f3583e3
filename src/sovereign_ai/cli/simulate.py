"""``sovereign simulate JOB.toml``: run a job with simulated nodes on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.cli._runtime import use_one_torch_thread
from sovereign_ai.cli.progress import RoundProgress
from sovereign_ai.cli.registry import DEFAULT_REGISTRY, RegistryOption
from sovereign_ai.cli.report import (
    complete_history,
    history_to_json,
    plot_history,
    write_json,
)
from sovereign_ai.federation import RunFolder, load_job_spec, run_simulation

__all__ = ["simulate"]


def simulate(
    job: Annotated[Path, typer.Argument(help="Job spec TOML file (see docs/job-spec.md).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder of this job's run: state/, metrics.json, plot.png and "
            "model.safetensors (the same layout as a deployed coordinator's). Default: "
            "runs/<job name>.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a run that was stopped, from its last completed round in --out.",
        ),
    ] = False,
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """Run a federated job with simulated nodes, each holding one partition of the data.

    Every round is saved to OUT/state before the next begins, so a killed run continues with
    --resume and ends with the same model as an uninterrupted one. The final model is written to
    OUT/model.safetensors and registered, with its passport (unsigned: a simulation has no
    federation identity), as the next version of the job's name in --registry.
    """
    console = Console()
    with friendly_errors():
        use_one_torch_thread()
        spec = load_job_spec(job)
        run = RunFolder(out) if out is not None else RunFolder.for_job(spec.job.name)
        run.path.mkdir(parents=True, exist_ok=True)
        with RoundProgress(console, label=f"{spec.job.name}") as progress:
            history, setup = run_simulation(
                spec, state_dir=run.state, resume=resume, observer=progress
            )
    console.print(setup.summary.to_table())
    if history.resumed_from:
        console.print(f"Resumed after round {history.resumed_from}.")
        if not history.rounds:
            console.print(f"Nothing left to run: all {spec.job.rounds} rounds were done.")
    history = complete_history(history, run.state)
    last = history.rounds[-1].metrics if history.rounds else {}
    if "central_accuracy" in last:
        console.print(
            f"Final model: accuracy {last['central_accuracy']:.3f}, "
            f"loss {last['central_loss']:.3f} on the held-out test set."
        )
    write_json(run.metrics, {"job_id": spec.job_id, "rounds": history_to_json(history)})
    if history.rounds:
        plot_history(history, run.plot, title=spec.job.name)
    if history.parameters is not None:
        console.print(
            f"Final model: {run.write_model(history.parameters).resolve()}", soft_wrap=True
        )
        with friendly_errors():
            from sovereign_ai.federation.registration import register_simulated_model

            version = register_simulated_model(registry, history, setup)
        console.print(
            f"Registered as {version.reference} in {registry} (unsigned; 'sovereign registry "
            f"show {version.reference}' prints its passport).",
            soft_wrap=True,
        )
    console.print(f"Wrote {run.metrics} and {run.plot}")
