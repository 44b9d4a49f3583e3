"""A round is a workflow of steps: capabilities add steps, the coordinator only runs stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sovereign_ai.core import NodeInstruction, Parameters, Result, Stage, Task
from sovereign_ai.federation import (
    Coordinator,
    EvaluateStep,
    InMemoryTransport,
    RoundState,
    StageResults,
    StageRunner,
    TrainStep,
)
from sovereign_ai.strategies import FedAvg

START = Parameters({"w": np.zeros(3)})


@dataclass
class Site:
    node_id: str
    target: float
    seen: list[Task] = field(default_factory=list)

    def handle(self, task: Task) -> Result:
        self.seen.append(task)
        if "w" not in task.parameters:  # not the model: echo what this node was sent
            return Result(
                task.job_id, task.round_number, task.stage, self.node_id, 1, task.parameters
            )
        vector = np.full(3, self.target, np.float32) - task.parameters.flatten()
        if task.stage is Stage.EVALUATE:
            return Result(
                task.job_id, task.round_number, task.stage, self.node_id, 5, metrics={"loss": 1.0}
            )
        update = task.parameters.with_vector(vector)
        return Result(task.job_id, task.round_number, task.stage, self.node_id, 5, update)


def coordinator(sites: Sequence[Site], **options: object) -> Coordinator:
    settings: dict[str, object] = {
        "job_id": "job-w",
        "strategy": FedAvg(min_train_nodes=2),
        "transport": InMemoryTransport(sites),
        "initial_parameters": START,
        "rounds": 2,
        "round_timeout_s": 30.0,
    }
    settings.update(options)
    return Coordinator(**settings)  # type: ignore[arg-type]


def test_a_plain_round_is_train_then_evaluate() -> None:
    steps = coordinator([Site("a", 1.0), Site("b", 2.0)]).workflow
    assert [type(step) for step in steps] == [TrainStep, EvaluateStep]


@dataclass
class PerRecipientStep:
    """A step as secure aggregation's share-keys would be: each node gets its own payload."""

    seen_states: list[tuple[int, list[str], bool]] = field(default_factory=list)

    def run(self, state: RoundState, stages: StageRunner) -> None:
        self.seen_states.append(
            (state.round_number, list(state.survivors), state.aggregate is None)
        )

        def payload(node_id: str) -> Parameters:
            return Parameters({"for_" + node_id: np.zeros(1)})

        answered = stages(
            state,
            Stage.TRAIN,
            [NodeInstruction(node_id=n) for n in state.survivors],
            parameters=payload,
            accept=lambda result: result,
        )
        state.metrics["extra_answers"] = float(len(answered.results))


def test_an_added_step_sees_the_round_state_and_sends_per_recipient_payloads() -> None:
    sites = [Site("a", 1.0), Site("b", 2.0)]
    boss = coordinator(sites, evaluate_every=0, rounds=1)
    extra = PerRecipientStep()
    boss.workflow.insert(1, extra)  # between training and evaluation
    history = boss.run()

    assert extra.seen_states == [(1, ["a", "b"], False)]  # after train: survivors and aggregate
    assert history.rounds[0].metrics["extra_answers"] == 2.0
    extra_tasks = [t for site in sites for t in site.seen if "w" not in t.parameters]
    assert {t.node_id: list(t.parameters) for t in extra_tasks} == {"a": ["for_a"], "b": ["for_b"]}


def test_observers_hear_every_stage_and_may_implement_only_what_they_need() -> None:
    events: list[tuple[int, str, list[str]]] = []

    class StageLog:  # no round hooks at all: the coordinator calls only what is there
        def on_stage_end(self, round_number: int, stage: Stage, answered: StageResults) -> None:
            events.append((round_number, stage.value, answered.node_ids))

    coordinator([Site("a", 1.0), Site("b", 2.0)], observer=StageLog()).run()
    assert events == [
        (1, "train", ["a", "b"]),
        (1, "evaluate", ["a", "b"]),
        (2, "train", ["a", "b"]),
        (2, "evaluate", ["a", "b"]),
    ]
