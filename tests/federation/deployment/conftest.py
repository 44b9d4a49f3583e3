"""A small federation of real processes: three nodes with CSV files, and a job for them."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.data import load_builtin, partition
from sovereign_ai.federation.local_processes import LocalFederation

NODES = ("north", "south", "central")
LABEL = "diagnosis"
CLASSES = "malignant,benign"

JOB = """
[job]
name = "faults"
rounds = {rounds}
seed = 17

[model]
name = "mlp"
hidden = [256, 256]
num_features = 30
num_classes = 2

[strategy]
name = "fedavgm"
server_momentum = 0.5
min_train_nodes = {min_nodes}

[train]
local_epochs = {epochs}
batch_size = 8
learning_rate = 0.02

[coordinator]
round_timeout_s = {timeout}
max_round_attempts = 2
wait_for_nodes = {wait}
wait_for_nodes_s = {wait_s}
"""


def write_job(
    folder: Path,
    *,
    rounds: int = 6,
    min_nodes: int = 2,
    epochs: int = 3,
    timeout: float = 60,
    wait: int = 3,
    wait_s: float = 60,
) -> Path:
    path = folder / "job.toml"
    path.write_text(
        JOB.format(
            rounds=rounds,
            min_nodes=min_nodes,
            epochs=epochs,
            timeout=timeout,
            wait=wait,
            wait_s=wait_s,
        )
    )
    return path


@pytest.fixture(scope="session")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One CSV per node from an IID split of the breast-cancer data (labels as class names)."""
    folder = tmp_path_factory.mktemp("node-data")
    dataset = load_builtin("breast_cancer")
    shares = partition(dataset, scheme="iid", num_nodes=len(NODES), seed=4)
    files = {}
    for name, rows in zip(NODES, shares, strict=True):
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*dataset.feature_names, LABEL])
            for row in rows:
                values = [repr(float(v)) for v in np.asarray(dataset.features[row])]
                writer.writerow([*values, dataset.class_names[int(dataset.labels[row])]])
        files[name] = path
    return files


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path / "federation", NODES) as running:
        running.provision()
        yield running


def start_nodes(
    federation: LocalFederation, files: dict[str, Path], names: tuple[str, ...] = NODES
) -> None:
    for name in names:
        federation.start_node(name, files[name], label=LABEL, extra=["--classes", CLASSES])
