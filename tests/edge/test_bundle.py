"""Edge bundles: signed as a whole, refused when any byte or the signer differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.edge import InputScaling, TensorSpec, load_bundle, write_bundle
from sovereign_ai.errors import ConfigError, SignatureError
from sovereign_ai.pki.signing import ephemeral_federation

FEDERATION = ephemeral_federation("edge", ["north", "south"])
NORTH, SOUTH = FEDERATION.signers["north"], FEDERATION.signers["south"]
MODEL = b"\x08\x07" + bytes(range(256)) * 8  # stands for model.onnx: the bundle checks bytes


def bundle(folder: Path, **changes: object) -> Path:
    options: dict[str, object] = {
        "model": MODEL, "name": "cancer", "version": "3", "variant": "int8-static",
        "inputs": (TensorSpec(name="input", datatype="FP32", shape=(-1, 2)),),
        "outputs": (TensorSpec(name="logits", datatype="FP32", shape=(-1, 2)),),
        "signer": NORTH, "feature_names": ("a", "b"), "class_names": ("no", "yes"),
        "input_scaling": InputScaling(mean=(1.0, 2.0), std=(0.5, 4.0)),
        "metrics": {"accuracy": 0.95}, "source": {"registry": "cancer:3"},
    }  # fmt: skip
    options.update(changes)
    write_bundle(folder, **options)  # type: ignore[arg-type]
    return folder


def test_a_bundle_round_trips_with_its_signer(tmp_path: Path) -> None:
    loaded = load_bundle(bundle(tmp_path / "b"))
    assert loaded.model_path.read_bytes() == MODEL
    assert loaded.manifest.class_names == ("no", "yes")
    assert loaded.manifest.input_scaling is not None
    assert loaded.signer_certificate == NORTH.certificate
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "manifest.json", "model.onnx", "signature.json"
    ]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(file=st.sampled_from(["model.onnx", "manifest.json"]), position=st.integers(0, 10**6),
       flip=st.integers(1, 255))  # fmt: skip
def test_any_changed_byte_is_refused(tmp_path_factory: pytest.TempPathFactory, file: str,
                                     position: int, flip: int) -> None:  # fmt: skip
    folder = bundle(tmp_path_factory.mktemp("flip") / "b")
    path = folder / file
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= flip
    path.write_bytes(bytes(data))
    with pytest.raises(SignatureError):
        load_bundle(folder)


def test_a_signature_over_another_manifest_is_refused(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b")
    other = bundle(tmp_path / "other", signer=SOUTH, metrics={"accuracy": 0.5})
    (folder / "signature.json").write_bytes((other / "signature.json").read_bytes())
    with pytest.raises(SignatureError, match="not as signed"):
        load_bundle(folder)


def test_whoever_signed_is_reported_for_the_caller_to_check_against_its_ca(tmp_path: Path) -> None:
    signed_by_south = load_bundle(bundle(tmp_path / "b", signer=SOUTH))
    assert signed_by_south.signer_certificate == SOUTH.certificate != NORTH.certificate


@pytest.mark.parametrize("missing", ["model.onnx", "manifest.json", "signature.json"])
def test_a_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    folder = bundle(tmp_path / "b")
    (folder / missing).unlink()
    with pytest.raises(SignatureError, match=missing):
        load_bundle(folder)


def test_garbage_signature_file_and_existing_folder_are_clear_errors(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b")
    (folder / "signature.json").write_text(json.dumps({"certificate": "x"}))
    with pytest.raises(SignatureError, match="not a bundle signature"):
        load_bundle(folder)
    with pytest.raises(ConfigError, match="exists already"):
        bundle(folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_extra_files_are_signed_with_the_bundle(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b", extra_files={"parameters.safetensors": b"weights"})
    loaded = load_bundle(folder)
    assert "parameters.safetensors" in loaded.manifest.files
    (folder / "parameters.safetensors").write_bytes(b"Weights")
    with pytest.raises(SignatureError, match=r"parameters\.safetensors differs"):
        load_bundle(folder)
    with pytest.raises(ConfigError, match="cannot be an extra file"):
        bundle(tmp_path / "c", extra_files={"../x": b""})
