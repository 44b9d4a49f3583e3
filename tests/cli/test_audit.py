"""``sovereign audit``: verify, report, prove and check-proof on a party's kit folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.governance.audit_log import AUDIT_FILE, AuditLog
from sovereign_ai.pki.certificates import certificate_to_pem
from sovereign_ai.pki.signing import ephemeral_federation

runner = CliRunner(env={"COLUMNS": "200"})
FEDERATION = ephemeral_federation("audit-cli", ["north", "south"])


def kit_with_log(folder: Path, *, party: str = "north") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with AuditLog(folder / AUDIT_FILE, party=party, signer=FEDERATION.signers[party]) as log:
        for round_number in (1, 2):
            log.append("task", {"stage": "train"}, job_id="job-a", round_number=round_number)
            log.append("egress", {"stage": "train", "bytes": 1000, "sha256": "ab" * 32},
                       job_id="job-a", round_number=round_number)  # fmt: skip
        log.append("egress", {"stage": "evaluate", "bytes": 40, "sha256": "cd" * 32},
                   job_id="job-b", round_number=1)  # fmt: skip
        log.checkpoint()
    return folder


def test_verify_says_ok_then_names_the_entry_someone_edited(tmp_path: Path) -> None:
    kit = kit_with_log(tmp_path / "kit")
    result = runner.invoke(app, ["audit", "verify", "--kit", str(kit)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "5 entries" in result.output
    db = sqlite3.connect(kit / AUDIT_FILE)
    db.execute("UPDATE entries SET entry = replace(entry, '1000', '1') WHERE seq = 3")
    db.commit()
    db.close()
    result = runner.invoke(app, ["audit", "verify", "--kit", str(kit)])
    assert result.exit_code == 1
    assert "FAILED" in result.output and "First bad entry: 3" in result.output


def test_report_says_what_left_per_job(tmp_path: Path) -> None:
    kit = kit_with_log(tmp_path / "kit")
    result = runner.invoke(app, ["audit", "report", "--kit", str(kit)])
    assert result.exit_code == 0, result.output
    assert "job-a" in result.output and "job-b" in result.output
    assert "2,000" in result.output  # two train updates of 1,000 bytes
    only = runner.invoke(app, ["audit", "report", "--kit", str(kit), "--job", "job-b"])
    assert "job-a" not in only.output and "evaluate" in only.output


def test_a_proof_is_written_and_checked_offline_against_the_ca(tmp_path: Path) -> None:
    kit = kit_with_log(tmp_path / "kit")
    proof = tmp_path / "proof.json"
    result = runner.invoke(app, ["audit", "prove", "--kit", str(kit), "--entry", "3", "--out",
                                 str(proof)])  # fmt: skip
    assert result.exit_code == 0, result.output
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate_to_pem(FEDERATION.verifier.ca))
    result = runner.invoke(app, ["audit", "check-proof", str(proof), "--ca", str(ca)])
    assert result.exit_code == 0, result.output
    assert "entry 3 (egress, job job-a) is in the audit log of 'north'" in result.output
    assert "by north" in result.output

    proof.write_text(proof.read_text().replace('"bytes": 1000', '"bytes": 10'))
    result = runner.invoke(app, ["audit", "check-proof", str(proof)])
    assert result.exit_code == 2 and "not in the log" in result.output


def test_a_proof_signed_by_another_party_than_it_claims_is_refused(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    kit.mkdir()
    # south's key signing a log that calls itself north's
    with AuditLog(kit / AUDIT_FILE, party="north", signer=FEDERATION.signers["south"]) as log:
        log.append("egress", {"bytes": 1})
        log.checkpoint()
    proof = tmp_path / "proof.json"
    runner.invoke(app, ["audit", "prove", "--kit", str(kit), "--entry", "0", "--out", str(proof)])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificate_to_pem(FEDERATION.verifier.ca))
    result = runner.invoke(app, ["audit", "check-proof", str(proof), "--ca", str(ca)])
    assert result.exit_code == 2
    assert "claims the log of 'north' but is signed by 'south'" in result.output


def test_a_kit_without_a_log_says_what_to_pass(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "--kit", str(tmp_path)])
    assert result.exit_code == 2 and "No audit log" in result.output
    result = runner.invoke(app, ["audit", "check-proof", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "not a readable proof file" in result.output
