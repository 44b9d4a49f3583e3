"""Sample-level DP (mode ``dpsgd``): the job, the node's accounting before it trains, the answers,
and the given input scaling a DP job uses instead of feature statistics."""

from __future__ import annotations

import math
import tomllib
from typing import Any

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Stage, Task
from sovereign_ai.errors import ConfigError, PrivacyBudgetError
from sovereign_ai.federation import parse_job_spec, run_simulation
from sovereign_ai.federation.assembly import initial_parameters, stage_config
from sovereign_ai.federation.node import LocalData, Node
from sovereign_ai.federation.private_node import enable_differential_privacy
from sovereign_ai.learning import dpsgd_schedule
from sovereign_ai.privacy import PrivacyEvent, PrivacyLedger, Sampler, epsilon_spent

WIDTH = 4

JOB = f"""
[job]
name = "dpsgd"
rounds = 3
seed = 1

[model]
name = "logreg"
input_mean = {[0.0] * WIDTH}
input_std = {[1.0] * WIDTH}

[strategy]
name = "fedavg"
min_train_nodes = 2

[train]
batch_size = 8

[coordinator]
standardize_features = false
evaluate_every = 0

[data]
dataset = "iris"
partition = "iid"
nodes = 3

[privacy]
mode = "dpsgd"
target_epsilon = 2.0
clip = 1.0
"""


def job(**changes: dict[str, Any]) -> dict[str, Any]:
    document = tomllib.loads(JOB)
    for section, values in changes.items():
        document.setdefault(section, {}).update(values)
        for key in [k for k, v in document[section].items() if v is None]:
            del document[section][key]
    return document


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"strategy": {"name": "fedprox"}}, "cannot train with fedprox"),
        ({"model": {"input_std": None}}, "give both 'input_mean' and 'input_std'"),
        ({"model": {"input_std": [1.0, 0.0, 1.0, 1.0]}}, "'input_std' finite and > 0"),
        ({"model": {"input_mean": [0.0]}}, "one number per feature"),
        (
            {
                "coordinator": {"standardize_features": True},
                "model": {"input_mean": None, "input_std": None},
            },
            "without privacy accounting",
        ),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_job_spec(job(**changes))


def test_a_given_scaling_and_pooled_statistics_exclude_each_other() -> None:
    document = job(privacy={"mode": "none", "target_epsilon": None})
    document["coordinator"]["standardize_features"] = True
    with pytest.raises(ConfigError, match="fix the input scaling"):
        parse_job_spec(document)


def test_a_job_without_a_given_scaling_keeps_its_digest() -> None:
    # Computed before [model] input_mean / input_std existed: its checkpoints still resume.
    document = {
        "job": {"name": "dpsgd", "rounds": 3, "seed": 1},
        "model": {"name": "logreg"},
        "coordinator": {"standardize_features": False},
    }
    before = "6625762fb76676ecb5e485b91f09e8a0ef25301ad3bbf4df4f10f4725168df92"
    assert parse_job_spec(document).digest == before
    document["model"].update(input_mean=[0.0], input_std=[1.0])
    assert parse_job_spec(document).digest != before


def test_the_given_scaling_is_in_the_starting_model() -> None:
    spec = parse_job_spec(job(model={"input_mean": [1.0, 2.0, 3.0, 4.0]}))
    start = initial_parameters(spec, num_features=WIDTH, num_classes=3)
    np.testing.assert_array_equal(start["input_mean"], [1, 2, 3, 4])
    np.testing.assert_array_equal(start["input_std"], [1, 1, 1, 1])
    with pytest.raises(ConfigError, match="one per column"):
        initial_parameters(spec, num_features=WIDTH + 1, num_classes=3)


def test_every_node_spends_exactly_the_target_for_its_own_data_size() -> None:
    spec = parse_job_spec(job())
    history, setup = run_simulation(spec)
    assert len(history.rounds) == 3
    sizes = {len(n.data.train_labels) for n in setup.nodes}
    for node in setup.nodes:
        ledger = setup.ledgers[node.node_id]
        entries = ledger.entries(node.node_id)
        assert [e.what for e in entries] == ["dpsgd"] * 3
        schedule = dpsgd_schedule(
            num_examples=len(node.data.train_labels), batch_size=8, local_epochs=1
        )
        assert {e.event.steps for e in entries} == {schedule.steps}
        assert {e.event.sampling_rate for e in entries} == {schedule.sampling_rate}
        assert ledger.spent(node.node_id) == pytest.approx(2.0, rel=0.01)
        assert ledger.spent(node.node_id) <= 2.0
    assert history.parameters is not None
    assert np.isfinite(history.parameters.flatten()).all()
    assert len(sizes) >= 1


