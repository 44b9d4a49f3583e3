"""Encrypted inference through a real uvicorn server on loopback: the server only ever holds a
public context, answers ciphertexts, and refuses what is unsafe or malformed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.edge import load_bundle
from sovereign_ai.errors import EncryptionError
from sovereign_ai.federation.encrypted_models import encrypted_model, encryption_parameters
from sovereign_ai.learning import create_model, get_parameters
from sovereign_ai.serving import ServedModel, create_app, running_server
from sovereign_ai.serving.encrypted import EncryptedInference, EncryptedServedModel
from sovereign_ai.serving.he_client import EncryptedInferenceClient

MODEL = encrypted_model("he_mlp", get_parameters(create_model(
    "he_mlp", num_features=6, num_classes=3, seed=1, hidden=4)))  # fmt: skip


@pytest.fixture(scope="module")
def url(bundle_dir: Path) -> Iterator[str]:
    served = EncryptedServedModel(MODEL, encryption_parameters(MODEL), ("a", "b", "c"))
    plain = ServedModel(load_bundle(bundle_dir))
    app = create_app([plain], capabilities=[EncryptedInference({"tiny": served})])
    with running_server(app) as base:
        yield base


@pytest.mark.parametrize("rows", [2, 9])
def test_encrypted_predictions_match_the_plaintext_model(url: str, rows: int) -> None:
    client = EncryptedInferenceClient(url, "tiny", rotations=True)
    data = np.random.default_rng(rows).normal(size=(rows, 6))
    got = client.logits(data)
    assert np.max(np.abs(got - MODEL.plaintext(data))) < 1e-2
    assert client.predict(data) == [("a", "b", "c")[i] for i in MODEL.plaintext(data).argmax(1)]


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_context_with_its_secret_key_is_refused(url: str) -> None:
    client = EncryptedInferenceClient(url, "tiny")
    secret = client.keys._context.serialize(save_secret_key=True)
    status, body = post(f"{url}/v2/models/tiny/contexts", secret)
    assert status == 400 and "secret key" in str(body["error"])


def test_unknown_model_context_and_garbage_are_refused(url: str) -> None:
    assert post(f"{url}/v2/models/nope/contexts", b"x")[0] == 404
    assert post(f"{url}/v2/models/tiny/contexts", b"garbage")[0] == 400
    assert post(f"{url}/v2/models/tiny/infer-encrypted", b"SVHE")[0] == 400
    client = EncryptedInferenceClient(url, "tiny")
    with pytest.raises(EncryptionError):  # never sent: the server says so, the client resends
        client._call("POST", "/infer-encrypted", b"SVHE\x01\x00\x00\x00\x02{}\x00\x00\x00\x00")
    assert client.predict(np.zeros((1, 6)))  # and still serves


def test_the_cli_predicts_from_a_csv(url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sovereign_ai.cli.main import app

    rows = np.random.default_rng(5).normal(size=(3, 6))
    labels = [("a", "b", "c")[i] for i in MODEL.plaintext(rows).argmax(1)]
    path = tmp_path / "rows.csv"
    lines = [",".join([*(f"f{i}" for i in range(6)), "truth"])]
    lines += [
        ",".join([*map(repr, row.tolist()), label]) for row, label in zip(rows, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["he", "predict", "--url", url, "--model", "tiny",
                                      "--data", str(path), "--label", "truth"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Agree with --label: 3 of 3" in result.output
