"""Flower's side of ``bench/flower_deployment.py``: SuperLink and SuperNodes as processes, with TLS.

:func:`setup_flower` makes what a Flower federation needs before any job (not timed): a CA and a
server certificate for 127.0.0.1 (by ``sovereign_ai.pki``: the coordinator certificate of an empty
federation), an EC P-384 key pair per SuperNode, and their registration with ``flwr supernode
register`` on a SuperLink whose state file each run then starts from. :func:`run_flower` starts
``flower-superlink`` (HTTPS, SuperNode authentication on) and one ``flower-supernode`` per node,
submits a generated Flower App project with ``flwr run`` and waits for the ServerApp's figures.
Everything runs from ``bench/.flower-venv`` with ``$FLWR_HOME`` inside the run's folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _deployment_job import PreparedJob, timeline
from _harness import BENCH_DIR, subprocess_env, wait_until_quiet
from _process_tree import ChildrenMonitor, ProcessTree, wait_for_port
from flower_compare import FLOWER_VENV
from sovereign_ai.federation.local_processes import free_port
from sovereign_ai.pki import parse_federation_spec, provision

__all__ = ["FlowerFederation", "run_flower", "setup_flower"]

FLOWER_BIN = FLOWER_VENV / "bin"


@dataclasses.dataclass(frozen=True)
class FlowerFederation:
    """Flower's CA and server certificate, the nodes' keys and a SuperLink state that knows them."""

    folder: Path
    ca: Path
    certificate: Path
    key: Path
    node_keys: list[Path]
    registered_state: Path  # a SuperLink database with every node's public key registered
    setup_s: float


def _flower_env(home: Path) -> dict[str, str]:
    env = subprocess_env()  # telemetry off, one BLAS thread
    env.update(
        {
            "FLWR_HOME": str(home),  # Flower's config, installed FABs: inside the run's folder
            "FLWR_DISABLE_UPDATE_CHECK": "1",  # it would ask flower.ai for the latest version
            "PATH": f"{FLOWER_BIN}{os.pathsep}{env.get('PATH', '')}",  # SuperExec is found by name
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _write_connection(home: Path, port: int, ca: Path) -> None:
    """The ``flwr`` CLI's SuperLink connection ``bench`` (``$FLWR_HOME/config.toml``)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\n'
        f'root-certificates = "{ca}"\n',
        encoding="utf-8",
    )


def _superlink_command(federation: FlowerFederation, port: int, database: Path) -> list[str]:
    return [
        str(FLOWER_BIN / "flower-superlink"),
        "--ssl-ca-certfile", str(federation.ca),
        "--ssl-certfile", str(federation.certificate),
        "--ssl-keyfile", str(federation.key),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",  # else `uv sync` of the app's dependencies
        "--database", str(database),
    ]  # fmt: skip


