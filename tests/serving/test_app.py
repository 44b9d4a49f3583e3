"""The OIP v2 endpoints through a real uvicorn server on loopback: valid and invalid requests."""

from __future__ import annotations

import http.client
import urllib.parse
from typing import Any

import numpy as np
import pytest

from .conftest import CLASSES, call, expected_probabilities

pytestmark = pytest.mark.integration

ROWS = np.array([[0.1, -1.0, 2.0, 0.5], [3.0, 0.0, -2.0, 1.0]], dtype=np.float32)


def request(data: Any = None, **changes: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": [2, 4], "datatype": "FP32",
              "data": ROWS.reshape(-1).tolist() if data is None else data}  # fmt: skip
    tensor.update(changes)
    return {"id": "req-7", "inputs": [tensor]}


def test_health_and_server_metadata(live: str) -> None:
    assert call(f"{live}/v2/health/live") == (200, {"live": True})
    assert call(f"{live}/v2/health/ready") == (200, {"ready": True})
    status, server = call(f"{live}/v2")
    assert status == 200 and server["name"] == "sovereign-ai" and server["extensions"] == []


def test_model_metadata_names_platform_versions_and_tensors(live: str) -> None:
    status, metadata = call(f"{live}/v2/models/risk")
    assert status == 200
    assert metadata == {
        "name": "risk", "versions": ["1"], "platform": "onnxruntime",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]}],
    }  # fmt: skip
    assert call(f"{live}/v2/models/risk/versions/1") == (200, metadata)
    assert call(f"{live}/v2/models/risk/ready") == (200, {"name": "risk", "ready": True})


@pytest.mark.parametrize("data", ["flat", "nested"])
def test_infer_answers_probabilities_and_labels_and_echoes_the_id(live: str, data: str) -> None:
    values = ROWS.reshape(-1).tolist() if data == "flat" else ROWS.tolist()
    status, answer = call(f"{live}/v2/models/risk/infer", request(values))
    assert status == 200, answer
    assert answer["model_name"] == "risk" and answer["model_version"] == "1"
    assert answer["id"] == "req-7"
    probabilities, label = answer["outputs"]
    assert probabilities["name"] == "probabilities" and probabilities["datatype"] == "FP32"
    assert probabilities["shape"] == [2, 3]
    expected = expected_probabilities(ROWS)
    np.testing.assert_allclose(np.reshape(probabilities["data"], (2, 3)), expected, rtol=1e-5)
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2],
                     "data": [CLASSES[i] for i in expected.argmax(axis=1)]}  # fmt: skip


def test_infer_with_a_version_and_chosen_outputs(live: str) -> None:
    body = request() | {"outputs": [{"name": "label"}]}
    status, answer = call(f"{live}/v2/models/risk/versions/1/infer", body)
    assert status == 200
    assert [o["name"] for o in answer["outputs"]] == ["label"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (request(shape=[2, 5]), "must have shape [-1, 4]"),
        (request(shape=[4]), "must have shape [-1, 4]"),
        (request(shape=[3, 4]), "needs 12 values; its data holds 8"),
        (request(datatype="FP64"), "must be of datatype FP32; got FP64"),
        (request(data=["a"] * 8), "is not a (flat or evenly nested) list of FP32"),
        (request(data=[[1.0, 2.0], [3.0]]), "not a (flat or evenly nested) list"),
        (request(name="x"), "Missing input(s) ['features']"),
        ({"inputs": []}, "not an OIP inference request"),
        ({"id": "1"}, "not an OIP inference request"),
        (request() | {"outputs": [{"name": "nope"}]}, "Unknown output 'nope'"),
        (b"{not json", "not an OIP inference request"),
    ],
    ids=[
        "shape",
        "rank",
        "count",
        "datatype",
        "strings",
        "ragged",
        "missing",
        "no-inputs",
        "no-inputs-key",
        "unknown-output",
        "not-json",
    ],
)
def test_a_request_that_does_not_fit_is_a_400_saying_why(live: str, body: Any, reason: str) -> None:
    status, answer = call(f"{live}/v2/models/risk/infer", body)
    assert status == 400
    assert list(answer) == ["error"] and reason in answer["error"], answer


def test_an_extra_input_is_refused_by_name(live: str) -> None:
    body = request()
    body["inputs"].append({"name": "extra", "shape": [1], "datatype": "FP32", "data": [1.0]})
    status, answer = call(f"{live}/v2/models/risk/infer", body)
    assert status == 400 and "Unknown input(s) ['extra']" in answer["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/risk/versions/9",
        "/v2/models/nope/ready",
        "/v2/models/risk/versions/9/ready",
        "/v2/nothing-here",
    ],
)
def test_unknown_models_versions_and_paths_are_404_with_an_error(live: str, path: str) -> None:
    status, answer = call(f"{live}{path}")
    assert status == 404 and list(answer) == ["error"]


def test_infer_on_an_unknown_model_or_version_is_a_404(live: str) -> None:
    assert call(f"{live}/v2/models/nope/infer", request())[0] == 404
    status, answer = call(f"{live}/v2/models/risk/versions/2/infer", request())
    assert status == 404 and "version of model 'risk': '2'; expected one of: 1" in answer["error"]


def test_a_get_on_infer_is_refused_with_an_oip_error(live: str) -> None:
    status, answer = call(f"{live}/v2/models/risk/infer")
    assert status == 405 and list(answer) == ["error"]


def test_keep_alive_connection_serves_many_requests(live: str) -> None:
    parts = urllib.parse.urlsplit(live)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    import json

    try:
        for _ in range(5):
            connection.request("POST", "/v2/models/risk/infer", json.dumps(request()),
                               {"Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["id"] == "req-7"
    finally:
        connection.close()
