"""The ServerApp of ``bench/flower_deployment.py``: the job of ``_flower_job.py``, as a Flower App.

Runs only inside Flower's processes (``bench/.flower-venv``; Flower is never a dependency of the
project). ``flower_deployment.py`` copies this file and ``_flower_app.py`` (the ClientApp) into a
generated Flower App project, whose ``pyproject.toml`` names ``_flower_deploy_app:app`` as the
ServerApp and ``_flower_app:app`` as the ClientApp; ``flwr run`` bundles the project into a FAB and
submits it to the SuperLink, which runs this ServerApp in a ``flwr-serverapp`` process.

The strategy, its settings and the central evaluation are those of the simulation comparison
(``_flower_job.py``): ``flwr.serverapp.strategy.FedAvg`` over every node in every round, our
initial parameters, the held-out rows scored after every round. The run config
(``[tool.flwr.app.config]``) names the partition file, the initial parameters, the
hyper-parameters and ``figures``: the JSON file this app writes when the job is done, with the
wall-clock time (``time.time()``, comparable across this machine's processes) at which each round
ended and the final model was available, read by ``flower_deployment.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812  # torch's conventional alias
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from _flower_app import build_mlp, start_fedavg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg for ``rounds`` rounds and write the figures file."""
    started_unix = time.time()
    torch.set_num_threads(1)  # one intra-op thread, as every process of both sides
    config = context.run_config
    with np.load(str(config["data"])) as archive:
        test_x = torch.from_numpy(archive["held_out_x"])  # (rows, d)
        test_y = torch.from_numpy(archive["held_out_y"])  # (rows,)
        num_features = int(archive["train_x"].shape[1])
    with np.load(str(config["init"])) as archive:
        initial = {name: torch.from_numpy(archive[name]) for name in archive.files}
    num_classes = int(config["num-classes"])
    hidden = json.loads(str(config["hidden"]))
    central = build_mlp(num_features, num_classes, hidden)
    round_end_unix: list[float] = []
    accuracies: list[float] = []
    losses: list[float] = []

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        # Called once before round 1 (not a round end: skipped) and after every round.
        if server_round == 0:
            return None
        central.load_state_dict(arrays.to_torch_state_dict())
        central.eval()
        with torch.no_grad():
            logits = central(test_x)  # (rows, num_classes)
            loss = float(F.cross_entropy(logits, test_y))
            accuracy = float((logits.argmax(dim=1) == test_y).float().mean())
        round_end_unix.append(time.time())
        accuracies.append(accuracy)
        losses.append(loss)
        return MetricRecord({"accuracy": accuracy, "loss": loss})

    nodes = int(config["num-nodes"])
    rounds = int(config["rounds"])
    result = start_fedavg(
        grid,
        initial=initial,
        nodes=nodes,
        rounds=rounds,
        settings={
            "data": config["data"],
            "seed": config["seed"],
            "hidden": hidden,
            "num-features": num_features,
            "num-classes": num_classes,
            "local-epochs": config["local-epochs"],
            "batch-size": config["batch-size"],
            "learning-rate": config["learning-rate"],
        },
        central_evaluate=central_evaluate,
    )
    done_unix = time.time()  # the final model is in `result.arrays` from here on
    last = result.evaluate_metrics_clientapp.get(rounds)
    figures = {
        "framework": "flower-deployment",
        "serverapp_started_unix": started_unix,
        "round_end_unix": round_end_unix,
        "done_unix": done_unix,
        "central_accuracy": accuracies,
        "central_loss": losses,
        "federated_accuracy": float(last["accuracy"]) if last else None,
    }
    path = Path(str(config["figures"]))
    path.with_suffix(".tmp").write_text(json.dumps(figures), encoding="utf-8")
    path.with_suffix(".tmp").replace(path)
