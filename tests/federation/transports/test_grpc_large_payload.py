"""A 208 MB model crosses the transport both ways in 1 MiB chunks and arrives unchanged.

How long that takes is measured by bench/grpc_transport.py (its "200 MiB model" part), which is
also where a peak-memory figure belongs; neither is asserted here, as a test on a shared machine
cannot hold a threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Stage, Task
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport

from .conftest import Federation, node_client, running

pytestmark = pytest.mark.integration

SCALARS = 52_000_000  # float32: 208 MB of tensor data


def test_208_megabyte_model_round_trips(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    weights = np.random.default_rng(0).standard_normal(SCALARS, dtype=np.float32)
    task = Task(
        job_id="big-job",
        round_number=1,
        stage=Stage.TRAIN,
        node_id="hospital-a",
        parameters=Parameters({"w": weights}),
    )
    del weights

    with running([node_client(federation, "hospital-a", transport.port)]) as threads:
        transport.wait_for_nodes(1, timeout_s=10.0)
        outcome = transport.run_stage([task], timeout_s=600.0)  # a hang guard, not a target

    assert outcome.failures == {}
    assert threads[0].error is None
    assert outcome.results[0].parameters == task.parameters  # echoed back unchanged
