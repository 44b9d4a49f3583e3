"""``verify_version`` detects a changed byte in a model or passport, and a forged signature."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign_ai.core.signatures import check_signature
from sovereign_ai.registry import ModelRegistry, RegisteredVersion, verify_version

from .conftest import SIGNER, coordinator_signer, make_lineage, make_parameters


@pytest.fixture
def signed(tmp_path: Path) -> RegisteredVersion:
    with ModelRegistry(tmp_path, create=True) as registry:
        return registry.register("m", make_parameters(), make_lineage(), signer=SIGNER)


def failed(version: RegisteredVersion) -> list[str]:
    return [check.name for check in verify_version(version).failures]


def flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_untouched_signed_version_verifies(signed: RegisteredVersion) -> None:
    report = verify_version(signed)
    assert report.is_intact and report.is_signed and report.is_ok()
    assert report.certificate == SIGNER.certificate
    assert [c.name for c in report.checks] == [
        "passport file",
        "passport",
        "signature",
        "model file",
    ]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(min_value=0, max_value=10**6))
def test_any_flipped_byte_of_the_model_is_detected(signed: RegisteredVersion, index: int) -> None:
    original = signed.model_file.read_bytes()
    flip(signed.model_file, index)
    try:
        assert failed(signed) == ["model file"]
    finally:
        signed.model_file.write_bytes(original)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(min_value=0, max_value=10**6))
def test_any_flipped_byte_of_the_passport_is_detected(
    signed: RegisteredVersion, index: int
) -> None:
    original = signed.passport_file.read_bytes()
    flip(signed.passport_file, index)
    try:
        report = verify_version(signed)
        assert not report.is_ok()
        assert "passport file" in [c.name for c in report.failures]
        # Either the bytes no longer parse as a passport, or their signature fails.
        assert {"passport", "signature"} & {c.name for c in report.failures}
    finally:
        signed.passport_file.write_bytes(original)


def test_a_signature_by_another_key_does_not_verify(signed: RegisteredVersion) -> None:
    document = json.loads(signed.signature_file.read_bytes())
    other = coordinator_signer("intruder")
    document["signature"] = base64.b64encode(other.sign(signed.passport_file.read_bytes())).decode()
    signed.signature_file.write_text(json.dumps(document))
    assert failed(signed) == ["signature"]


def test_a_garbled_signature_file_is_named(signed: RegisteredVersion) -> None:
    signed.signature_file.write_text("{not json")
    assert failed(signed) == ["signature"]


@pytest.mark.parametrize("which", ["model_file", "passport_file", "signature_file"])
def test_a_missing_file_is_named(signed: RegisteredVersion, which: str) -> None:
    getattr(signed, which).unlink()
    report = verify_version(signed)
    expected = {"model_file": "model file", "passport_file": "passport file"}.get(
        which, "signature"
    )
    assert [c.name for c in report.failures] == [expected]
    assert "missing" in report.failures[0].detail


def test_a_passport_moved_to_another_version_is_detected(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        first = registry.register("m", make_parameters(0), make_lineage(), signer=SIGNER)
        second = registry.register("m", make_parameters(1), make_lineage(), signer=SIGNER)
    for name in ("passport.json", "signature.json", "model.safetensors"):
        shutil.copy(first.folder / name, second.folder / name)
    # The registry's row of version 2 still holds version 2's digests.
    assert set(failed(second)) == {"passport file", "passport", "model file"}


def test_an_unsigned_version_is_intact_but_not_signed(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        version = registry.register("m", make_parameters(), make_lineage(), signer=None)
    report = verify_version(version)
    assert report.is_intact and not report.is_signed
    assert not report.is_ok() and report.is_ok(allow_unsigned=True)
    flip(version.passport_file, 40)
    assert failed(version)[0] == "passport file"


def test_the_signature_covers_the_canonical_passport_bytes(signed: RegisteredVersion) -> None:
    from sovereign_ai.registry._files import PassportSignature

    signature = PassportSignature.from_bytes(signed.signature_file.read_bytes())
    check_signature(signature.certificate, signed.passport_file.read_bytes(), signature.signature)