def _flwr(args: list[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(FLOWER_BIN / "flwr"), *args, "--format", "json"],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0 or '"success": true' not in done.stdout:
        raise RuntimeError(f"`flwr {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def setup_flower(folder: Path, *, nodes: int) -> FlowerFederation:
    """Make Flower's CA, certificate and node keys; register the keys with a SuperLink once."""
    start = time.perf_counter()
    # The SuperLink's certificate: a fresh CA and a server certificate for 127.0.0.1/localhost,
    # made by sovereign_ai.pki (the coordinator certificate of an empty federation).
    spec = parse_federation_spec(
        {
            "federation": {"name": "flower-bench"},
            "coordinator": {
                "name": "superlink",
                "address": "127.0.0.1:9092",  # recorded in the kit only; the port is chosen later
                "hosts": ["127.0.0.1", "localhost"],
            },
            "nodes": [],
        }
    )
    provision(spec, folder / "pki", allow_unencrypted_keys=True)  # Flower reads the key file
    kit = folder / "pki" / "coordinator"
    node_keys = []
    for index in range(nodes):
        key = ec.generate_private_key(ec.SECP384R1())  # a NIST curve, as Flower requires
        private = folder / f"supernode-{index:03d}.key"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        private.chmod(0o600)
        private.with_suffix(".pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        )
        node_keys.append(private)
    federation = FlowerFederation(
        folder=folder,
        ca=kit / "ca.pem",
        certificate=kit / "coordinator.pem",
        key=kit / "coordinator.key",
        node_keys=node_keys,
        registered_state=folder / "registered" / "superlink.db",
        setup_s=0.0,
    )
    federation.registered_state.parent.mkdir()
    home = folder / "flwr-home"
    env = _flower_env(home)
    port = free_port()
    _write_connection(home, port, federation.ca)
    with ProcessTree() as tree:
        superlink = tree.spawn(
            _superlink_command(federation, port, federation.registered_state),
            log=folder / "superlink-registration.log",
            env=env,
            cwd=folder,
        )
        wait_for_port(port, timeout_s=60, alive=superlink)
        for private in node_keys:
            _flwr(
                ["supernode", "register", str(private.with_suffix(".pub")), "bench"],
                env=env,
                cwd=folder,
            )
    return dataclasses.replace(federation, setup_s=time.perf_counter() - start)


def _write_app(folder: Path, job: PreparedJob, figures: Path) -> None:
    """A Flower App project: the two app modules and a pyproject.toml that names them."""
    folder.mkdir(parents=True)
    for module in ("_flower_app.py", "_flower_deploy_app.py"):
        shutil.copy(BENCH_DIR / module, folder / module)
    config = {**job.flower_config, "figures": str(figures)}
    (folder / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        'name = "sovereign-bench-deployment"\n'
        'version = "1.0.0"\n'
        'description = "The job of bench/flower_deployment.py"\n'
        'license = "Apache-2.0"\n'
        "dependencies = []\n\n"
        "[tool.flwr.app]\n"
        'publisher = "sovereign-bench"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "_flower_deploy_app:app"\n'
        'clientapp = "_flower_app:app"\n\n'
        "[tool.flwr.app.config]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()),
        encoding="utf-8",
    )


def run_flower(job: PreparedJob, federation: FlowerFederation, folder: Path) -> dict[str, Any]:
    """One run of Flower: SuperLink and SuperNodes as processes, the job by ``flwr run``."""
    folder.mkdir(parents=True)
    (folder / "logs").mkdir()
    state = folder / "superlink.db"
    for suffix in ("", "-wal", "-shm"):  # the registered nodes, nothing else
        source = Path(f"{federation.registered_state}{suffix}")
        if source.exists():
            shutil.copy(source, f"{state}{suffix}")
    figures = folder / "figures.json"
    _write_app(folder / "app", job, figures)
    home = folder / "flwr-home"
    env = _flower_env(home)
    port = free_port()
    _write_connection(home, port, federation.ca)
    nodes = len(job.node_names)
    supernodes = [
        [
            str(FLOWER_BIN / "flower-supernode"),
            "--root-certificates", str(federation.ca),
            "--superlink", f"127.0.0.1:{port}",
            "--auth-supernode-private-key", str(federation.node_keys[index]),
            "--node-config", f"partition-id={index} num-partitions={nodes}",
            "--host", "127.0.0.1",
            "--port", str(free_port()),  # its Runtime API, for its own ClientApp processes
        ]
        for index in range(nodes)
    ]  # fmt: skip
    timeout_s = 300 + 120 * job.rounds
    quiet = wait_until_quiet()
    monitor = ChildrenMonitor().start()
    tree = ProcessTree()
    try:
        t0 = time.time()
        superlink = tree.spawn(
            _superlink_command(federation, port, state),
            log=folder / "logs" / "superlink.log",
            env=env,
            cwd=folder,
        )
        for index, command in enumerate(supernodes):
            tree.spawn(command, log=folder / "logs" / f"supernode-{index:03d}.log", env=env,
                       cwd=folder)  # fmt: skip
        listening = wait_for_port(port, timeout_s=60, alive=superlink)
        submitted = json.loads(_flwr(["run", str(folder / "app"), "bench"], env=env, cwd=folder))
        accepted = time.time()
        checked = 0.0
        while not figures.exists():
            time.sleep(0.05)
            if time.monotonic() - checked < 0.5:
                continue
            checked = time.monotonic()
            tree.remember()
            if superlink.poll() is not None:
                raise RuntimeError(_flower_failure("The SuperLink exited", folder))
            if tree.has_exited("flwr-serverapp") and not _appears(figures, within_s=5):
                raise RuntimeError(_flower_failure("The ServerApp ended without a result", folder))
            if time.time() - t0 > timeout_s:
                raise RuntimeError(_flower_failure(f"No result within {timeout_s} s", folder))
        result = json.loads(figures.read_text(encoding="utf-8"))
    finally:
        tree.stop()  # every process reaped before the monitor reads the kernel's CPU accounts
        monitor.stop()
    return {
        "framework": "flower",
        **timeline(t0, result["round_end_unix"], result["done_unix"]),
        "superlink_listening_s": listening - t0,
        "run_accepted_s": accepted - t0,  # `flwr run` built the FAB and the SuperLink took it
        "serverapp_started_s": result["serverapp_started_unix"] - t0,
        "run_id": submitted.get("run-id"),
        "central_accuracy": result["central_accuracy"],
        "final_accuracy": result["central_accuracy"][-1],
        "federated_accuracy": result["federated_accuracy"],
        "setup_s": federation.setup_s,
        **monitor.to_json(),
        **quiet,
    }


def _appears(path: Path, *, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.1)
    return path.exists()


def _flower_failure(what: str, folder: Path) -> str:
    tails = []
    for log in sorted((folder / "logs").glob("*.log"))[:2]:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        tails.append(f"--- {log.name} ---\n" + "\n".join(lines[-30:]))
    return f"{what}; logs in {folder / 'logs'}:\n" + "\n".join(tails)
