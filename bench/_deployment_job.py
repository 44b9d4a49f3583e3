"""The job of ``bench/flower_deployment.py``: every file both sides read, and their timelines.

:func:`prepare_job` splits the data as our simulation does (the job of ``flower_compare.py``) and
writes each node's own file, which our node process loads; the Flower clients get the very same
training and local test rows (the rows our node keeps after holding back its local test share) in
one partition file, with the initial parameters our coordinator starts from.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from flower_compare import job_spec, write_initial, write_partition
from sovereign_ai.data import load_file
from sovereign_ai.federation import SimulationSetup, parse_job_spec, prepare_simulation
from sovereign_ai.federation.deployment import node_from_dataset

__all__ = ["PreparedJob", "prepare_job", "timeline"]


@dataclasses.dataclass(frozen=True)
class PreparedJob:
    """Every file both sides read, written once per benchmark."""

    folder: Path
    node_names: list[str]
    class_names: list[str]
    rounds: int
    seed: int
    ours_job: Path  # the deployed job spec (TOML)
    held_out: Path  # the coordinator's held-out rows (NPZ)
    partition: Path  # every node's rows, for the Flower clients (NPZ)
    initial: Path  # the initial parameters, for the Flower ServerApp (NPZ)
    train_rows: list[int]
    flower_config: dict[str, Any]  # the same hyper-parameters, as the Flower App's run config

    def node_file(self, name: str) -> Path:
        """The NPZ file node ``name`` loads (its training and local test rows)."""
        return self.folder / "data" / f"{name}.npz"


def _to_toml(document: dict[str, dict[str, Any]]) -> str:
    # JSON scalars and lists of numbers are valid TOML values.
    lines = []
    for section, values in document.items():
        lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items()), ""]
    return "\n".join(lines)


def prepare_job(folder: Path, *, nodes: int, rounds: int, seed: int) -> PreparedJob:
    """Split the data as our simulation does; write each node's file and the shared inputs."""
    spec = job_spec(nodes=nodes, rounds=rounds, seed=seed, backend="serial")
    setup = prepare_simulation(spec)
    classes = list(setup.dataset.class_names)
    (folder / "data").mkdir(parents=True)
    deployed_nodes = []
    for node in setup.nodes:
        path = folder / "data" / f"{node.node_id}.npz"
        rows = np.concatenate([node.data.train_features, node.data.test_features])  # (n, d)
        labels = np.concatenate([node.data.train_labels, node.data.test_labels])  # (n,)
        np.savez(path, x=rows, y=np.array([classes[i] for i in labels]))
        # Exactly what `sovereign node start --data path --classes ...` holds: the same loader
        # and the same split of local test rows, so the Flower clients get the very same rows.
        own = load_file(path, label="y", classes=classes)
        deployed_nodes.append(node_from_dataset(node.node_id, own, seed=0))
    held_out = folder / "data" / "held_out.npz"
    np.savez(held_out, x=setup.test_features, y=np.array([classes[i] for i in setup.test_labels]))
    deployed = SimulationSetup(
        spec=spec,
        dataset=setup.dataset,
        nodes=deployed_nodes,
        test_features=setup.test_features,
        test_labels=setup.test_labels,
        summary=setup.summary,
    )
    document = spec.model_dump(mode="json", exclude_none=True)
    document.pop("data", None)
    document.pop("simulation", None)
    document["job"]["name"] = f"flower-deployment-{nodes}"
    document["model"].update(num_features=setup.num_features, num_classes=setup.num_classes)
    document["strategy"].update(min_train_nodes=nodes, min_evaluate_nodes=nodes)
    document["coordinator"].update(round_timeout_s=300, wait_for_nodes=nodes, wait_for_nodes_s=300)
    ours_job = folder / "job.toml"
    ours_job.write_text(_to_toml(document), encoding="utf-8")
    deployed_spec = parse_job_spec(document, source=str(ours_job))
    write_partition(deployed, folder / "partition.npz")
    write_initial(deployed_spec, deployed, folder / "initial.npz")
    return PreparedJob(
        folder=folder,
        node_names=[n.node_id for n in setup.nodes],
        class_names=classes,
        rounds=rounds,
        seed=seed,
        ours_job=ours_job,
        held_out=held_out,
        partition=folder / "partition.npz",
        initial=folder / "initial.npz",
        train_rows=[len(n.data.train_labels) for n in deployed_nodes],
        flower_config={
            "data": str(folder / "partition.npz"),
            "init": str(folder / "initial.npz"),
            "seed": seed,
            "hidden": json.dumps(document["model"]["hidden"]),
            "num-classes": setup.num_classes,
            "num-nodes": nodes,
            "rounds": rounds,
            "local-epochs": document["train"]["local_epochs"],
            "batch-size": document["train"]["batch_size"],
            "learning-rate": document["train"]["learning_rate"],
        },
    )


def timeline(t0: float, ends: list[float], done: float) -> dict[str, Any]:
    """Seconds since launch: when each round ended, round 1, the median later round, the end."""
    rounds = [end - t0 for end in ends]
    steps = [b - a for a, b in itertools.pairwise(rounds)]
    return {
        "job_s": done - t0,
        "round_end_s": rounds,
        "first_round_end_s": rounds[0],
        "steady_round_s": statistics.median(steps) if steps else rounds[0],
    }
