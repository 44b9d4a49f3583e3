"""Micro-batching: concurrent requests share session calls, each gets its own rows back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sovereign_ai.errors import ConfigError
from sovereign_ai.serving import BatchingConfig, ServedModel, create_app, running_server
from sovereign_ai.serving import verify_bundle as verify

from .conftest import CLASSES, call

pytestmark = pytest.mark.integration


def samples(url: str, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of metric family ``name`` from /metrics, parsed by Prometheus' parser."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def hammer(url: str, rows: list[np.ndarray[Any, Any]], *, clients: int) -> list[dict[str, Any]]:
    """Send each of ``rows`` as one request, from ``clients`` threads at once."""
    answers: list[dict[str, Any]] = [{}] * len(rows)
    start = threading.Barrier(clients)

    def client(k: int) -> None:
        start.wait()
        for i in range(k, len(rows), clients):
            body = {"id": str(i), "inputs": [{"name": "features", "shape": list(rows[i].shape),
                                              "datatype": "FP32",
                                              "data": rows[i].reshape(-1).tolist()}]}  # fmt: skip
            status, answers[i] = call(f"{url}/v2/models/risk/infer", body)
            assert status == 200, answers[i]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.parametrize("is_enabled", [True, False], ids=["batched", "unbatched"])
def test_concurrent_answers_are_each_requests_own(bundle_dir: Path, is_enabled: bool) -> None:
    model = ServedModel(verify(bundle_dir))
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=(int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(96)]
    config = BatchingConfig(is_enabled=is_enabled, max_batch=32, max_wait_ms=50)
    with running_server(create_app([model], batching=config)) as url:
        answers = hammer(url, rows, clients=8)
        batch = samples(url, "sovereign_serving_batch_requests")
        requests = samples(url, "sovereign_serving_requests")
    for i, answer in enumerate(answers):
        in_process = model.run({"features": rows[i]})["probabilities"]  # ONNX Runtime directly
        assert answer["id"] == str(i)
        probabilities, label = answer["outputs"]
        np.testing.assert_allclose(np.reshape(probabilities["data"], probabilities["shape"]),
                                   in_process, rtol=1e-6, atol=1e-7)  # fmt: skip
        assert label["data"] == [CLASSES[c] for c in in_process.argmax(axis=1)]
    calls = batch[("sovereign_serving_batch_requests_count", (("model", "risk"),))]
    total = batch[("sovereign_serving_batch_requests_sum", (("model", "risk"),))]
    assert total == len(rows)
    if is_enabled:
        assert calls < len(rows), "eight concurrent clients never shared a session call"
        assert (
            batch[("sovereign_serving_batch_requests_bucket", (("le", "1.0"), ("model", "risk")))]
            < calls
        )
    else:
        assert calls == len(rows)
    key = ("sovereign_serving_requests_total",
           (("endpoint", "infer"), ("model", "risk"), ("status", "200")))  # fmt: skip
    assert requests[key] == len(rows)


def test_a_lone_request_does_not_wait_for_the_latency_bound(bundle_dir: Path) -> None:
    import time

    config = BatchingConfig(max_batch=64, max_wait_ms=1000)
    app = create_app([ServedModel(verify(bundle_dir))], batching=config)
    body = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32",
                        "data": [0.0, 1.0, 2.0, 3.0]}]}  # fmt: skip
    with running_server(app) as url:
        call(f"{url}/v2/models/risk/infer", body)  # warm up
        start = time.perf_counter()
        for _ in range(5):
            assert call(f"{url}/v2/models/risk/infer", body)[0] == 200
        elapsed = time.perf_counter() - start
    assert elapsed < 2.5, f"five lone requests took {elapsed:.2f} s: they waited for a batch"


def test_errors_and_unknown_names_are_counted_without_growing_the_labels(
    bundle_dir: Path,
) -> None:
    app = create_app([ServedModel(verify(bundle_dir))])
    with running_server(app) as url:
        wrong = {"name": "features", "shape": [1], "datatype": "FP32", "data": [1.0]}
        call(f"{url}/v2/models/risk/infer", {"inputs": [wrong]})
        for name in ("a", "b", "c"):
            call(f"{url}/v2/models/{name}")
        found = samples(url, "sovereign_serving_requests")
        latency = samples(url, "sovereign_serving_request_duration_seconds")
    assert found[("sovereign_serving_requests_total",
                  (("endpoint", "infer"), ("model", "risk"), ("status", "400")))] == 1  # fmt: skip
    assert found[("sovereign_serving_requests_total",
                  (("endpoint", "metadata"), ("model", ""), ("status", "404")))] == 3  # fmt: skip
    assert {dict(labels)["model"] for _, labels in found} == {"risk", ""}
    assert latency[("sovereign_serving_request_duration_seconds_count",
                    (("endpoint", "infer"), ("model", "risk")))] == 1  # fmt: skip


def test_two_apps_keep_their_own_metrics(bundle_dir: Path) -> None:
    model = ServedModel(verify(bundle_dir))
    first, second = create_app([model]), create_app([model])
    with running_server(first) as one, running_server(second) as two:
        call(f"{one}/v2/health/live")
        assert samples(two, "sovereign_serving_requests") == {}


@pytest.mark.parametrize(("option", "value"), [("max_batch", 0), ("max_wait_ms", -1.0)])
def test_batching_settings_are_checked(option: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"'{option}' parameter of BatchingConfig"):
        BatchingConfig(**{option: value})  # type: ignore[arg-type]
