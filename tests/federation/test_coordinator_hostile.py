"""One hostile node never ends the job: its answer is refused as its failure, the round goes on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import AggregationError, InsufficientNodesError
from sovereign_ai.federation import Coordinator, InMemoryTransport
from sovereign_ai.strategies import FedAvg

START = Parameters({"w": np.zeros((2, 3)), "b": np.zeros(3)})

Tamper = Callable[[Result], Result]


@dataclass
class Site:
    """Moves the model towards ``target``; evaluates with fixed metrics; ``tamper`` rewrites."""

    node_id: str
    target: float
    examples: int = 10
    tamper: Mapping[Stage, Tamper] | None = None

    def handle(self, task: Task) -> Result:
        if task.stage is Stage.EVALUATE:
            result = Result(
                task.job_id, task.round_number, task.stage, self.node_id, self.examples,
                metrics={"loss": 1.0 - self.target / 10, "accuracy": self.target / 10},
            )  # fmt: skip
        else:
            vector = np.full(START.num_scalars, self.target, np.float32)
            update = task.parameters.with_vector(vector - task.parameters.flatten())
            result = Result(
                task.job_id, task.round_number, task.stage, self.node_id, self.examples,
                parameters=update, metrics={"train_loss": 0.5},
            )  # fmt: skip
        tamper = (self.tamper or {}).get(task.stage)
        return tamper(result) if tamper is not None else result


def with_tensors(tensors: Mapping[str, np.ndarray]) -> Tamper:
    return lambda result: replace(result, parameters=Parameters(tensors))


def run(sites: Sequence[Site], **options: object) -> Coordinator:
    settings: dict[str, object] = {
        "job_id": "job-h",
        "strategy": FedAvg(min_train_nodes=2),
        "transport": InMemoryTransport(sites),
        "initial_parameters": START,
        "rounds": 2,
        "seed": 1,
        "round_timeout_s": 60.0,  # sites answer at once: never reached unless hung
        "max_examples_per_node": 1_000,
    }
    settings.update(options)
    return Coordinator(**settings)  # type: ignore[arg-type]


HONEST = (Site("alpha", 1.0, examples=10), Site("beta", 4.0, examples=30))
TRAIN_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "extra tensor": (
        with_tensors({**START, "extra": np.zeros(1)}),
        "unexpected tensor(s) 'extra'",
    ),
    "missing tensor": (with_tensors({"w": np.zeros((2, 3))}), "missing tensor(s) 'b'"),
    "transposed": (
        with_tensors({"w": np.zeros((3, 2)), "b": np.zeros(3)}),
        "tensor 'w' has shape [3, 2]; expected [2, 3]",
    ),
    "no tensors": (with_tensors({}), "missing tensor(s) 'w', 'b'"),
    "zero-size huge": (
        with_tensors({"w": np.zeros((2**40, 0)), "b": np.zeros(3)}),
        "tensor 'w' has shape [1099511627776, 0]",
    ),
    "2^63 examples": (
        lambda r: replace(r, num_examples=2**63 - 1),
        "above the job's cap of 1000",
    ),
    "0 examples": (lambda r: replace(r, num_examples=0), "at least 1"),
}


@pytest.mark.parametrize("name", list(TRAIN_TAMPERS))
def test_a_hostile_update_is_refused_and_the_model_is_the_honest_nodes(name: str) -> None:
    tamper, problem = TRAIN_TAMPERS[name]
    mallory = Site("mallory", 1e6, examples=500, tamper={Stage.TRAIN: tamper})
    honest = run(HONEST).run()
    history = run([*HONEST, mallory]).run()
    assert history.parameters == honest.parameters  # mallory had no say at all
    for report in history.rounds:
        assert report.answered == ["alpha", "beta"]
        assert report.cohort == ["alpha", "beta", "mallory"]
        assert report.failures["mallory"].startswith("answer refused: ")
        assert problem in report.failures["mallory"]


def test_tensors_in_another_order_are_matched_by_name() -> None:
    def reverse(result: Result) -> Result:
        return replace(result, parameters=result.parameters.reordered(reversed(list(START))))

    plain = run([*HONEST, Site("carol", 2.0)]).run()
    reordered = run([*HONEST, Site("carol", 2.0, tamper={Stage.TRAIN: reverse})]).run()
    assert reordered.parameters == plain.parameters
    assert "carol" in reordered.rounds[-1].answered


@pytest.mark.parametrize(
    ("metrics", "examples", "problem"),
    [
        ({"num_examples": 1e12}, 10, "'num_examples'"),
        ({"secret": 1.0}, 0, "'secret'"),
        ({"loss": 0.2}, 0, "metrics over 0 examples"),
        ({"accuracz": 0.99}, 10, "'accuracz'"),
    ],
    ids=["reserved-name", "unknown-metric-zero-examples", "zero-examples", "bit-flipped-name"],
)
def test_a_hostile_evaluation_is_refused_and_metrics_come_from_the_others(
    metrics: dict[str, float], examples: int, problem: str
) -> None:
    def tamper(result: Result) -> Result:
        return replace(result, metrics=metrics, num_examples=examples)

    mallory = Site("mallory", 1.0, tamper={Stage.EVALUATE: tamper})
    history = run([*HONEST, Site("carol", 2.0), mallory]).run()
    last = history.rounds[-1]
    assert problem in last.failures["mallory"]
    # (10 * 0.1 + 30 * 0.4 + 10 * 0.2) / 50 from alpha, beta and carol only
    assert last.metrics["federated_accuracy"] == pytest.approx(0.3)
    assert last.metrics["federated_num_examples"] == 50


def test_nodes_without_test_rows_do_not_break_evaluation() -> None:
    def no_rows(result: Result) -> Result:
        return replace(result, metrics={}, num_examples=0)

    sites = [Site("alpha", 1.0, tamper={Stage.EVALUATE: no_rows}), Site("beta", 4.0)]
    last = run(sites).run().rounds[-1]
    assert last.metrics["federated_accuracy"] == pytest.approx(0.4)
    assert "alpha" not in last.failures


def test_every_node_reporting_zero_examples_stops_the_job_cleanly() -> None:
    def nothing(result: Result) -> Result:
        return replace(result, num_examples=0)

    sites = [Site(n, 1.0, tamper={Stage.TRAIN: nothing}) for n in ("alpha", "beta")]
    with pytest.raises(InsufficientNodesError, match="at least 1") as caught:
        run(sites, max_round_attempts=2).run()
    assert caught.value.answered == []
    assert caught.value.missing == ["alpha", "beta"]


class NonFiniteOnce(FedAvg):
    """Returns a NaN aggregate on its first call, after disturbing nothing else."""

    calls = 0

    def aggregate_train(
        self, *, round_number: int, parameters: Parameters, results: Sequence[Result]
    ) -> Parameters:
        NonFiniteOnce.calls += 1
        if NonFiniteOnce.calls == 1:
            return parameters.with_vector(np.full(parameters.num_scalars, np.nan))
        return super().aggregate_train(
            round_number=round_number, parameters=parameters, results=results
        )


def test_a_non_finite_aggregate_is_never_adopted_and_the_round_is_retried() -> None:
    NonFiniteOnce.calls = 0
    history = run(HONEST, strategy=NonFiniteOnce(min_train_nodes=2)).run()
    assert history.rounds[0].attempts == 2
    assert history.parameters is not None
    assert np.isfinite(history.parameters.flatten()).all()
    assert history.parameters == run(HONEST).run().parameters


def test_an_aggregate_that_stays_non_finite_ends_the_job_with_a_reason() -> None:
    class AlwaysNaN(FedAvg):
        def aggregate_train(self, **kwargs: object) -> Parameters:
            return START.with_vector(np.full(START.num_scalars, np.inf))

    with pytest.raises(AggregationError, match="non-finite"):
        run(HONEST, strategy=AlwaysNaN(min_train_nodes=2), max_round_attempts=2).run()


def test_statistics_from_a_hostile_node_are_refused_and_scaling_uses_the_others() -> None:
    model = Parameters({"w": np.zeros(2), "input_mean": np.zeros(2), "input_std": np.ones(2)})

    @dataclass
    class Stats:
        node_id: str
        rows: np.ndarray
        width_tamper: bool = False

        def handle(self, task: Task) -> Result:
            if task.stage is not Stage.STATISTICS:
                update = task.parameters.with_vector(np.zeros(task.parameters.num_scalars))
                return Result(task.job_id, task.round_number, task.stage, self.node_id, 1, update)
            rows = np.hstack([self.rows, self.rows]) if self.width_tamper else self.rows
            tensors = {
                "count": np.array([len(rows)]),
                "sum": rows.sum(0),
                "sum_sq": np.square(rows).sum(0),
            }
            return Result(task.job_id, 0, task.stage, self.node_id, len(rows), Parameters(tensors))

    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[5.0, 6.0]])
    sites = [Stats("a", a), Stats("b", b), Stats("m", a, width_tamper=True)]
    coordinator = run(
        sites, initial_parameters=model, standardize_features=True, rounds=1, evaluate_every=0
    )
    history = coordinator.run()
    assert history.parameters is not None
    pooled = np.vstack([a, b])
    np.testing.assert_allclose(history.parameters["input_mean"], pooled.mean(0), rtol=1e-6)
    np.testing.assert_allclose(history.parameters["input_std"], pooled.std(0), rtol=1e-5)


def test_a_round_waits_for_the_minimum_then_goes_on_with_those_present() -> None:
    """Asked for 3 nodes, with one offline: waits the job's time, then runs with the 2 there."""
    transport = InMemoryTransport([*HONEST, Site("gamma", 2.0)])
    transport.set_offline("gamma")
    waits: list[tuple[int, int]] = []

    class Watcher:
        def on_round_start(self, round_number: int, total_rounds: int) -> None: ...
        def on_round_end(self, report: object) -> None: ...
        def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None: ...
        def on_waiting(self, connected: Sequence[str], needed: int, waited_s: float) -> None:
            waits.append((len(connected), needed))

    history = run(
        [], transport=transport, wait_for_nodes=3, wait_for_nodes_s=0.01, observer=Watcher()
    ).run()
    assert [r.answered for r in history.rounds] == [["alpha", "beta"], ["alpha", "beta"]]
    assert waits == []  # the minimum (2) was there: no waiting for the third


