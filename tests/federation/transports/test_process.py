"""The process transport: nodes built in spawned workers by a factory named, not pickled."""

from __future__ import annotations

import tomllib

import pytest

from sovereign_ai.core import Stage, Task
from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import (
    initial_parameters,
    parse_job_spec,
    prepare_simulation,
    stage_config,
)
from sovereign_ai.federation import simulation as simulation_module
from sovereign_ai.federation.transports.process import ProcessTransport

JOB = """
[job]
name = "proc"
rounds = 1
seed = 7
[model]
name = "logreg"
[strategy]
name = "fedavg"
min_train_nodes = 2
[data]
dataset = "iris"
partition = "iid"
nodes = 2
"""


def test_a_factory_that_cannot_be_imported_by_name_is_refused() -> None:
    def nested(spec_json: str) -> list[object]:
        del spec_json
        return []

    for factory in (nested, lambda spec_json: []):
        with pytest.raises(ConfigError, match="must be a function defined at module level"):
            ProcessTransport(factory, factory_input="{}", node_ids=["a"])  # type: ignore[arg-type]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="'workers' parameter of ProcessTransport must be > 0"):
        ProcessTransport(
            simulation_module._simulated_nodes, factory_input="{}", node_ids=["a"], workers=0
        )


@pytest.mark.slow
@pytest.mark.integration
def test_workers_answer_exactly_as_the_parents_nodes_and_name_an_unknown_node() -> None:
    spec = parse_job_spec(tomllib.loads(JOB))
    setup = prepare_simulation(spec)
    shape = {"num_features": setup.num_features, "num_classes": setup.num_classes}
    config, start = stage_config(spec, **shape), initial_parameters(spec, **shape)
    tasks = [Task("proc", 1, Stage.EVALUATE, node.node_id, start, config) for node in setup.nodes]
    expected = {
        node.node_id: node.handle(task) for node, task in zip(setup.nodes, tasks, strict=True)
    }
    transport = ProcessTransport(
        simulation_module._simulated_nodes,
        factory_input=simulation_module.factory_input(spec),
        node_ids=list(expected),
        workers=1,
    )
    try:
        outcome = transport.run_stage(
            [*tasks, Task("proc", 1, Stage.EVALUATE, "ghost", start, config)], timeout_s=600.0
        )
    finally:
        transport.close()

    assert {r.node_id: r for r in outcome.results} == expected
    assert list(outcome.failures) == ["ghost"]
    assert "'ghost' is not among the nodes the worker's factory built" in outcome.failures["ghost"]
