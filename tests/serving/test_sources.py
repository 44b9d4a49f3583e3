"""Only verified bundles are served: tampered or foreign-signed ones are refused before loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from sovereign_ai.edge import TensorSpec
from sovereign_ai.errors import ConfigError, SignatureError
from sovereign_ai.pki.certificates import certificate_to_pem
from sovereign_ai.pki.signing import ephemeral_federation
from sovereign_ai.serving import (
    ServedModel,
    ServingContext,
    bundle_folder,
    create_app,
    running_server,
    verify_bundle,
)

from .conftest import FEDERATION, call, make_bundle, softmax_graph

CA_PEM = certificate_to_pem(FEDERATION.verifier.ca)


def test_a_tampered_model_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    model = folder / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-5] ^= 0x01  # one bit of an initializer: still a valid graph, another model
    model.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match=r"model\.onnx differs from the one signed"):
        verify_bundle(folder)


def test_a_tampered_manifest_is_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"low"', '"LOW"'))
    with pytest.raises(SignatureError, match="not as signed"):
        verify_bundle(folder)


def test_the_ca_check_accepts_its_own_federation_and_refuses_another(tmp_path: Path) -> None:
    ours = verify_bundle(make_bundle(tmp_path / "ours"), ca_pem=CA_PEM)
    assert ours.manifest.name == "risk"
    stranger = ephemeral_federation("elsewhere", ["north"]).signers["north"]
    foreign = make_bundle(tmp_path / "foreign", signer=stranger)
    verify_bundle(foreign)  # signed and intact: only the CA tells it is not ours
    with pytest.raises(SignatureError, match="not by a party of the federation"):
        verify_bundle(foreign, ca_pem=CA_PEM)


def test_a_source_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No bundle folder"):
        bundle_folder(tmp_path / "missing")


def test_a_manifest_that_disagrees_with_the_graph_is_refused(tmp_path: Path) -> None:
    wrong = (TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),)
    folder = make_bundle(tmp_path / "b", inputs=wrong)
    with pytest.raises(ConfigError, match=r"takes inputs \['features'\]; its manifest says"):
        ServedModel(verify_bundle(folder))


def test_a_model_of_fixed_batch_size_runs_unbatched(tmp_path: Path) -> None:
    folder = make_bundle(
        tmp_path / "b", model=softmax_graph(rows=1),
        inputs=(TensorSpec(name="features", datatype="FP32", shape=(1, 4)),),
        outputs=(TensorSpec(name="probabilities", datatype="FP32", shape=(1, 3)),),
    )  # fmt: skip
    model = ServedModel(verify_bundle(folder))
    assert not model.is_batchable
    body = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32",
                        "data": [1.0, 2.0, 3.0, 4.0]}]}  # fmt: skip
    with running_server(create_app([model])) as url:
        status, answer = call(f"{url}/v2/models/risk/infer", body)
        assert call(f"{url}/v2/models/risk/infer", body | {"inputs": [
            body["inputs"][0] | {"shape": [2, 4], "data": [0.0] * 8}]})[0] == 400  # fmt: skip
    assert status == 200
    expected = model.run({"features": np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)})
    np.testing.assert_allclose(answer["outputs"][0]["data"], expected["probabilities"][0])


def test_two_versions_of_a_name_are_served_first_by_default(tmp_path: Path) -> None:
    one = ServedModel(verify_bundle(make_bundle(tmp_path / "1", version="1")))
    two = ServedModel(verify_bundle(make_bundle(tmp_path / "2", version="2")))
    with pytest.raises(ConfigError, match="given twice"):
        create_app([one, one])
    with running_server(create_app([two, one])) as url:
        assert call(f"{url}/v2/models/risk")[1]["versions"] == ["2", "1"]
        assert call(f"{url}/v2/models/risk/versions/1")[0] == 200


class Echo:
    """A capability adding its own route, as encrypted inference will."""

    name = "echo"

    def add_routes(self, app: FastAPI, context: ServingContext) -> None:
        @app.post("/v2/models/{name}/echo")
        async def echo(name: str) -> object:
            async def work() -> dict[str, str]:
                return {"served": context.models.get(name).name}

            return await context.respond(endpoint="echo", model=name, work=work)


def test_a_capability_adds_routes_with_the_oip_errors(tmp_path: Path) -> None:
    model = ServedModel(verify_bundle(make_bundle(tmp_path / "b")))
    with running_server(create_app([model], capabilities=[Echo()])) as url:
        assert call(f"{url}/v2")[1]["extensions"] == ["echo"]
        assert call(f"{url}/v2/models/risk/echo", b"") == (200, {"served": "risk"})
        status, answer = call(f"{url}/v2/models/nope/echo", b"")
    assert status == 404 and "Unknown model 'nope'" in answer["error"]