def test_too_few_nodes_within_the_wait_limit_fail_with_the_connect_stage() -> None:
    transport = InMemoryTransport(list(HONEST))
    transport.set_offline("beta")
    with pytest.raises(InsufficientNodesError, match="'connect'") as caught:
        run(
            [], transport=transport, max_node_wait_s=0.05, wait_report_s=0.01, wait_for_nodes_s=0
        ).run()
    assert caught.value.answered == ["alpha"]


def test_while_too_few_nodes_are_connected_the_coordinator_reports_who_is_there() -> None:
    """Sites come online over hours: the round waits, reporting, and runs once they are there."""
    import threading

    transport = InMemoryTransport(list(HONEST))
    transport.set_offline("beta")
    waits: list[list[str]] = []

    class Watcher:
        def on_round_start(self, round_number: int, total_rounds: int) -> None: ...
        def on_round_end(self, report: object) -> None: ...
        def on_attempt_failed(self, round_number: int, attempt: int, reason: str) -> None: ...
        def on_waiting(self, connected: Sequence[str], needed: int, waited_s: float) -> None:
            waits.append(list(connected))
            if len(waits) == 3:  # beta's operator starts its node
                threading.Timer(
                    0.05, transport.set_offline, ("beta",), {"is_offline": False}
                ).start()

    history = run(
        [],
        transport=transport,
        observer=Watcher(),
        max_node_wait_s=None,
        wait_report_s=0.02,
        wait_for_nodes_s=0,
    ).run()
    assert waits[:3] == [["alpha"]] * 3
    assert [r.answered for r in history.rounds] == [["alpha", "beta"], ["alpha", "beta"]]
