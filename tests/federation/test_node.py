"""What a node refuses to do, seen through Node.handle: the reason is in the error."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pytest

from sovereign_ai.core import ConfigValue, Stage, Task
from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.federation import LocalData, Node, initial_parameters, parse_job_spec
from sovereign_ai.federation import stage_config as job_stage_config

WIDTH, CLASSES = 4, 2
JOB = {
    "job": {"name": "node-test", "rounds": 1, "seed": 3},
    "model": {"name": "logreg"},
    "strategy": {"name": "fedavg", "min_train_nodes": 1},
}


class ForeignStage(StrEnum):
    """A stage name no built-in node handles (as a newer coordinator might send)."""

    SHARE_KEYS = "share-keys"


def site(node_id: str = "site-a") -> Node:
    rng = np.random.default_rng(0)
    data = LocalData(
        train_features=rng.standard_normal((12, WIDTH)).astype(np.float32),
        train_labels=np.arange(12, dtype=np.int64) % CLASSES,
        test_features=rng.standard_normal((4, WIDTH)).astype(np.float32),
        test_labels=np.arange(4, dtype=np.int64) % CLASSES,
    )
    return Node(node_id, data=data)


def task(
    stage: Stage | ForeignStage = Stage.TRAIN,
    *,
    node_id: str = "site-a",
    width: int = WIDTH,
    **settings: ConfigValue,
) -> Task:
    spec = parse_job_spec(JOB)
    config = job_stage_config(spec, num_features=width, num_classes=CLASSES) | settings
    start = initial_parameters(spec, num_features=width, num_classes=CLASSES)
    return Task("node-test", 1, stage, node_id, start, config)  # type: ignore[arg-type]


BUILT_IN = [Stage.STATISTICS, Stage.TRAIN, Stage.EVALUATE]  # a plain node's stages


@pytest.mark.parametrize("stage", BUILT_IN)
def test_a_proper_task_of_each_stage_is_answered_for_this_node(stage: Stage) -> None:
    result = site().handle(task(stage))
    assert (result.node_id, result.stage, result.round_number) == ("site-a", stage, 1)
    assert result.num_examples > 0


def test_a_task_addressed_to_another_node_is_refused() -> None:
    with pytest.raises(ConfigError, match="reached node 'site-a'"):
        site().handle(task(node_id="site-b"))


def test_a_stage_the_node_does_not_handle_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"does not handle stage .*share-keys"):
        site().handle(task(ForeignStage.SHARE_KEYS))


@pytest.mark.parametrize("stage", [Stage.TRAIN, Stage.EVALUATE])
def test_model_options_that_are_not_json_are_refused(stage: Stage) -> None:
    with pytest.raises(ConfigError, match="model options are not JSON"):
        site().handle(task(stage, model_options="{hidden: [8]"))


@pytest.mark.parametrize("options", ["[8, 8]", '"wide"', "3"])
def test_model_options_that_are_not_a_json_object_are_refused(options: str) -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        site().handle(task(model_options=options))


def test_a_model_the_node_does_not_have_is_refused_naming_the_plugin_to_install() -> None:
    with pytest.raises(ConfigError, match=r"does not have model 'resnet-9000'.*'ward-models'"):
        site().handle(task(model="resnet-9000", model_plugin="ward-models"))


@pytest.mark.parametrize("stage", BUILT_IN)
def test_a_job_of_another_feature_width_is_refused(stage: Stage) -> None:
    with pytest.raises(DataError, match=rf"expects {WIDTH + 1} feature columns .* has {WIDTH}"):
        site().handle(task(stage, width=WIDTH + 1))


def test_a_refused_task_leaves_the_node_able_to_answer_the_next() -> None:
    node = site()
    with pytest.raises(ConfigError, match="must be a JSON object"):
        node.handle(task(model_options="[]"))
    update = node.handle(task()).parameters
    assert set(update) == set(task().parameters)
    assert any(np.any(tensor != 0) for tensor in update.values())


def test_a_task_setting_no_stage_handler_declared_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"does not understand the task setting\(s\) 'clip_norm'"):
        site().handle(task(Stage.TRAIN, clip_norm=1.0))


def test_a_capability_registers_its_stage_and_the_settings_it_reads() -> None:
    node = site()
    with pytest.raises(ConfigError, match="already handles stage 'train'"):
        node.register_stage(Stage.TRAIN, node.handle)
