"""``sovereign serve``: every bundle is verified first; a failure exits non-zero saying why."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.edge import TensorSpec, write_bundle
from sovereign_ai.pki.certificates import certificate_to_pem
from sovereign_ai.pki.signing import ephemeral_federation

runner = CliRunner(env={"COLUMNS": "200"})
OURS = ephemeral_federation("serve-cli", ["north"])
THEIRS = ephemeral_federation("elsewhere", ["north"])


def bundle(folder: Path, *, federation: object = OURS) -> Path:
    # The checks run before ONNX Runtime sees the model, so any bytes stand for model.onnx.
    write_bundle(folder, model=b"not a graph", name="risk", version="1", variant="fp32",
                 inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),),
                 outputs=(TensorSpec(name="y", datatype="FP32", shape=(-1, 3)),),
                 signer=federation.signers["north"])  # type: ignore[attr-defined]  # fmt: skip
    return folder


def test_a_tampered_bundle_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    good, bad = bundle(tmp_path / "good"), bundle(tmp_path / "bad")
    (bad / "model.onnx").write_bytes(b"not a graph either")
    with mock.patch("sovereign_ai.serving.run_server") as run:
        result = runner.invoke(app, ["serve", "--bundle", str(good), "--bundle", str(bad)])
    assert result.exit_code == 2
    assert "model.onnx differs from the one signed" in result.output
    run.assert_not_called()


def test_a_bundle_signed_outside_the_federation_is_refused_with_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate_to_pem(OURS.verifier.ca))
    foreign = bundle(tmp_path / "foreign", federation=THEIRS)
    result = runner.invoke(app, ["serve", "--bundle", str(foreign), "--ca", str(ca)])
    assert result.exit_code == 2
    assert "not by a party of the federation" in result.output


def test_a_missing_folder_or_ca_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--bundle", str(tmp_path / "none")])
    assert result.exit_code == 2 and "No bundle folder" in result.output
    good = bundle(tmp_path / "good")
    result = runner.invoke(app, ["serve", "--bundle", str(good), "--ca", str(tmp_path / "x")])
    assert result.exit_code == 2 and "cannot be read" in result.output


def test_a_verified_bundle_whose_graph_onnx_refuses_is_not_served(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--bundle", str(bundle(tmp_path / "b"))])
    assert result.exit_code == 2 and "ONNX Runtime cannot load" in result.output


def test_serve_needs_a_bundle() -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code != 0 and "--bundle" in result.output
