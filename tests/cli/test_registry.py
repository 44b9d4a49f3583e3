"""`sovereign simulate` registers its model; `sovereign registry` lists, shows, verifies, aliases
and writes cards, and names what fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.pki import CertificateAuthority
from sovereign_ai.pki.certificates import certificate_to_pem
from sovereign_ai.registry import ModelRegistry

from ..registry.conftest import CA, SIGNER, coordinator_signer, make_lineage, make_parameters

runner = CliRunner(env={"COLUMNS": "200"})

JOB = """
[job]
name = "cli-registry"
rounds = 2
[data]
dataset = "breast_cancer"
nodes = 3
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("simulated")
    (folder / "job.toml").write_text(JOB)
    result = runner.invoke(
        app,
        [
            "simulate", str(folder / "job.toml"), "--out", str(folder / "run"),
            "--registry", str(folder / "registry"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Registered as cli-registry:1" in result.output
    return folder


def test_simulate_registers_its_final_model_with_a_matching_passport(simulated: Path) -> None:
    with ModelRegistry(simulated / "registry") as registry:
        version = registry.resolve("cli-registry")
        passport = registry.passport("cli-registry")
    model = (simulated / "run" / "model.safetensors").read_bytes()
    assert passport.parameter_digest == hashlib.sha256(model).hexdigest()
    assert version.model_file.read_bytes() == model
    lineage = passport.lineage
    assert (lineage.mode, lineage.rounds_completed, lineage.coordinator) == ("simulation", 2, None)
    assert [n.node_id for n in lineage.nodes] == ["node-000", "node-001", "node-002"]
    assert all(n.certificate_fingerprint is None and n.epsilon is None for n in lineage.nodes)
    assert lineage.data.dataset == "breast_cancer" and len(lineage.data.feature_names or ()) == 30
    assert lineage.data.input_scaling is not None
    assert lineage.data.input_scaling.source == "pooled"
    assert [r.round_number for r in lineage.metrics] == [1, 2]
    assert "central_accuracy" in lineage.metrics[-1].metrics
    assert lineage.software.numpy and lineage.software.python
    assert not version.is_signed


def test_list_show_card_and_alias(simulated: Path, tmp_path: Path) -> None:
    registry = ["--registry", str(simulated / "registry")]
    listed = runner.invoke(app, ["registry", "list", *registry])
    assert listed.exit_code == 0 and "cli-registry" in listed.output
    shown = runner.invoke(app, ["registry", "show", "cli-registry:1", *registry])
    assert shown.exit_code == 0, shown.output
    assert '"model_name": "cli-registry"' in shown.output
    aliased = runner.invoke(
        app, ["registry", "alias", "cli-registry", "1", "production", *registry]
    )
    assert aliased.exit_code == 0 and "cli-registry@production -> cli-registry:1" in aliased.output
    card = tmp_path / "card.md"
    written = runner.invoke(
        app, ["registry", "card", "cli-registry@production", *registry, "--out", str(card)]
    )
    assert written.exit_code == 0, written.output
    assert card.read_text().startswith("# Model card: cli-registry:1")


def test_verify_an_unsigned_simulation_version(simulated: Path) -> None:
    registry = ["--registry", str(simulated / "registry")]
    strict = runner.invoke(app, ["registry", "verify", "cli-registry", *registry])
    assert strict.exit_code == 1 and "is unsigned" in strict.output
    lenient = runner.invoke(
        app, ["registry", "verify", "cli-registry", *registry, "--allow-unsigned"]
    )
    assert lenient.exit_code == 0 and "verifies" in lenient.output


def signed_registry(folder: Path, signer: object = SIGNER) -> Path:
    with ModelRegistry(folder, create=True) as registry:
        lineage = make_lineage().model_copy(update={"mode": "deployment"})
        from sovereign_ai.registry import CoordinatorRecord

        coordinator = CoordinatorRecord(
            name="coordinator", federation="registry-test", certificate_fingerprint="ef" * 32
        )
        lineage = lineage.model_copy(update={"coordinator": coordinator})
        registry.register("m", make_parameters(), lineage, signer=signer)  # type: ignore[arg-type]
    return folder


def test_verify_with_the_ca_names_the_certified_coordinator(tmp_path: Path) -> None:
    folder = signed_registry(tmp_path / "registry")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate_to_pem(CA.certificate))
    result = runner.invoke(
        app, ["registry", "verify", "m", "--registry", str(folder), "--ca", str(ca)]
    )
    assert result.exit_code == 0, result.output
    assert "certified it to 'coordinator'" in result.output


def test_verify_with_the_ca_refuses_a_signer_it_did_not_certify(tmp_path: Path) -> None:
    """A forger can sign an edited passport with their own key: the signature checks against
    their certificate, and the federation's CA is what refuses it."""
    forger = coordinator_signer(ca=CertificateAuthority.create("forged", validity_days=30))
    folder = signed_registry(tmp_path / "registry", signer=forger)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate_to_pem(CA.certificate))
    result = runner.invoke(
        app, ["registry", "verify", "m", "--registry", str(folder), "--ca", str(ca)]
    )
    assert result.exit_code == 2
    assert "not certified by that CA" in result.output


@pytest.mark.parametrize(
    ("file", "named"), [("model.safetensors", "model file"), ("passport.json", "passport file")]
)
def test_verify_names_a_flipped_byte(tmp_path: Path, file: str, named: str) -> None:
    folder = signed_registry(tmp_path / "registry")
    path = folder / "models" / "m" / "1" / file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["registry", "verify", "m:1", "--registry", str(folder)])
    assert result.exit_code == 1
    assert f"FAILED  {named}" in result.output
    assert "does not verify" in result.output


def test_unknown_references_and_broken_registries_are_clear_errors(tmp_path: Path) -> None:
    folder = signed_registry(tmp_path / "registry")
    unknown = runner.invoke(app, ["registry", "show", "nope", "--registry", str(folder)])
    assert unknown.exit_code == 2 and "Unknown model 'nope'" in unknown.output
    malformed = runner.invoke(app, ["registry", "show", "m:x", "--registry", str(folder)])
    assert malformed.exit_code == 2 and "NAME:VERSION" in malformed.output
    missing = runner.invoke(app, ["registry", "list", "--registry", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "No model registry" in missing.output
    (folder / "registry.sqlite").write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (folder / f"registry.sqlite{suffix}").unlink(missing_ok=True)
    broken = runner.invoke(app, ["registry", "verify", "m", "--registry", str(folder)])
    assert broken.exit_code == 2 and "corrupt" in broken.output
