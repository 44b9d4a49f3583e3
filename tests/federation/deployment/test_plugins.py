"""A site's own model as a plug-in package: installed with pip, used over gRPC by real processes.

The example package ``examples/plugins/hospital_models`` (model ``ward_net``, strategy
``equal_sites``) is really built and installed, offline, into a folder that only the processes
meant to have it see on their ``PYTHONPATH``: no code travels with the job. A node without it
declines its tasks, saying what to install, and the others finish the job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from sovereign_ai.core import Parameters, Stage, Task
from sovereign_ai.data import load_file
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import InMemoryTransport, load_job_spec, parse_job_spec
from sovereign_ai.federation.assembly import stage_config
from sovereign_ai.federation.deployment import node_from_dataset, run_coordinator
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.federation.node import LocalData, Node

from .conftest import CLASSES, LABEL, start_nodes

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "plugins" / "hospital_models"
SITES = ("north", "south")  # with the plug-in installed; "central" goes without
PYTHONPATH = os.environ.get("PYTHONPATH")

# What ward_net(width=16, depth=1) is made of, behind the framework's input standardisation.
WARD_NET_TENSORS = [
    "input_mean",
    "input_std",
    "body.embed.weight",
    "body.embed.bias",
    "body.blocks.0.norm.weight",
    "body.blocks.0.norm.bias",
    "body.blocks.0.linear.weight",
    "body.blocks.0.linear.bias",
    "body.head.weight",
    "body.head.bias",
]

JOB = """
[job]
name = "ward-plugin"
rounds = 2
seed = 5

[model]
name = "ward_net"
plugin = "hospital-models"
width = 16
depth = 1
num_features = 30
num_classes = 2

[strategy]
name = "equal_sites"
min_train_nodes = 2

[train]
local_epochs = 1
batch_size = 16
learning_rate = 0.05

[coordinator]
round_timeout_s = 120
wait_for_nodes = 3
wait_for_nodes_s = 120
standardize_features = false
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package built and installed with pip into a folder of its own, offline."""
    folder = tmp_path_factory.mktemp("plugin")
    source = folder / "source"  # a copy: building writes build/ and *.egg-info into the source
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = folder / "site-packages"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (target / "hospital_models-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture
def with_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test process and the processes it starts see the installed plug-in."""
    monkeypatch.syspath_prepend(str(plugin_site))
    paths = [str(plugin_site), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    yield plugin_site


def write_job(folder: Path) -> Path:
    path = folder / "job.toml"
    path.write_text(JOB)
    return path


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.xdist_group("processes")
def test_a_federation_trains_a_plugin_model_over_grpc(
    with_plugin: Path,
    federation: LocalFederation,
    node_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = write_job(tmp_path)
    federation.start_coordinator(job)
    start_nodes(federation, node_files, names=SITES)
    if PYTHONPATH is None:  # a third site that has not installed the plug-in
        monkeypatch.delenv("PYTHONPATH")
    else:
        monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    start_nodes(federation, node_files, names=("central",))
    assert federation.wait_for_coordinator(timeout_s=300) == 0, federation.tail("coordinator")

    final = Parameters.from_bytes(federation.run.model.read_bytes())
    assert list(final) == WARD_NET_TENSORS
    assert final["body.embed.weight"].shape == (16, 30)
    install_hint = (
        "This node does not have model 'ward_net'; install the plug-in package 'hospital-models' "
        "(entry point group sovereign_ai.models) on this machine."
    )
    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    assert [r["answered"] for r in rounds] == [list(SITES)] * 2
    for record in rounds:
        assert install_hint in record["failures"]["central"], record
    # The same job in one process, from the same files: the deployment changed nothing. Torch on
    # one thread, as in every `sovereign` process: layer norm sums in another order on two.
    spec = load_job_spec(job)
    # Two sites here: waiting for the deployment's three would cost wait_for_nodes_s per round
    # (an operational setting, outside the job's digest and its model).
    coordinator = spec.coordinator.model_copy(update={"wait_for_nodes": 0})
    spec = spec.model_copy(update={"coordinator": coordinator})
    nodes = [
        node_from_dataset(
            name, load_file(node_files[name], label=LABEL, classes=CLASSES.split(","))
        )
        for name in SITES
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with InMemoryTransport(nodes, max_workers=1) as transport:
            history = run_coordinator(spec, transport=transport, state_dir=tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
    assert history.parameters == final


def test_the_job_carries_the_plugin_name_and_a_node_without_it_says_what_to_install(
    with_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_job_spec(_job_document())
    config = stage_config(spec, num_features=30, num_classes=2)
    assert (config["model"], config["model_plugin"]) == ("ward_net", "hospital-models")

    monkeypatch.undo()  # from here on, this process is a site without the plug-in
    node = Node("north", data=_rows(num_features=30))
    task = Task(
        job_id=spec.job_id,
        round_number=1,
        stage=Stage.TRAIN,
        node_id="north",
        parameters=Parameters({"w": np.zeros(2, dtype=np.float32)}),
        config=config,
    )
    with pytest.raises(ConfigError) as caught:
        node.handle(task)
    assert str(caught.value) == (
        "This node does not have model 'ward_net'; install the plug-in package 'hospital-models' "
        "(entry point group sovereign_ai.models) on this machine."
    )


def test_a_node_is_told_to_install_a_plugin_even_when_the_job_does_not_name_it() -> None:
    node = Node("north", data=_rows(num_features=4))
    task = Task(
        job_id="j",
        round_number=1,
        stage=Stage.EVALUATE,
        node_id="north",
        parameters=Parameters({"w": np.zeros(2, dtype=np.float32)}),
        config={"model": "ward_net", "model_options": "{}", "num_features": 4, "num_classes": 2},
    )
    with pytest.raises(ConfigError, match="install the plug-in package that provides it") as caught:
        node.handle(task)
    assert "does not have model 'ward_net'" in str(caught.value)
    assert "[model] plugin" in str(caught.value)


def test_a_coordinator_without_the_plugin_refuses_the_job_naming_the_package() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_spec(_job_document())
    assert str(caught.value) == (
        "This machine does not have model 'ward_net'; install the plug-in package "
        "'hospital-models' (entry point group sovereign_ai.models) on it."
    )


def test_the_plugin_name_is_checked_and_leaves_the_job_id_alone(with_plugin: Path) -> None:
    document = _job_document()
    with pytest.raises(ConfigError, match=r"'model\.plugin'"):
        parse_job_spec({**document, "model": {**document["model"], "plugin": "not a package"}})
    without = {**document, "model": {k: v for k, v in document["model"].items() if k != "plugin"}}
    assert parse_job_spec(without).job_id == parse_job_spec(document).job_id
    assert "model_plugin" not in stage_config(
        parse_job_spec(without), num_features=30, num_classes=2
    )


def _job_document() -> dict[str, dict[str, object]]:
    import tomllib

    return tomllib.loads(JOB)


def _rows(*, num_features: int) -> LocalData:
    rng = np.random.default_rng(0)
    return LocalData(
        train_features=rng.normal(size=(8, num_features)).astype(np.float32),
        train_labels=np.arange(8, dtype=np.int64) % 2,
        test_features=rng.normal(size=(4, num_features)).astype(np.float32),
        test_labels=np.arange(4, dtype=np.int64) % 2,
    )
