"""A whole federated job over gRPC with mutual TLS: same results as in memory, status, restarts."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.datasets import load_iris

from sovereign_ai.core import Parameters, Transport
from sovereign_ai.federation import Coordinator, InMemoryTransport, LocalData, Node, RoundReport
from sovereign_ai.federation.transports.grpc import (
    GrpcCoordinatorTransport,
    JobEnd,
    fetch_status,
)
from sovereign_ai.learning import create_model, get_parameters
from sovereign_ai.strategies import FedAvg

from .conftest import NODES, POLL_WAIT_S, Federation, node_client, running, task_for, wait_for

pytestmark = pytest.mark.integration

STAGE_CONFIG = {
    "model": "logreg",
    "model_options": "{}",
    "num_features": 4,
    "num_classes": 3,
    "local_epochs": 2,
    "batch_size": 16,
    "learning_rate": 0.1,
}


def iris_nodes() -> list[Node]:
    features, labels = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    nodes = []
    for name, rows in zip(NODES, np.array_split(order, len(NODES)), strict=True):
        test, train = rows[:10], rows[10:]
        data = LocalData(
            train_features=features[train].astype(np.float32),
            train_labels=labels[train].astype(np.int64),
            test_features=features[test].astype(np.float32),
            test_labels=labels[test].astype(np.int64),
        )
        nodes.append(Node(name, data=data))
    return nodes


def initial() -> Parameters:
    return get_parameters(create_model("logreg", num_features=4, num_classes=3, seed=7))


def run_job(transport: Transport, *, observer: object = None) -> Parameters:
    coordinator = Coordinator(
        job_id="iris-job",
        strategy=FedAvg(min_train_nodes=3),
        transport=transport,
        initial_parameters=initial(),
        rounds=3,
        seed=11,
        stage_config=STAGE_CONFIG,
        round_timeout_s=60.0,
        standardize_features=True,
        observer=observer,  # type: ignore[arg-type]
    )
    history = coordinator.run()
    assert len(history.rounds) == 3
    assert all(report.answered == list(NODES) for report in history.rounds)
    assert history.parameters is not None
    return history.parameters


def test_job_over_mtls_matches_the_in_memory_job(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    with InMemoryTransport(iris_nodes()) as memory:
        expected = run_job(memory)

    clients = [node_client(federation, node.node_id, transport.port, node) for node in iris_nodes()]
    with running(clients) as threads:
        assert transport.wait_for_nodes(3, timeout_s=10.0) == list(NODES)
        got = run_job(transport, observer=transport)
        status = fetch_status(
            federation.node_kit("hospital-b"), address=f"127.0.0.1:{transport.port}"
        )

    assert got == expected  # bit for bit: the transport does not change results
    assert [thread.error for thread in threads] == [None, None, None]
    # statistics + 3 x (train + evaluate) tasks per node
    assert [client.tasks_handled for client in clients] == [7, 7, 7]
    assert all(client.coordinator_name == "coordinator" for client in clients)
    assert (status.federation, status.job_id, status.round_number) == (
        "test-federation",
        "iris-job",
        3,
    )
    assert status.total_rounds == 3
    assert status.stage == "evaluate"
    assert [node.node_id for node in status.nodes] == list(NODES)
    assert status.metrics["train_nodes"] == 3.0
    assert 0.0 <= status.metrics["federated_accuracy"] <= 1.0


def test_node_not_connected_fails_at_once(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    with running([node_client(federation, "hospital-a", transport.port)]):
        transport.wait_for_nodes(1, timeout_s=10.0)
        outcome = transport.run_stage(
            [task_for("hospital-a"), task_for("hospital-b")], timeout_s=10.0
        )

    assert [r.node_id for r in outcome.results] == ["hospital-a"]
    assert outcome.failures == {"hospital-b": "node is not connected"}
    assert outcome.results[0].parameters == task_for("hospital-a").parameters


def test_node_that_stops_answering_misses_the_deadline(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    with running([node_client(federation, "hospital-a", transport.port)]) as threads:
        transport.wait_for_nodes(1, timeout_s=10.0)
        threads[0].join()  # the node goes away but still counts as connected for a while
        outcome = transport.run_stage([task_for("hospital-a")], timeout_s=0.5)

    assert outcome.results == []
    assert outcome.failures == {"hospital-a": "node did not fetch its task within 0.5 s"}


def test_node_reconnects_after_the_coordinator_restarts_on_the_same_port(
    federation: Federation,
) -> None:
    first = GrpcCoordinatorTransport(kit=federation.coordinator_kit(), poll_wait_s=POLL_WAIT_S)
    port = first.port
    client = node_client(federation, "hospital-a", port)
    with running([client]) as threads:
        first.wait_for_nodes(1, timeout_s=10.0)
        assert len(first.run_stage([task_for("hospital-a")], timeout_s=10.0).results) == 1
        first.close()  # the coordinator goes away; the node keeps retrying

        second = GrpcCoordinatorTransport(
            kit=federation.coordinator_kit(), bind_address=f"127.0.0.1:{port}", poll_wait_s=1.0
        )
        try:
            assert second.wait_for_nodes(1, timeout_s=15.0) == ["hospital-a"]
            outcome = second.run_stage([task_for("hospital-a", round_number=2)], timeout_s=10.0)
        finally:
            second.close()
        wait_for(lambda: client.tasks_handled == 2)

    assert [r.round_number for r in outcome.results] == [2]
    assert threads[0].error is None


def test_second_coordinator_cannot_take_a_port_in_use(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    from sovereign_ai.errors import TransportError

    with pytest.raises(TransportError, match="is already in use: is another coordinator"):
        GrpcCoordinatorTransport(
            kit=federation.coordinator_kit(), bind_address=f"127.0.0.1:{transport.port}"
        )
    with pytest.raises(TransportError, match="not an address of this machine"):
        GrpcCoordinatorTransport(kit=federation.coordinator_kit(), bind_address="192.0.2.1:50051")


def test_nodes_hear_the_job_ended_and_stop(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    clients = [node_client(federation, name, transport.port) for name in NODES[:2]]
    transport.on_round_end(
        RoundReport(round_number=3, cohort=[], answered=[], failures={}, metrics={"acc": 0.9})
    )
    ended: list[JobEnd | None] = []
    threads = [
        threading.Thread(target=lambda c=c: ended.append(c.serve_forever())) for c in clients
    ]
    for thread in threads:
        thread.start()
    transport.wait_for_nodes(2, timeout_s=10.0)
    transport.end_job(job_id="job-1", is_finished=False, reason="too few nodes", rounds_completed=3)
    assert transport.wait_until_nodes_told(timeout_s=10.0) == []
    for thread in threads:
        thread.join(10.0)
        assert not thread.is_alive(), "a node kept polling after the job ended"

    assert ended == [ended[0], ended[0]]
    assert ended[0] == JobEnd(
        job_id="job-1",
        is_finished=False,
        reason="too few nodes",
        rounds_completed=3,
        total_rounds=0,
        metrics={"acc": 0.9},
    )
    status = transport.status()
    assert (status.state, status.reason) == ("failed", "too few nodes")


def test_transport_satisfies_the_protocol(transport: GrpcCoordinatorTransport) -> None:
    assert isinstance(transport, Transport)
    assert transport.available_nodes() == []


def test_stop_cancels_a_waiting_long_poll_at_once(federation: Federation) -> None:
    # The poll would hold for 300 s; the join's 20 s guard against a hang is far below that, so a
    # thread gone by then was released by stop(), not by the poll running out. With a liveness
    # window of a microsecond, the node counts as connected only while its long poll is held.
    with GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(), poll_wait_s=300.0, liveness_window_s=1e-6
    ) as slow:
        client = node_client(federation, "hospital-a", slow.port, poll_wait_s=300.0)
        thread = threading.Thread(target=client.serve_forever)
        thread.start()
        assert slow.wait_for_nodes(1, timeout_s=20.0) == ["hospital-a"]  # its poll is waiting
        client.stop()
        thread.join(20.0)
        is_gone_before_the_poll_ended = not thread.is_alive()

    assert is_gone_before_the_poll_ended, "stop() did not cancel the node's waiting long poll"
