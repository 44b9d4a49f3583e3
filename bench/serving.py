"""Benchmark: the OIP v2 server's throughput and latency, against in-process calls and MLServer.

Run::

    .venv/bin/python bench/serving.py                   # 4,000 requests per configuration
    .venv/bin/python bench/serving.py --quick           # 1,000
    .venv/bin/python bench/serving.py --with-mlserver   # also MLServer, same model, same load

The model: an MLP of the size the federation trains (30 features, 32 hidden units, 2 classes;
Gemm, Relu, Gemm, Softmax), in a signed edge bundle. The load: ``--clients`` concurrent clients,
each a thread holding one keep-alive HTTP/1.1 connection, sending single-row requests back to back
until a fixed total is answered (a closed loop: the load is bounded by the clients). Every server
runs in its own process on loopback; each asks only for the ``probabilities`` output, so every
server does the same work. Reported per configuration: requests per second, p50 and p99 latency,
and the ratio against ONNX Runtime called in-process on the same rows, one call per row (the
overhead of HTTP, JSON and the server). ``sovereign serve`` runs with micro-batching (its default,
latency bound 2 ms) and without (``--no-batching``); MLServer (with ``--with-mlserver``) runs a
20-line ONNX Runtime runtime of its custom-runtime kind (there is no ``mlserver-onnx`` package),
with its adaptive batching on (max 64, 2 ms) and off. MLServer is installed on first use into
``bench/.mlserver-venv`` (git-ignored, never a project dependency).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from _harness import (
    BENCH_DIR,
    command_line,
    console,
    ratio,
    result_name,
    subprocess_env,
    wait_until_quiet,
    write_result,
)
from sovereign_ai.edge import TensorSpec, write_bundle
from sovereign_ai.pki.signing import ephemeral_federation

FEATURES, HIDDEN, CLASSES = 30, 32, 2
MLSERVER_VENV = BENCH_DIR / ".mlserver-venv"
MLSERVER_RUNTIME = """
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options,
                                            providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0])
        (probabilities,) = self.session.run(["probabilities"], {"features": features})
        return InferenceResponse(model_name=self.name, id=payload.id,
                                 outputs=[NumpyCodec.encode_output("probabilities", probabilities)])
