"""Every answer leaves a node through one pipeline, in the design's fixed order of slots."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError, StaleMessageError
from sovereign_ai.federation import EgressPipeline, LocalData, Node
from sovereign_ai.federation.egress import EGRESS_SLOTS

TASK = Task("job", 1, Stage.EVALUATE, "site", Parameters({}))


def answer(task: Task) -> Result:
    return Result(task.job_id, task.round_number, task.stage, task.node_id, 3, Parameters({}))


def test_filters_run_in_the_slots_order_whatever_the_install_order() -> None:
    seen: list[str] = []
    pipeline = EgressPipeline()
    for slot in reversed(EGRESS_SLOTS):
        pipeline.install(slot, lambda task, result, slot=slot: seen.append(slot) or result)
    pipeline(TASK, answer(TASK))
    assert seen == ["policy", "privacy", "masking", "audit"]
    assert pipeline.installed == EGRESS_SLOTS


def test_a_slot_is_filled_once_and_only_known_slots_exist() -> None:
    pipeline = EgressPipeline()
    pipeline.install("audit", lambda task, result: result)
    with pytest.raises(ConfigError, match="already filled"):
        pipeline.install("audit", lambda task, result: result)
    with pytest.raises(ConfigError, match="must be one of policy, privacy, masking, audit"):
        pipeline.install("compression", lambda task, result: result)


def test_a_filter_may_change_an_answer_but_not_rebind_it() -> None:
    pipeline = EgressPipeline()
    pipeline.install("privacy", lambda task, result: replace(result, num_examples=99))
    assert pipeline(TASK, answer(TASK)).num_examples == 99
    rebinding = EgressPipeline()
    rebinding.install("masking", lambda task, result: replace(result, round_number=7))
    with pytest.raises(StaleMessageError, match="does not answer the task"):
        rebinding(TASK, answer(TASK))


def test_a_filter_that_refuses_stops_the_answer_leaving_the_node() -> None:
    rows = np.ones((4, 2), np.float32)
    node = Node(
        "site",
        data=LocalData(rows, np.array([0, 1, 0, 1]), rows[:2], np.array([0, 1])),
    )

    def policy(task: Task, result: Result) -> Result:
        raise ConfigError("This site's policy does not let evaluation metrics leave.")

    node.egress.install("policy", policy)
    task = Task("job", 1, Stage.STATISTICS, "site", Parameters({}), {"num_features": 2})
    with pytest.raises(ConfigError, match="policy does not let"):
        node.handle(task)
