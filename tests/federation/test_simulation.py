"""Simulation end to end with real datasets, models and strategies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import (
    parse_job_spec,
    prepare_simulation,
    run_simulation,
    train_alone,
    train_centralised,
)

JOB = """
[job]
name = "sim"
rounds = 8
seed = 5
[model]
name = "logreg"
[strategy]
name = "fedavg"
min_train_nodes = 3
[train]
local_epochs = 2
batch_size = 16
learning_rate = 0.1
[data]
dataset = "breast_cancer"
partition = "iid"
nodes = 3
"""


def spec(**overrides: dict[str, object]) -> object:
    document = tomllib.loads(JOB)
    for section, values in overrides.items():
        document.setdefault(section, {}).update(values)
    return parse_job_spec(document)


def test_three_node_simulation_converges() -> None:
    history, setup = run_simulation(spec())
    accuracy = [v for _, v in history.metric("central_accuracy")]
    loss = [v for _, v in history.metric("central_loss")]
    assert len(accuracy) == 8
    assert accuracy[-1] > 0.9
    assert loss[-1] < loss[0]
    assert history.rounds[-1].answered == sorted(n.node_id for n in setup.nodes)
    assert "federated_accuracy" in history.rounds[-1].metrics


def test_nodes_hold_disjoint_rows_and_coordinator_holds_none_of_them() -> None:
    setup = prepare_simulation(spec())
    rows = [tuple(r) for n in setup.nodes for r in n.data.train_features]
    rows += [tuple(r) for n in setup.nodes for r in n.data.test_features]
    assert len(rows) == len(set(rows))
    held_out = {tuple(r) for r in setup.test_features}
    assert not held_out & set(rows)


def test_serial_and_threaded_backends_give_identical_models() -> None:
    serial, _ = run_simulation(spec(simulation={"backend": "serial"}))
    threaded, _ = run_simulation(spec(simulation={"backend": "thread", "workers": 2}))
    assert serial.parameters == threaded.parameters


@pytest.mark.slow
def test_process_backend_matches_threads() -> None:
    threaded, _ = run_simulation(spec(job={"rounds": 2}))
    processes, _ = run_simulation(spec(job={"rounds": 2}, simulation={"backend": "process"}))
    assert threaded.parameters == processes.parameters


def test_feature_standardisation_is_federated() -> None:
    history, setup = run_simulation(spec(job={"rounds": 1}))
    assert history.parameters is not None
    pooled = np.concatenate([n.data.train_features for n in setup.nodes]).astype(np.float64)
    np.testing.assert_allclose(history.parameters["input_mean"], pooled.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(history.parameters["input_std"], pooled.std(axis=0), rtol=1e-3)


def test_baselines_score_on_the_same_test_set() -> None:
    setup = prepare_simulation(spec())
    central = train_centralised(setup)
    alone = train_alone(setup)
    assert central.num_train_examples == sum(a.num_train_examples for a in alone)
    assert central.accuracy > 0.9
    assert [a.name for a in alone] == [n.node_id for n in setup.nodes]


def test_robust_strategy_runs_in_simulation() -> None:
    history, _ = run_simulation(
        spec(strategy={"name": "krum", "num_malicious": 1, "min_train_nodes": 5}, data={"nodes": 6})
    )
    assert history.metric("central_accuracy")[-1][1] > 0.85


def test_missing_data_section_is_explained() -> None:
    document = tomllib.loads(JOB)
    del document["data"]
    with pytest.raises(ConfigError, match=r"\[data\]"):
        run_simulation(parse_job_spec(document))


def test_resume_with_more_rounds_matches_a_longer_run(tmp_path: Path) -> None:
    run_simulation(spec(job={"rounds": 2}), state_dir=tmp_path / "a")
    resumed, _ = run_simulation(spec(job={"rounds": 4}), state_dir=tmp_path / "a", resume=True)
    straight, _ = run_simulation(spec(job={"rounds": 4}))
    assert resumed.resumed_from == 2
    assert [r.round_number for r in resumed.rounds] == [3, 4]
    assert resumed.parameters == straight.parameters


def test_stated_dimensions_must_match_the_data() -> None:
    with pytest.raises(ConfigError, match=r"model\.num_features"):
        prepare_simulation(spec(model={"num_features": 99}))


def test_quorum_larger_than_the_federation_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="at least 7 nodes"):
        prepare_simulation(spec(strategy={"name": "krum", "num_malicious": 2}))


def test_unknown_dataset_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match="breast_cancer"):
        prepare_simulation(spec(data={"dataset": "mnist"}))


def test_after_a_resume_every_round_keeps_its_record(tmp_path: Path) -> None:
    from sovereign_ai.cli.report import complete_history

    run_simulation(spec(job={"rounds": 2}), state_dir=tmp_path / "a")
    resumed, _ = run_simulation(spec(job={"rounds": 3}), state_dir=tmp_path / "a", resume=True)
    whole = complete_history(resumed, tmp_path / "a")
    assert [r.round_number for r in whole.rounds] == [1, 2, 3]
    for report in whole.rounds:  # rounds of the first process too: not empty placeholders
        assert report.cohort and report.answered == report.cohort


def test_a_job_that_stopped_in_round_one_starts_afresh_without_resume(tmp_path: Path) -> None:
    from sovereign_ai.federation import CheckpointStore

    job = spec(job={"rounds": 1})
    first, _ = run_simulation(job, state_dir=tmp_path / "a")
    with CheckpointStore(tmp_path / "a") as store:  # as if killed during round 1
        store._db.execute("DELETE FROM rounds WHERE round_number > 0")
    again, _ = run_simulation(job, state_dir=tmp_path / "a")
    assert again.resumed_from == 0
    assert again.parameters == first.parameters
