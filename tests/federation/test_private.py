"""Client-level differential privacy in the round: the job section, DP-FedAvg, the node's filter
and its ledger."""

from __future__ import annotations

import tomllib
from typing import Any

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import InMemoryTransport, parse_job_spec, run_simulation
from sovereign_ai.federation.coordinator import Coordinator
from sovereign_ai.federation.job import PrivacySection
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.private_node import enable_differential_privacy
from sovereign_ai.federation.private_strategy import DifferentiallyPrivate
from sovereign_ai.privacy import PrivacyEvent, PrivacyLedger, epsilon_spent, l2_norm
from sovereign_ai.strategies import FedAvg, Krum

JOB = """
[job]
name = "private"
rounds = 4
seed = 2

[model]
name = "logreg"

[strategy]
name = "fedavg"
fraction_train = 0.5
min_train_nodes = 2

[coordinator]
standardize_features = false

[data]
dataset = "iris"
partition = "iid"
nodes = 8

[privacy]
mode = "central"
target_epsilon = 3.0
clip = 0.1
"""


def job(**privacy: Any) -> dict[str, Any]:
    document = tomllib.loads(JOB)
    document["privacy"].update(privacy)
    for key, value in list(document["privacy"].items()):
        if value is None:
            del document["privacy"][key]
    return document


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"noise_multiplier": 1.0}, "exactly one of 'noise_multiplier' and 'target_epsilon'"),
        ({"target_epsilon": None}, "exactly one of"),
        ({"mode": "distributed"}, "needs '\\[secure_aggregation\\] enabled = true'"),
        ({"mode": "shouting"}, "mode"),
        ({"delta": 0.0}, "delta"),
    ],
)
def test_invalid_privacy_settings_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_job_spec(job(**changes))


def test_feature_statistics_are_refused_with_privacy_on() -> None:
    document = job()
    document["coordinator"]["standardize_features"] = True
    with pytest.raises(ConfigError, match="without privacy accounting"):
        parse_job_spec(document)


def test_a_job_without_privacy_keeps_its_digest() -> None:
    plain = tomllib.loads(JOB)
    del plain["privacy"]
    off = job(mode="none", target_epsilon=None)
    assert parse_job_spec(plain).digest == parse_job_spec(off).digest
    assert parse_job_spec(job()).digest != parse_job_spec(plain).digest


def test_a_strategy_that_needs_each_update_is_refused() -> None:
    section = PrivacySection(mode="central", noise_multiplier=1.0)
    with pytest.raises(ConfigError, match="needs each update"):
        DifferentiallyPrivate(Krum(num_malicious=0), section=section, rounds=3)


def test_every_node_that_took_part_records_the_whole_job_at_the_target_epsilon() -> None:
    spec = parse_job_spec(job())
    history, setup = run_simulation(spec)
    took_part = {node for r in history.rounds for node in r.answered}
    assert history.rounds[-1].answered
    assert took_part - set(history.rounds[-1].answered)  # some sat the last round out
    for node in took_part:
        ledger = setup.ledgers[node]
        assert ledger.spent(node) == pytest.approx(3.0, rel=0.01)
        assert ledger.spent(node) <= 3.0
        assert sum(e.event.steps for e in ledger.entries(node)) == spec.job.rounds
    assert history.parameters is not None
    assert np.isfinite(history.parameters.flatten()).all()


