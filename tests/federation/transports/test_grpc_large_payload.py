"""A 208 MB model crosses the transport both ways in 1 MiB chunks, in bounded time and memory."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil
import pytest

from sovereign_ai.core import Parameters, Stage, Task
from sovereign_ai.federation.transports.grpc import GrpcCoordinatorTransport

from .conftest import Federation, node_client, running

pytestmark = pytest.mark.integration

SCALARS = 52_000_000  # float32: 208 MB of tensor data


class PeakRss:
    """Samples this process's resident memory every 20 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


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
    payload_mb = task.parameters.num_scalars * 4 / 1e6

    with running([node_client(federation, "hospital-a", transport.port)]) as threads:
        transport.wait_for_nodes(1, timeout_s=10.0)
        with PeakRss() as memory:
            start = time.perf_counter()
            outcome = transport.run_stage([task], timeout_s=120.0)
            elapsed_s = time.perf_counter() - start

    assert outcome.failures == {}
    assert threads[0].error is None
    assert outcome.results[0].parameters == task.parameters  # echoed back unchanged
    extra_mb = (memory.peak - memory.baseline) / 1e6
    print(f"\n{payload_mb:.0f} MB each way in {elapsed_s:.1f} s; peak RSS +{extra_mb:.0f} MB")
    # Both ends live in this process: coordinator encode + node decode, node encode + coordinator
    # decode. Each side holds a few copies of the payload at most, never one per chunk.
    assert extra_mb < 10 * payload_mb
    assert elapsed_s < 60.0
