"""The Flower side of ``bench/flower_compare.py``: the same job as ours, written for Flower.

Runs only inside ``bench/.flower-venv`` (Flower is never a dependency of the project). Ray's
workers import this module by name (the driver puts ``bench/`` on their ``PYTHONPATH``), so the
per-process data cache below survives from one message to the next, as a Flower user's
``load_data`` cache would.

Everything that decides the numbers is the same as in ``sovereign_ai``:

* the data: every node's rows come from the ``.npz`` file ``flower_compare.py`` wrote from our own
  :func:`~sovereign_ai.federation.prepare_simulation`, so partitions are identical row for row;
* the model: the same module tree as ``create_model("mlp", ...)`` (a fixed input standardisation
  in front of Linear/ReLU layers; state names match), loaded with *our* initial parameters, whose
  ``input_mean``/``input_std`` hold the federation-wide statistics our coordinator computes;
* the local training loop: the loop of ``sovereign_ai.learning.train`` (SGD, the same
  per-epoch shuffling from a ``torch.Generator`` seeded by the same per-round, per-node seed,
  batches by indexing, one accuracy pass at the end).

What differs is only the framework around it: Flower's Message API, its ``FedAvg`` and its Ray
simulation engine.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812  # torch's conventional alias
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

_DATA: dict[str, dict[str, np.ndarray]] = {}


def node_data(path: str) -> dict[str, np.ndarray]:
    """The partition file, read once per process."""
    if path not in _DATA:
        with np.load(path) as archive:
            _DATA[path] = {name: archive[name] for name in archive.files}
    return _DATA[path]


def node_rows(path: str, partition: int, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One node's ``train`` or ``test`` rows: ``(n, d)`` float32 and ``(n,)`` int64 tensors."""
    data = node_data(path)
    offsets = data[f"{part}_offsets"]  # (num_nodes + 1,)
    start, stop = int(offsets[partition]), int(offsets[partition + 1])
    x = torch.from_numpy(np.ascontiguousarray(data[f"{part}_x"][start:stop]))
    y = torch.from_numpy(np.ascontiguousarray(data[f"{part}_y"][start:stop]))
    return x, y


def node_seed(seed: int, round_number: int, node_id: str) -> int:
    """The same per-round training seed as ``sovereign_ai.federation.node_seed``."""
    digest = hashlib.sha256(f"{seed}:{round_number}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Standardized(nn.Module):
    """``(x - input_mean) / input_std`` in front of a body, like ``sovereign_ai``'s model."""

    def __init__(self, body: nn.Module, num_features: int) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(num_features))
        self.register_buffer("input_std", torch.ones(num_features))
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.input_mean) / self.input_std)  # (n, num_classes)


def build_mlp(num_features: int, num_classes: int, hidden: list[int]) -> nn.Module:
    """The module tree of ``create_model("mlp", hidden=...)``; weights come from the state."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = num_features
    for index, size in enumerate(hidden):
        layers[f"hidden_{index}"] = nn.Linear(width, size)
        layers[f"relu_{index}"] = nn.ReLU()
        width = size
    layers["output"] = nn.Linear(width, num_classes)
    return Standardized(nn.Sequential(layers), num_features)


_MODELS: dict[tuple[int, int, str], nn.Module] = {}


def model_for(config: Any) -> nn.Module:
    """One model object per shape per process (as our node keeps one per model name)."""
    key = (int(config["num-features"]), int(config["num-classes"]), str(config["hidden"]))
    if key not in _MODELS:
        _MODELS[key] = build_mlp(key[0], key[1], json.loads(key[2]))
    return _MODELS[key]


def train_locally(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> tuple[float, float]:
    """The loop of ``sovereign_ai.learning.train`` with plain SGD; returns (loss, accuracy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    n = int(x.shape[0])
    model.train()
    loss_sum = 0.0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)  # (n,)
        loss_sum = 0.0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]  # (b,)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * int(batch.shape[0])
    mean_loss = loss_sum / n
    if not math.isfinite(mean_loss):
        raise RuntimeError(f"training diverged (loss {mean_loss})")
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())
    return mean_loss, accuracy


def _limit_threads() -> None:
    # One intra-op thread per worker, as our simulation does: Ray gives each client one CPU.
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the global model, train on this node's rows, send the new weights back."""
    _limit_threads()
    config = msg.content["config"]
    partition = int(context.node_config["partition-id"])
    x, y = node_rows(str(config["data"]), partition, "train")
    model = model_for(config)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss, accuracy = train_locally(
        model,
        x,
        y,
        epochs=int(config["local-epochs"]),
        batch_size=int(config["batch-size"]),
        learning_rate=float(config["learning-rate"]),
        seed=node_seed(int(config["seed"]), int(config["server-round"]), f"node-{partition:03d}"),
    )
    metrics = MetricRecord(
        {"train_loss": loss, "train_accuracy": accuracy, "num-examples": int(x.shape[0])}
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Score the global model on this node's local test rows."""
    _limit_threads()
    config = msg.content["config"]
    partition = int(context.node_config["partition-id"])
    x, y = node_rows(str(config["data"]), partition, "test")
    metrics: dict[str, float | int] = {"loss": 0.0, "accuracy": 0.0, "num-examples": 0}
    if x.shape[0] > 0:
        model = model_for(config)
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        model.eval()
        with torch.no_grad():
            logits = model(x)
            metrics = {
                "loss": float(F.cross_entropy(logits, y)),
                "accuracy": float((logits.argmax(dim=1) == y).float().mean()),
                "num-examples": int(x.shape[0]),
            }
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def start_fedavg(
    grid: Any,
    *,
    initial: Any,
    nodes: int,
    rounds: int,
    settings: dict[str, Any],
    central_evaluate: Any,
) -> Any:
    """Run Flower's FedAvg over every node each round, with the compared job's client settings.

    ``settings`` holds ``data``, ``seed``, ``hidden`` (a list), ``num-features``,
    ``num-classes``, ``local-epochs``, ``batch-size`` and ``learning-rate``; both the simulation
    (``_flower_job.py``) and the deployment (``_flower_deploy_app.py``) ServerApps call this.
    """
    from flwr.app import ConfigRecord
    from flwr.serverapp.strategy import FedAvg

    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=nodes,
        min_evaluate_nodes=nodes,
        min_available_nodes=nodes,
    )
    config = ConfigRecord(
        {
            "data": str(settings["data"]),
            "seed": int(settings["seed"]),
            "hidden": json.dumps(settings["hidden"]),
            "num-features": int(settings["num-features"]),
            "num-classes": int(settings["num-classes"]),
            "local-epochs": int(settings["local-epochs"]),
            "batch-size": int(settings["batch-size"]),
            "learning-rate": float(settings["learning-rate"]),
        }
    )
    return strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial),
        num_rounds=rounds,
        train_config=config,
        evaluate_config=ConfigRecord(dict(config)),
        evaluate_fn=central_evaluate,
    )
