"""Run one job in Flower's simulation engine and print its figures as one JSON line.

Started by ``bench/flower_compare.py`` with ``bench/.flower-venv/bin/python`` (never the project's
venv)::

    python bench/_flower_job.py JOB.json

``JOB.json`` names the partition file, our initial parameters and the hyper-parameters. The
simulation runs Flower's Message API (``ServerApp`` + ``ClientApp``, ``flwr.serverapp.strategy.
FedAvg``) on its Ray backend with one CPU per client on this machine's cores. Telemetry (Flower's
and Ray's) is switched off. Ray cannot be held to loopback: it resolves 127.0.0.1 to the address
this machine routes by (a UDP ``connect`` towards a public DNS address, which sends no packet) and
its GCS listens on every interface; ``flower_compare.py`` reports the addresses its processes used.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Before Flower or Ray is imported: nothing leaves this machine.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import warnings

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from _flower_app import app as client_app
from _flower_app import build_mlp, start_fedavg


def main(job_path: str) -> None:
    job = json.loads(open(job_path, encoding="utf-8").read())  # noqa: SIM115
    torch.set_num_threads(1)
    with np.load(job["data"]) as archive:
        test_x = torch.from_numpy(archive["held_out_x"])
        test_y = torch.from_numpy(archive["held_out_y"])
        num_features = int(archive["train_x"].shape[1])
    with np.load(job["init"]) as archive:
        initial = {name: torch.from_numpy(archive[name]) for name in archive.files}
    num_classes = int(job["num_classes"])
    hidden = list(job["hidden"])
    central = build_mlp(num_features, num_classes, hidden)
    figures: dict[str, object] = {"round_end_s": [], "central_accuracy": [], "central_loss": []}

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        # Flower calls this once before round 1 (ours does not evaluate round 0: skipped, only
        # timed) and after every round, which makes it the round clock.
        figures["round_end_s"].append(time.perf_counter())  # type: ignore[union-attr]
        if server_round == 0:
            return None
        central.load_state_dict(arrays.to_torch_state_dict())
        central.eval()
        with torch.no_grad():
            logits = central(test_x)
            loss = float(F.cross_entropy(logits, test_y))
            accuracy = float((logits.argmax(dim=1) == test_y).float().mean())
        figures["central_accuracy"].append(accuracy)  # type: ignore[union-attr]
        figures["central_loss"].append(loss)  # type: ignore[union-attr]
        return MetricRecord({"accuracy": accuracy, "loss": loss})

    server_app = ServerApp()

    @server_app.main()
    def server_main(grid: Grid, context: Context) -> None:
        nodes = int(job["num_nodes"])
        result = start_fedavg(
            grid,
            initial=initial,
            nodes=nodes,
            rounds=int(job["rounds"]),
            settings={
                "data": job["data"],
                "seed": job["seed"],
                "hidden": hidden,
                "num-features": num_features,
                "num-classes": num_classes,
                "local-epochs": job["local_epochs"],
                "batch-size": job["batch_size"],
                "learning-rate": job["learning_rate"],
            },
            central_evaluate=central_evaluate,
        )
        last = result.evaluate_metrics_clientapp.get(int(job["rounds"]))
        figures["federated_accuracy"] = float(last["accuracy"]) if last else None

    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": int(job["cpus"]),
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": "error",
            "log_to_driver": False,
        },
    }
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=int(job["num_nodes"]),
            backend_config=backend_config,
        )
    job_s = time.perf_counter() - start
    # Round r ends at ends[r]; ends[0] is the call before round 1, made as the ServerApp starts,
    # possibly before Ray is up, so it is not a round boundary.
    ends = [t - start for t in figures.pop("round_end_s")[1:]]  # type: ignore[index]
    print(
        json.dumps({"framework": "flower", "job_s": job_s, "round_end_s": ends, **figures}),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