"""


def mlp_graph() -> bytes:
    """The ONNX bytes of a 30-32-2 MLP with softmax, random weights (seed 0)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {
        "W1": (rng.normal(size=(FEATURES, HIDDEN)) / np.sqrt(FEATURES)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "W2": (rng.normal(size=(HIDDEN, CLASSES)) / np.sqrt(HIDDEN)).astype(np.float32),
        "b2": np.zeros(CLASSES, np.float32),
    }
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "W1", "b1"], ["h"]),
         helper.make_node("Relu", ["h"], ["a"]),
         helper.make_node("Gemm", ["a", "W2", "b2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["rows", CLASSES])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_bundle(folder: Path) -> Path:
    signer = ephemeral_federation("bench", ["north"]).signers["north"]
    write_bundle(
        folder, model=mlp_graph(), name="mlp", version="1", variant="fp32", signer=signer,
        inputs=(TensorSpec(name="features", datatype="FP32", shape=(-1, FEATURES)),),
        outputs=(TensorSpec(name="probabilities", datatype="FP32", shape=(-1, CLASSES)),),
        class_names=("benign", "malignant"),
    )  # fmt: skip
    return folder


def bodies(rows: np.ndarray[Any, Any]) -> list[bytes]:
    return [
        json.dumps({"id": str(i), "inputs": [{"name": "features", "shape": [1, FEATURES],
                    "datatype": "FP32", "data": row.tolist()}],
                    "outputs": [{"name": "probabilities"}]}).encode()
        for i, row in enumerate(rows)
    ]  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(
    port: int, process: subprocess.Popen[bytes], path: str, timeout_s: float = 90
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited with {process.returncode} before it was ready.")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"The server on port {port} was not ready within {timeout_s} s.")


def load(port: int, path: str, payloads: list[bytes], *, clients: int) -> dict[str, float]:
    """Send every payload once from ``clients`` keep-alive connections; RPS and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    failures: list[str] = []

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        own = []
        barrier.wait()
        for body in payloads[k::clients]:
            start = time.perf_counter()
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            own.append(time.perf_counter() - start)
            if response.status != 200:
                failures.append(answer.decode()[:200])
        connection.close()
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return summary(latencies, wall)


def summary(latencies: Sequence[float], wall_s: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"requests": len(ordered), "rps": len(ordered) / wall_s,
            "p50_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3}  # fmt: skip


def in_process(bundle: Path, rows: np.ndarray[Any, Any]) -> dict[str, float]:
    """ONNX Runtime called directly, one row per call, with the server's session options."""
    from sovereign_ai.serving import ServedModel, verify_bundle

    model = ServedModel(verify_bundle(bundle))
    for row in rows[:200]:
        model.run({"features": row[None, :]})
    latencies = []
    start = time.perf_counter()
    for row in rows:
        t = time.perf_counter()
        model.run({"features": row[None, :]})  # (1, 30)
        latencies.append(time.perf_counter() - t)
    return summary(latencies, time.perf_counter() - start)


def run_server(command: list[str], *, port: int, ready: str, infer: str, payloads: list[bytes],
               clients: int, cwd: Path | None = None) -> dict[str, float]:  # fmt: skip
    wait_until_quiet()
    process = subprocess.Popen(command, env=subprocess_env(), cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_ready(port, process, ready)
        load(port, infer, payloads[: min(500, len(payloads))], clients=clients)  # warm up
        return load(port, infer, payloads, clients=clients)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mlserver_python(venv: Path) -> Path:
    """MLServer's interpreter in ``venv``, which is made on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "mlserver==1.7.1",
                        "onnxruntime==1.32.0"], check=True)  # fmt: skip
    return python


def mlserver_folder(root: Path, bundle: Path, *, port: int, batch: bool) -> Path:
    folder = root / ("mlserver-batched" if batch else "mlserver")
    (folder / "mlp").mkdir(parents=True)
    (folder / "onnx_runtime.py").write_text(MLSERVER_RUNTIME)
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                "parallel_workers": 0, "debug": False, "host": "127.0.0.1"}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {"name": "mlp", "implementation": "onnx_runtime.OnnxRuntime",
             "parameters": {"uri": str(bundle / "model.onnx")}}  # fmt: skip
    if batch:
        model |= {"max_batch_size": 64, "max_batch_time": 0.002}
    (folder / "mlp" / "model-settings.json").write_text(json.dumps(model))
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 requests instead of 4,000")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--with-mlserver", action="store_true", help="also MLServer")
    parser.add_argument("--mlserver-venv", type=Path, default=MLSERVER_VENV,
                        help="where MLServer is (installed there if missing)")  # fmt: skip
    arguments = parser.parse_args(argv)
    out = console()
    count = 1000 if arguments.quick else 4000
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(count, FEATURES)).astype(np.float32)
    payloads = bodies(rows)
    results: dict[str, Any] = {"command": command_line("serving.py", argv), "requests": count,
                               "clients": arguments.clients}  # fmt: skip
    results["machine_before"] = wait_until_quiet()
    sovereign = str(Path(sys.executable).parent / "sovereign")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        bundle = make_bundle(root / "bundle")
        with out.status("ONNX Runtime in-process..."):
            results["in_process"] = in_process(bundle, rows)
        runs = {
            "sovereign serve, batching": [],
            "sovereign serve, --no-batching": ["--no-batching"],
        }
        for label, extra in runs.items():
            port = free_port()
            with out.status(f"{label}..."):
                results[label] = run_server(
                    [sovereign, "serve", "--bundle", str(bundle), "--port", str(port), *extra],
                    port=port, ready="/v2/health/ready", infer="/v2/models/mlp/infer",
                    payloads=payloads, clients=arguments.clients,
                )  # fmt: skip
        if arguments.with_mlserver:
            python = mlserver_python(arguments.mlserver_venv)
            version = subprocess.run([str(python), "-m", "pip", "show", "mlserver"],
                                     capture_output=True, text=True, check=True).stdout  # fmt: skip
            results["mlserver_version"] = version.split("Version: ")[1].split()[0]
            for batch in (True, False):
                port = free_port()
                folder = mlserver_folder(root, bundle, port=port, batch=batch)
                label = "MLServer, adaptive batching" if batch else "MLServer, no batching"
                with out.status(f"{label}..."):
                    results[label] = run_server(
                        [str(python.parent / "mlserver"), "start", str(folder)], port=port,
                        ready="/v2/health/ready", infer="/v2/models/mlp/infer",
                        payloads=payloads, clients=arguments.clients, cwd=folder,
                    )  # fmt: skip
    baseline = results["in_process"]
    table = Table(title=f"OIP v2 on loopback: {count:,} single-row requests, "
                        f"{arguments.clients} keep-alive clients; 30-32-2 MLP")  # fmt: skip
    for column in ("server", "requests/s", "p50", "p99", "RPS / in-process", "p50 / in-process"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for label, figures in results.items():
        if not isinstance(figures, dict) or "rps" not in figures:
            continue
        name = "ONNX Runtime in-process (1 caller)" if label == "in_process" else label
        table.add_row(
            name, f"{figures['rps']:,.0f}", f"{figures['p50_ms']:.2f} ms",
            f"{figures['p99_ms']:.2f} ms", f"{ratio(figures['rps'], baseline['rps']):.3f}x",
            f"{ratio(figures['p50_ms'], baseline['p50_ms']):.0f}x",
        )  # fmt: skip
    out.print(table)
    path = write_result(result_name("serving", quick=arguments.quick,
                                    custom=arguments.clients != 8), results)  # fmt: skip
    out.print(f"Written to {path}")


if __name__ == "__main__":
    main()