def test_dpsgd_runs_under_secure_aggregation() -> None:
    spec = parse_job_spec(
        job(secure_aggregation={"enabled": True}, privacy={"target_epsilon": 4.0})
    )
    history, setup = run_simulation(spec)
    assert len(history.rounds) == 3
    for node_id, ledger in setup.ledgers.items():
        assert ledger.spent(node_id) == pytest.approx(4.0, rel=0.01)


def _node(name: str, ledger: PrivacyLedger, *, budget: float, rows: int = 40) -> Node:
    rng = np.random.default_rng(7)
    features = rng.normal(0, 1, (rows, WIDTH)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    node = Node(name, data=LocalData(features, labels, features[:4], labels[:4]))
    ledger.set_budget(name, max_epsilon=budget, delta=1e-5)
    enable_differential_privacy(node, ledger=ledger, dataset=name)
    return node


def _task(node: Node, round_number: int = 1, **settings: Any) -> Task:
    spec = parse_job_spec(job(privacy={"target_epsilon": None, "noise_multiplier": 1.0}))
    start = initial_parameters(spec, num_features=WIDTH, num_classes=2)
    config = {
        **stage_config(spec, num_features=WIDTH, num_classes=2),
        "dp_mode": "dpsgd",
        "dp_clip": 1.0,
        "dp_noise_multiplier": 1.0,
        "dp_rounds": 3,
        **settings,
    }
    config = {k: v for k, v in config.items() if v is not None}
    return Task(
        job_id="job-a", round_number=round_number, stage=Stage.TRAIN, node_id=node.node_id,
        parameters=start, config=config,
    )  # fmt: skip


def test_the_answer_keeps_its_rows_and_drops_the_training_metrics(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _node("a", ledger, budget=100.0)
    result = node.handle(_task(node))
    assert result.num_examples == 40
    assert result.metrics == {}
    schedule = dpsgd_schedule(num_examples=40, batch_size=8, local_epochs=1)
    event = PrivacyEvent(1.0, schedule.sampling_rate, schedule.steps, Sampler.POISSON)
    assert ledger.spent("a") == pytest.approx(epsilon_spent([event], delta=1e-5))


def test_a_job_that_would_exceed_the_budget_is_refused_before_any_training(
    tmp_path: Any,
) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _node("a", ledger, budget=0.5)
    calls: list[int] = []
    trainer = node.trainer

    def counting(task: Task, model: Any, config: Any) -> Any:
        calls.append(task.round_number)
        return trainer(task, model, config)

    node.trainer = counting
    with pytest.raises(PrivacyBudgetError, match=r"0\.5"):
        node.handle(_task(node))
    assert ledger.entries("a") == []
    assert calls == [1]  # reached the private trainer, which refused before Opacus ran


def test_the_budget_stops_the_node_mid_job(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _node("a", ledger, budget=100.0)
    task = _task(node, dp_noise_multiplier=0.6, dp_rounds=2)  # the projection fits ...
    node.handle(task)
    spent = ledger.spent("a")
    ledger.set_budget("a", max_epsilon=spent * 1.05, delta=1e-5)  # ... the owner lowers it
    with pytest.raises(PrivacyBudgetError):
        node.handle(_task(node, 2, dp_noise_multiplier=0.6, dp_rounds=2))
    assert len(ledger.entries("a")) == 1


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"dp_noise_multiplier": -1.0}, "noise_multiplier"),
        ({"dp_noise_multiplier": math.nan}, "noise_multiplier"),
        ({"dp_clip": 0.0}, "max_grad_norm"),
        ({"dp_clip": "1"}, "dp_clip"),
        ({"dp_noise_multiplier": None, "dp_target_epsilon": 1.0, "dp_delta": 1e-5,
          "dp_accounting": "cheat"}, "accounting"),
    ],
)  # fmt: skip
def test_a_hostile_coordinators_settings_are_refused(
    tmp_path: Any, settings: dict[str, Any], match: str
) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _node("a", ledger, budget=100.0)
    with pytest.raises(ConfigError, match=match):
        node.handle(_task(node, **settings))


def test_plain_tasks_still_train_plainly(tmp_path: Any) -> None:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    node = _node("a", ledger, budget=1.0)
    task = _task(node)
    plain = Task(
        job_id=task.job_id, round_number=1, stage=Stage.TRAIN, node_id="a",
        parameters=task.parameters,
        config={k: v for k, v in task.config.items() if not k.startswith("dp_")},
    )  # fmt: skip
    result = node.handle(plain)
    assert result.metrics  # a job without privacy reports its training metrics
    assert ledger.entries("a") == []
    assert isinstance(result.parameters, Parameters)
