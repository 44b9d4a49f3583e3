"""A secure simulation gives one model whichever backend runs its nodes.

The process backend's workers rebuild the nodes in other processes; the parent's throw-away
identities (one CA) travel with them, so neighbours in different workers verify each other's keys.
Masks cancel exactly and the rounding coins are seeded per node and round, so the models agree
bit for bit.
"""

from __future__ import annotations

import tomllib

import pytest

from sovereign_ai.federation import parse_job_spec, run_simulation

JOB = """
[job]
name = "secure-backends"
rounds = 2
seed = 3

[model]
name = "logreg"

[strategy]
name = "fedavgm"
min_train_nodes = 3

[data]
dataset = "iris"
partition = "iid"
nodes = 4

[secure_aggregation]
enabled = true

[simulation]
backend = "{backend}"
workers = 2
"""


@pytest.mark.slow
def test_serial_and_process_backends_give_the_same_secure_model() -> None:
    models = []
    for backend in ("serial", "process"):
        spec = parse_job_spec(tomllib.loads(JOB.format(backend=backend)))
        history, _ = run_simulation(spec)
        assert [len(r.answered) for r in history.rounds] == [4, 4]
        models.append(history.parameters)
    assert models[0] == models[1]
