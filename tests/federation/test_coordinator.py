"""The round loop with scripted nodes: cohorts, deadlines, retries, refusals and determinism."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError, InsufficientNodesError
from sovereign_ai.federation import CheckpointStore, Coordinator, InMemoryTransport
from sovereign_ai.strategies import FedAvg

START = Parameters({"w": np.zeros(3)})


@dataclass
class ScriptedNode:
    """Answers train tasks with update = target - global, and evaluation with fixed metrics."""

    node_id: str
    target: float
    examples: int = 10
    delay_event: threading.Event | None = None
    seen: list[Task] = field(default_factory=list)
    tamper: str | None = None

    def handle(self, task: Task) -> Result:
        self.seen.append(task)
        if self.delay_event is not None:
            self.delay_event.wait(5)
        vector = np.full(3, self.target, np.float32) - task.parameters.flatten()
        job_id = "another-job" if self.tamper == "job" else task.job_id
        round_number = task.round_number + 1 if self.tamper == "round" else task.round_number
        if task.stage is Stage.EVALUATE:
            return Result(
                job_id,
                round_number,
                task.stage,
                self.node_id,
                self.examples,
                metrics={"loss": self.target},
            )
        return Result(
            job_id,
            round_number,
            task.stage,
            self.node_id,
            self.examples,
            parameters=task.parameters.with_vector(vector),
            metrics={"train_loss": 1.0},
        )


def coordinator(nodes: list[ScriptedNode], **kwargs: object) -> Coordinator:
    options: dict[str, object] = {
        "job_id": "job-1",
        "strategy": FedAvg(min_train_nodes=2),
        "transport": InMemoryTransport(nodes, max_workers=2),
        "initial_parameters": START,
        "rounds": 2,
        "seed": 3,
        "round_timeout_s": 60.0,  # scripted nodes answer at once: never reached unless hung
    }
    options.update(kwargs)
    return Coordinator(**options)  # type: ignore[arg-type]


def test_fedavg_round_moves_to_weighted_mean_of_targets() -> None:
    nodes = [ScriptedNode("a", 1.0, examples=10), ScriptedNode("b", 4.0, examples=30)]
    history = coordinator(nodes, rounds=1).run()
    assert history.parameters is not None
    np.testing.assert_allclose(history.parameters["w"], np.full(3, 3.25))  # (10*1+30*4)/40
    assert history.rounds[0].answered == ["a", "b"]
    assert history.rounds[0].metrics["federated_loss"] == pytest.approx(3.25)


def test_tasks_are_bound_and_seeded_per_node() -> None:
    nodes = [ScriptedNode("a", 1.0), ScriptedNode("b", 2.0)]
    coordinator(nodes, rounds=1).run()
    train_a = next(t for t in nodes[0].seen if t.stage is Stage.TRAIN)
    train_b = next(t for t in nodes[1].seen if t.stage is Stage.TRAIN)
    assert (train_a.job_id, train_a.round_number, train_a.node_id) == ("job-1", 1, "a")
    assert train_a.config["seed"] != train_b.config["seed"]


def test_results_for_another_job_or_round_are_refused() -> None:
    nodes = [
        ScriptedNode("a", 1.0),
        ScriptedNode("b", 2.0),
        ScriptedNode("evil", 100.0, tamper="job"),
        ScriptedNode("late", 100.0, tamper="round"),
    ]
    history = coordinator(nodes, rounds=1).run()
    report = history.rounds[0]
    assert report.answered == ["a", "b"]
    assert "does not answer the task" in report.failures["evil"]
    assert "does not answer the task" in report.failures["late"]
    assert history.parameters is not None
    np.testing.assert_allclose(history.parameters["w"], np.full(3, 1.5))


def test_straggler_past_deadline_is_left_out() -> None:
    release = threading.Event()
    nodes = [
        ScriptedNode("a", 1.0),
        ScriptedNode("b", 3.0),
        ScriptedNode("slow", 50.0, delay_event=release),
    ]
    transport = InMemoryTransport(nodes, max_workers=3)
    try:
        history = coordinator(nodes, rounds=1, transport=transport, round_timeout_s=1.0).run()
    finally:
        release.set()
        transport.close()
    assert history.rounds[0].answered == ["a", "b"]
    assert "no answer within" in history.rounds[0].failures["slow"]


def test_too_few_nodes_retries_then_stops_naming_missing() -> None:
    nodes = [ScriptedNode("a", 1.0), ScriptedNode("b", 2.0)]
    transport = InMemoryTransport(nodes)
    transport.set_offline("b")
    coord = coordinator(nodes, transport=transport, max_round_attempts=2, wait_for_nodes_s=0.0)
    with pytest.raises(InsufficientNodesError) as caught:
        coord.run()
    assert caught.value.minimum == 2
    assert caught.value.round_number == 1


def test_node_dropping_mid_job_does_not_stop_it_above_minimum() -> None:
    nodes = [ScriptedNode("a", 1.0), ScriptedNode("b", 2.0), ScriptedNode("c", 3.0)]
    transport = InMemoryTransport(nodes)

    class DropAfterFirst:
        def on_round_start(self, round_number: int, total_rounds: int) -> None:
            if round_number == 2:
                transport.set_offline("c")

        def on_round_end(self, report: object) -> None:
            pass

    history = coordinator(nodes, transport=transport, observer=DropAfterFirst()).run()
    assert history.rounds[0].answered == ["a", "b", "c"]
    assert history.rounds[1].answered == ["a", "b"]


def test_same_seed_same_result_regardless_of_thread_timing() -> None:
    def run() -> Parameters:
        nodes = [
            ScriptedNode(n, t, examples=e)
            for n, t, e in [("a", 0.3, 7), ("b", 0.9, 3), ("c", 2.0, 5)]
        ]
        history = coordinator(
            nodes, rounds=3, strategy=FedAvg(min_train_nodes=2, fraction_train=0.7)
        ).run()
        assert history.parameters is not None
        return history.parameters

    assert run() == run()


def test_resume_continues_and_refuses_without_flag(tmp_path: Path) -> None:
    nodes = [ScriptedNode("a", 1.0), ScriptedNode("b", 2.0)]
    with CheckpointStore(tmp_path) as store:
        coordinator(nodes, rounds=1, store=store).run()
    with CheckpointStore(tmp_path) as store:
        with pytest.raises(ConfigError, match="--resume"):
            coordinator(nodes, rounds=2, store=store).run()
        history = coordinator(nodes, rounds=2, store=store).run(resume=True)
    assert history.resumed_from == 1
    assert [r.round_number for r in history.rounds] == [2]


@pytest.mark.parametrize(
    ("key", "value"), [("rounds", 0), ("round_timeout_s", 0.0), ("max_round_attempts", 0)]
)
def test_bad_coordinator_settings(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key):
        coordinator([ScriptedNode("a", 1.0)], **{key: value})


class FailingNode(ScriptedNode):
    def handle(self, task: Task) -> Result:
        raise ConfigError("this node has no GPU-sized model")


def test_failing_nodes_reasons_reach_the_error() -> None:
    nodes = [ScriptedNode("a", 1.0), FailingNode("b", 2.0), FailingNode("c", 2.0)]
    with pytest.raises(InsufficientNodesError, match="b, c: ConfigError: this node has no GPU"):
        coordinator(nodes, max_round_attempts=1).run()
