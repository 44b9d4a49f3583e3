"""Fixtures: a small signed bundle (a softmax regression built with onnx.helper) and a live server.

The graph: ``probabilities = softmax(features @ W + b)``, features (rows, 4) FP32, three classes
named ``low``, ``mid``, ``high``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sovereign_ai.edge import TensorSpec, write_bundle
from sovereign_ai.pki.signing import ephemeral_federation

FEDERATION = ephemeral_federation("serving", ["north"])
SIGNER = FEDERATION.signers["north"]
RNG = np.random.default_rng(7)
WEIGHTS = RNG.normal(size=(4, 3)).astype(np.float32)  # (features, classes)
BIAS = RNG.normal(size=(3,)).astype(np.float32)
CLASSES = ("low", "mid", "high")


def softmax_graph(*, rows: int | str = "rows") -> bytes:
    """The ONNX bytes of the softmax regression (``rows``: a fixed batch size or a dim name)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "W", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "softmax-regression",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [rows, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [rows, 3])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_probabilities(features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the graph computes, in NumPy."""
    logits = features.astype(np.float32) @ WEIGHTS + BIAS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def make_bundle(folder: Path, *, signer: Any = SIGNER, version: str = "1", **changes: Any) -> Path:
    """Write a signed bundle of the softmax regression to ``folder``."""
    options: dict[str, Any] = {
        "model": softmax_graph(), "name": "risk", "version": version, "variant": "fp32",
        "inputs": (TensorSpec(name="features", datatype="FP32", shape=(-1, 4)),),
        "outputs": (TensorSpec(name="probabilities", datatype="FP32", shape=(-1, 3)),),
        "signer": signer, "class_names": CLASSES,
    }  # fmt: skip
    options.update(changes)
    write_bundle(folder, **options)
    return folder


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "risk")


def call(url: str, body: Any = None, *, method: str | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body) of one HTTP request; ``body`` bytes are sent as they are."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def live(bundle_dir: Path) -> Iterator[str]:
    """The base URL of a real uvicorn server on loopback serving the bundle, batching on."""
    from sovereign_ai.serving import (
        BatchingConfig,
        ServedModel,
        create_app,
        running_server,
        verify_bundle,
    )

    app = create_app(
        [ServedModel(verify_bundle(bundle_dir))],
        batching=BatchingConfig(max_batch=64, max_wait_ms=20),
    )
    with running_server(app) as url:
        yield url