def test_rounds_beyond_the_announced_ones_are_recorded_as_they_come(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    nodes = [_site(name, ledger, budget=100.0) for name in ("a", "b")]
    node = nodes[0]
    _coordinator(nodes, Spy(nodes), rounds=3).run()
    assert [e.round_number for e in ledger.entries("a")] == [3]  # reserved at round 1
    settings = {"dp_rounds": 3}
    for round_number in (4, 5):  # a resumed job with more rounds than it announced
        task = _task_for(node, round_number, **settings)
        node.handle(task)
    assert [(e.round_number, e.event.steps) for e in ledger.entries("a")] == [
        (3, 3), (4, 1), (5, 1)
    ]  # fmt: skip


def test_poisson_cohorts_have_the_sampling_rate_on_average() -> None:
    strategy = DifferentiallyPrivate(
        FedAvg(fraction_train=0.3, min_train_nodes=1),
        section=PrivacySection(mode="central", noise_multiplier=1.0),
        rounds=1,
    )
    rng = np.random.default_rng(0)
    nodes = [f"n{i}" for i in range(100)]
    sizes = []
    for round_number in range(1, 201):
        chosen = strategy.configure_train(
            round_number=round_number, parameters=Parameters({"w": np.zeros(1)}), nodes=nodes,
            rng=rng,
        )  # fmt: skip
        sizes.append(len(chosen))
        assert all(i.config["dp_sampling_rate"] == 0.3 for i in chosen)
    assert np.mean(sizes) == pytest.approx(30, abs=1.5)
    assert np.std(sizes) > 2  # Poisson, not a fixed size


def _site(name: str, ledger: PrivacyLedger, *, budget: float) -> Node:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    features = rng.normal(0, 3, (40, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    node = Node(name, data=LocalData(features, labels, features[:8], labels[:8]))
    ledger.set_budget(name, max_epsilon=budget, delta=1e-5)
    enable_differential_privacy(node, ledger=ledger, dataset=name)
    return node


class Spy:
    """An in-memory transport that keeps every train answer the coordinator receives."""

    def __init__(self, nodes: list[Node]) -> None:
        self.inner = InMemoryTransport(nodes, max_workers=1)
        self.train: list[Result] = []

    def available_nodes(self) -> list[str]:
        return self.inner.available_nodes()

    def wait_for_nodes(self, count: int, *, timeout_s: float) -> list[str]:
        return self.inner.wait_for_nodes(count, timeout_s=timeout_s)

    def run_stage(self, tasks: list[Task], *, timeout_s: float) -> Any:
        outcome = self.inner.run_stage(tasks, timeout_s=timeout_s)
        self.train += [r for r in outcome.results if r.stage is Stage.TRAIN]
        return outcome

    def close(self) -> None:
        self.inner.close()


def _coordinator(nodes: list[Node], transport: Spy, *, rounds: int = 3) -> Coordinator:
    from sovereign_ai.federation.assembly import initial_parameters, stage_config

    spec = parse_job_spec(job(noise_multiplier=1.0, target_epsilon=None))
    shape = {"num_features": 4, "num_classes": 2}
    return Coordinator(
        job_id="private-test",
        strategy=DifferentiallyPrivate(
            FedAvg(fraction_train=1.0, min_train_nodes=2),
            section=PrivacySection(mode="central", noise_multiplier=1.0, clip=0.05),
            rounds=rounds,
        ),
        transport=transport,  # type: ignore[arg-type]
        initial_parameters=initial_parameters(spec, **shape),
        rounds=rounds,
        stage_config=stage_config(spec, **shape),
        evaluate_every=0,
    )


def _task_for(node: Node, round_number: int, **settings: Any) -> Task:
    from sovereign_ai.federation.assembly import initial_parameters, stage_config

    spec = parse_job_spec(job(noise_multiplier=1.0, target_epsilon=None))
    shape = {"num_features": 4, "num_classes": 2}
    config = {
        **stage_config(spec, **shape),
        "dp_mode": "central", "dp_clip": 0.05, "dp_noise_multiplier": 1.0,
        "dp_sampling_rate": 1.0, "dp_min_contributors": 2, **settings,
    }  # fmt: skip
    return Task(
        "private-test", round_number, Stage.TRAIN, node.node_id,
        initial_parameters(spec, **shape), config,
    )  # fmt: skip


def test_updates_leave_clipped_with_one_example_and_no_metrics(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    nodes = [_site(n, ledger, budget=100.0) for n in ("a", "b", "c")]
    spy = Spy(nodes)
    _coordinator(nodes, spy).run()
    assert spy.train
    for result in spy.train:
        assert l2_norm(result.parameters.flatten()) <= 0.05 + 1e-6
        assert result.num_examples == 1
        assert result.metrics == {}
    expected = epsilon_spent([PrivacyEvent(1.0, 1.0, 3, "full")], delta=1e-5)  # type: ignore[arg-type]
    assert ledger.spent("a") == pytest.approx(expected)


def test_a_node_whose_budget_cannot_hold_the_job_refuses_it_and_the_others_go_on(
    tmp_path: Any,
) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    nodes = [_site("a", ledger, budget=100.0), _site("b", ledger, budget=100.0)]
    nodes.append(_site("poor", ledger, budget=0.5))
    history = _coordinator(nodes, Spy(nodes)).run()
    for report in history.rounds:
        assert report.answered == ["a", "b"]
        assert "over its owner's budget" in report.failures["poor"]
    assert ledger.entries("poor") == []


def test_feature_statistics_never_leave_under_privacy(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _site("a", ledger, budget=100.0)
    task = Task("j", 0, Stage.STATISTICS, "a", Parameters({}), {"dp_mode": "central"})
    with pytest.raises(ConfigError, match="feature statistics"):
        node.handle(task)


def test_distributed_noise_runs_with_secure_aggregation() -> None:
    document = job(mode="distributed")
    document["secure_aggregation"] = {"enabled": True}
    history, setup = run_simulation(parse_job_spec(document))
    assert history.parameters is not None
    assert np.isfinite(history.parameters.flatten()).all()
    spent = [setup.ledgers[n].spent(n) for n in history.rounds[-1].answered]
    assert spent and all(s == pytest.approx(3.0, rel=0.01) for s in spent)
