"""Who may connect: every refusal is clear on the refused side and the server keeps serving."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from sovereign_ai.core import Result, StageOutcome, Task
from sovereign_ai.errors import AuthenticationError, TransportError
from sovereign_ai.federation.transports.grpc import (
    GrpcCoordinatorTransport,
    GrpcNodeClient,
    fetch_status,
)
from sovereign_ai.pki import (
    load_coordinator_kit,
    load_node_kit,
    parse_federation_spec,
    provision,
    revoke_node,
)

from .conftest import (
    POLL_WAIT_S,
    EchoNode,
    Federation,
    NodeThread,
    federation_mapping,
    node_client,
    running,
    task_for,
    wait_for,
)
from .forged_kits import CLIENT, NOW, SERVER, issue, kit_with

pytestmark = pytest.mark.integration


def serves_a_stage(federation: Federation, transport: GrpcCoordinatorTransport) -> bool:
    """A valid node still gets a task through and its result back."""
    with running([node_client(federation, "hospital-c", transport.port)]):
        transport.wait_for_nodes(1, timeout_s=10.0)
        outcome = transport.run_stage([task_for("hospital-c")], timeout_s=10.0)
    return [r.node_id for r in outcome.results] == ["hospital-c"]


def refused(client: GrpcNodeClient) -> AuthenticationError:
    thread = NodeThread(client).start()
    assert thread.thread is not None
    thread.thread.join(20.0)
    thread.stop.set()
    assert isinstance(thread.error, AuthenticationError), thread.error
    return thread.error


def test_node_of_another_federation_is_refused(
    federation: Federation, transport: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    other = provision(
        parse_federation_spec(federation_mapping("other")),
        tmp_path / "other",
        allow_unencrypted_keys=True,
    )
    impostor = GrpcNodeClient(
        kit=load_node_kit(other.out_dir / "nodes" / "hospital-a"),
        node=EchoNode("hospital-a"),
        address=f"127.0.0.1:{transport.port}",
        max_auth_failures=1,
    )

    error = refused(impostor)

    assert "failed TLS verification" in str(error)
    assert "not issued by the CA of federation 'other'" in str(error)
    assert "this kit is from another federation" in str(error)
    assert transport.available_nodes() == []
    assert serves_a_stage(federation, transport)


def test_foreign_certificate_is_refused_by_the_coordinators_tls(
    federation: Federation, transport: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    other = load_node_kit(
        provision(
            parse_federation_spec(federation_mapping("other")),
            tmp_path / "o",
            allow_unencrypted_keys=True,
        ).out_dir
        / "nodes"
        / "hospital-a"
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=federation.node_kit("hospital-a").ca_pem,  # trusts the real coordinator
        private_key=other.private_key_pem,
        certificate_chain=other.certificate_pem,
    )
    with grpc.secure_channel(f"127.0.0.1:{transport.port}", credentials) as channel:
        status = channel.unary_unary("/sovereign.federation.v1.Federation/Status")
        with pytest.raises(grpc.RpcError) as caught:
            status(b"", timeout=5.0)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert serves_a_stage(federation, transport)


def test_expired_node_certificate_is_refused(
    federation: Federation, transport: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    certificate, key = issue(
        federation.out_dir,
        role="node",
        name="hospital-a",
        usages=[CLIENT],
        not_before=NOW - dt.timedelta(days=40),
        not_after=NOW - dt.timedelta(days=10),
    )
    folder = kit_with(
        federation.out_dir,
        "nodes/hospital-a",
        name="hospital-a",
        certificate=certificate,
        key=key,
        into=tmp_path,
    )
    client = GrpcNodeClient(
        kit=load_node_kit(folder),
        node=EchoNode("hospital-a"),
        address=f"127.0.0.1:{transport.port}",
        max_auth_failures=1,
    )

    error = refused(client)

    assert "refused this party's certificate" in str(error)
    assert serves_a_stage(federation, transport)


def test_expired_coordinator_certificate_is_refused_by_the_node(
    federation: Federation, tmp_path: Path
) -> None:
    certificate, key = issue(
        federation.out_dir,
        role="coordinator",
        name="coordinator",
        usages=[SERVER],
        hosts=["127.0.0.1"],
        not_before=NOW - dt.timedelta(days=40),
        not_after=NOW - dt.timedelta(days=10),
    )
    folder = kit_with(
        federation.out_dir,
        "coordinator",
        name="coordinator",
        certificate=certificate,
        key=key,
        into=tmp_path,
    )
    with GrpcCoordinatorTransport(kit=load_coordinator_kit(folder)) as stale:
        error = refused(node_client(federation, "hospital-a", stale.port, max_auth_failures=1))

    assert "failed TLS verification: certificate has expired" in str(error)


def test_revoked_node_is_locked_out_at_its_next_call(
    federation: Federation, transport: GrpcCoordinatorTransport, caplog: pytest.LogCaptureFixture
) -> None:
    client = node_client(federation, "hospital-a", transport.port, max_auth_failures=2)
    thread = NodeThread(client).start()
    transport.wait_for_nodes(1, timeout_s=10.0)

    revoke_node(federation.out_dir, "hospital-a", reason="left the consortium")
    assert thread.thread is not None
    thread.thread.join(20.0)
    thread.stop.set()

    assert isinstance(thread.error, AuthenticationError)
    assert "was revoked on" in str(thread.error)
    assert transport.available_nodes() == []  # off the roster at once, not after the window
    assert "Refused a call from" in caplog.text
    assert serves_a_stage(federation, transport)


def test_unreadable_roster_refuses_every_node_until_fixed(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    roster = federation.out_dir / "coordinator" / "roster.json"
    good = roster.read_bytes()
    roster.write_bytes(b"{ not json")

    error = refused(node_client(federation, "hospital-a", transport.port, max_auth_failures=1))
    assert "cannot read its roster or revocation list" in str(error)
    assert transport.available_nodes() == []

    roster.write_bytes(good)  # fixed: admitted again, no restart
    assert serves_a_stage(federation, transport)


def test_node_missing_from_the_roster_is_refused(
    federation: Federation, transport: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    certificate, key = issue(federation.out_dir, role="node", name="intruder", usages=[CLIENT])
    folder = kit_with(
        federation.out_dir,
        "nodes/hospital-a",
        name="intruder",
        certificate=certificate,
        key=key,
        into=tmp_path,
    )
    client = GrpcNodeClient(
        kit=load_node_kit(folder),
        node=EchoNode("intruder"),
        address=f"127.0.0.1:{transport.port}",
        max_auth_failures=1,
    )

    error = refused(client)

    assert "'intruder' is not on the roster" in str(error)
    assert serves_a_stage(federation, transport)


def _tls_server(certificate: bytes, key: bytes, ca: bytes) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    credentials = grpc.ssl_server_credentials([(key, certificate)], root_certificates=ca)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@pytest.mark.parametrize(
    ("usages", "expected"),
    [
        ([CLIENT], "unsuitable certificate purpose"),  # what provisioning issues to nodes
        ([SERVER, CLIENT], "A coordinator certificate is required"),  # passes TLS: pki decides
    ],
)
def test_node_certificate_cannot_pose_as_the_coordinator(
    federation: Federation, usages: list[object], expected: str
) -> None:
    certificate, key = issue(
        federation.out_dir, role="node", name="hospital-b", usages=usages, hosts=["127.0.0.1"]
    )
    server, port = _tls_server(certificate, key, federation.coordinator_kit().ca_pem)
    try:
        error = refused(node_client(federation, "hospital-a", port, max_auth_failures=1))
    finally:
        server.stop(None)

    assert expected in str(error)


def test_coordinator_dialled_by_a_name_not_on_its_certificate_is_refused(
    federation: Federation,
) -> None:
    # 127.0.0.2 is loopback too, but not one of the hosts on the coordinator's certificate
    with GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(), bind_address="127.0.0.2:0"
    ) as elsewhere:
        client = GrpcNodeClient(
            kit=federation.node_kit("hospital-a"),
            node=EchoNode("hospital-a"),
            address=f"127.0.0.2:{elsewhere.port}",
            max_auth_failures=1,
        )
        error = refused(client)

    assert "failed TLS verification: IP address mismatch" in str(error)


def test_garbage_on_the_port_does_not_disturb_the_server(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    payloads = [
        os.urandom(4096),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512),  # plaintext HTTP/2 preface
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(600),  # broken ClientHello
        b"",
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", transport.port), timeout=5.0) as raw:
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(5.0)
            try:
                while raw.recv(4096):
                    pass
            except OSError:
                pass  # reset by the server: fine

    assert serves_a_stage(federation, transport)


def test_status_is_for_members_only(
    federation: Federation, transport: GrpcCoordinatorTransport, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{transport.port}"
    assert fetch_status(federation.node_kit("hospital-a"), address=address).coordinator == (
        "coordinator"
    )
    certificate, key = issue(federation.out_dir, role="node", name="intruder", usages=[CLIENT])
    intruder = kit_with(
        federation.out_dir,
        "nodes/hospital-a",
        name="intruder",
        certificate=certificate,
        key=key,
        into=tmp_path,
    )
    with pytest.raises(AuthenticationError, match="not on the roster"):
        fetch_status(load_node_kit(intruder), address=address)


def test_coordinator_kit_reads_status_but_never_pulls_tasks(federation: Federation) -> None:
    # The coordinator's certificate also allows clientAuth, for its operator's status queries;
    # its role (OU and URI name) still keeps it from acting as a node.
    kit = federation.coordinator_kit()
    with GrpcCoordinatorTransport(kit=kit, poll_wait_s=POLL_WAIT_S) as transport:
        address = f"127.0.0.1:{transport.port}"
        status = fetch_status(kit, address=address)
        with grpc.secure_channel(
            address,
            grpc.ssl_channel_credentials(kit.ca_pem, kit.private_key_pem, kit.certificate_pem),
        ) as channel:
            pull = channel.unary_stream("/sovereign.federation.v1.Federation/PullTask")
            with pytest.raises(grpc.RpcError) as caught:
                list(pull(b"", timeout=5.0))

    assert status.coordinator == "coordinator"
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "A node certificate is required" in (caught.value.details() or "")


def test_plaintext_mode_works_and_warns(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with GrpcCoordinatorTransport(
        kit=federation.coordinator_kit(), allow_insecure=True, poll_wait_s=POLL_WAIT_S
    ) as transport:
        client = node_client(federation, "hospital-a", transport.port, allow_insecure=True)
        with running([client]):
            transport.wait_for_nodes(1, timeout_s=10.0)
            outcome = transport.run_stage([task_for("hospital-a")], timeout_s=10.0)

    assert [r.node_id for r in outcome.results] == ["hospital-a"]
    assert caplog.text.count("INSECURE") == 2  # one loud warning from each end


def test_plaintext_node_cannot_reach_a_tls_coordinator(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    with pytest.raises(TransportError) as caught:
        fetch_status(
            federation.node_kit("hospital-a"),
            address=f"127.0.0.1:{transport.port}",
            allow_insecure=True,
            timeout_s=2.0,
        )
    assert f"Status at 127.0.0.1:{transport.port} failed" in str(caught.value)


def test_a_task_held_by_a_node_revoked_mid_stage_fails_at_once(
    federation: Federation, transport: GrpcCoordinatorTransport
) -> None:
    """The stage does not wait for its deadline; the failure names the revocation."""
    release = threading.Event()

    class Stuck(EchoNode):
        def handle(self, task: Task) -> Result:
            release.wait(30)  # holds the task, as a node training a large model would
            return super().handle(task)

    client = node_client(federation, "hospital-a", transport.port, node=Stuck("hospital-a"))
    with running([client]):
        transport.wait_for_nodes(1, timeout_s=10.0)
        outcome: list[StageOutcome] = []
        stage = threading.Thread(
            target=lambda: outcome.append(
                transport.run_stage([task_for("hospital-a")], timeout_s=600.0)
            )
        )
        stage.start()
        wait_for(lambda: any(n.is_busy for n in transport.status().nodes))
        revoke_node(federation.out_dir, "hospital-a", reason="laptop stolen")
        stage.join(30.0)
        release.set()
        assert not stage.is_alive(), "the stage waited for its 600 s deadline"

    assert outcome[0].results == []
    assert "revoked" in outcome[0].failures["hospital-a"]
    assert transport.status().refused == {"hospital-a": "certificate revoked"}
    assert [n.node_id for n in transport.status().nodes] == []
