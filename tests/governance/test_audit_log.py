"""The audit log: appends that survive reopening, verification that names the first bad entry
whatever was done to the file, and proofs a third party checks offline."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import AuditError
from sovereign_ai.governance.audit_log import (
    AuditLog,
    check_proof,
    prove,
    read_entries,
    record_start,
    verify_log,
)
from sovereign_ai.governance.merkle import MerkleFrontier, leaf_hash
from sovereign_ai.pki.signing import IdentitySigner, ephemeral_federation

FEDERATION = ephemeral_federation("audit-test", ["north", "south"])
NORTH: IdentitySigner = FEDERATION.signers["north"]
SOUTH: IdentitySigner = FEDERATION.signers["south"]


def filled(path: Path, count: int = 10, *, checkpoint_every: int = 4) -> Path:
    with AuditLog(path, party="north", signer=NORTH) as log:
        for i in range(count):
            log.append("egress", {"bytes": 100 + i, "sha256": f"{i:064x}"}, job_id="job-a",
                       round_number=i // 3 + 1)  # fmt: skip
            if (i + 1) % checkpoint_every == 0:
                log.checkpoint()
        log.checkpoint()
    return path


def sql(path: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(statement, args)
    db.commit()
    db.close()


def test_an_untouched_log_verifies_and_survives_reopening(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 10)
    with AuditLog(path, party="north", signer=NORTH) as log:
        assert log.size == 10
        log.append("task", {"stage": "train"}, job_id="job-b", round_number=1)
        log.checkpoint()
    report = verify_log(path)
    assert report.ok, report.problem
    assert (report.entries, report.signed_through, report.checkpoints) == (11, 11, 4)
    assert [e.seq for e in read_entries(path, job_id="job-b")] == [10]


def test_a_log_belongs_to_one_party(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 2)
    with pytest.raises(AuditError, match="audit log of 'north'"):
        AuditLog(path, party="south", signer=SOUTH)


def test_an_edited_entry_is_named(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    sql(
        path,
        "UPDATE entries SET entry = replace(entry, '\"bytes\":106', '\"bytes\":1') WHERE seq = 6",
    )
    report = verify_log(path)
    assert (report.ok, report.first_bad) == (False, 6)
    assert "entry 6 was altered" in report.problem


def test_a_deleted_entry_is_named(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    sql(path, "DELETE FROM entries WHERE seq = 3")
    report = verify_log(path)
    assert (report.ok, report.first_bad) == (False, 3)
    assert "entry 3 is missing" in report.problem


def test_reordered_entries_are_named(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    sql(path, "UPDATE entries SET seq = -1 WHERE seq = 4")
    sql(path, "UPDATE entries SET seq = 4 WHERE seq = 5")
    sql(path, "UPDATE entries SET seq = 5 WHERE seq = -1")
    report = verify_log(path)
    assert (report.ok, report.first_bad) == (False, 4)


def test_entries_rewritten_with_their_hashes_fail_at_the_signed_checkpoint(
    tmp_path: Path,
) -> None:
    path = filled(tmp_path / "audit.sqlite")  # checkpoints at 4, 8 and 10
    # Someone with write access but not the key rewrites entry 5 and recomputes every hash.
    frontier = MerkleFrontier()
    db = sqlite3.connect(path)
    for entry in read_entries(path):
        body = {"bytes": 1, "sha256": "0"} if entry.seq == 5 else dict(entry.body)
        forged = dataclasses.replace(entry, body=body)
        leaf = leaf_hash(forged.leaf_data())
        frontier.append(leaf)
        db.execute(
            "UPDATE entries SET entry = ?, leaf = ?, head = ? WHERE seq = ?",
            (forged.leaf_data().decode(), leaf, frontier.root(), entry.seq),
        )
    db.commit()
    db.close()
    report = verify_log(path)
    assert not report.ok
    assert (report.first_bad, report.signed_through) == (4, 4)  # entries 4..7 are suspect
    assert "checkpoint of size 8 does not match" in report.problem


def test_a_forged_signature_is_caught(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    db = sqlite3.connect(path)
    (signature,) = db.execute("SELECT signature FROM checkpoints WHERE tree_size = 8").fetchone()
    db.close()
    sql(path, "UPDATE checkpoints SET signature = ? WHERE tree_size = 8",
        bytes([signature[0] ^ 1]) + signature[1:])  # fmt: skip
    report = verify_log(path)
    assert not report.ok and "not signed by its certificate's key" in report.problem


def test_entries_cut_from_the_end_are_caught_by_the_last_checkpoint(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    sql(path, "DELETE FROM entries WHERE seq >= 9")
    report = verify_log(path)
    assert not report.ok and "removed from its end" in report.problem


@pytest.mark.parametrize("cut", [0, 100, 4096])
def test_a_truncated_file_is_an_error_never_a_pass(tmp_path: Path, cut: int) -> None:
    path = filled(tmp_path / "audit.sqlite")
    (tmp_path / "audit.sqlite-wal").unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(AuditError):
        report = verify_log(path)
        assert not report.ok  # if SQLite reads a cut file as empty, it must still not pass
        raise AuditError(report.problem)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="No audit log"):
        verify_log(tmp_path / "nothing.sqlite")


def test_a_proof_checks_offline_and_fails_when_altered(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite")
    document = json.loads(json.dumps(prove(path, 6)))  # as written to a file and read back
    checkpoint, entry = check_proof(document)
    assert (entry.seq, checkpoint.tree_size, checkpoint.party) == (6, 10, "north")
    assert checkpoint.certificate == NORTH.certificate

    altered = json.loads(json.dumps(document))
    altered["entry"]["body"]["bytes"] = 1
    with pytest.raises(AuditError, match="not in the log"):
        check_proof(altered)
    moved = json.loads(json.dumps(document))
    moved["entry"]["seq"] = 7
    with pytest.raises(AuditError, match="not in the log"):
        check_proof(moved)


def test_a_proof_against_another_logs_checkpoint_is_rejected(tmp_path: Path) -> None:
    north = prove(filled(tmp_path / "north.sqlite"), 2)
    other = tmp_path / "south.sqlite"
    with AuditLog(other, party="south", signer=SOUTH) as log:
        for i in range(10):
            log.append("egress", {"bytes": i}, job_id="job-z")
        log.checkpoint()
    south = prove(other, 2)
    mixed = {**north, "checkpoint": south["checkpoint"]}
    with pytest.raises(AuditError, match="not in the log"):
        check_proof(mixed)
    claimed = {**north, "checkpoint": {**north["checkpoint"], "party": "south"}}
    with pytest.raises(AuditError, match="not signed"):
        check_proof(claimed)


@pytest.mark.parametrize(
    "document",
    [{}, {"format": "x"}, {"format": "sovereign-audit-proof/1", "entry": 3}],
)
def test_a_malformed_proof_is_an_error(document: dict[str, object]) -> None:
    with pytest.raises(AuditError):
        check_proof(document)


def test_no_proof_before_a_checkpoint_covers_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, party="north", signer=NORTH) as log:
        log.append("task", {})
    with pytest.raises(AuditError, match="No signed checkpoint covers entry 0"):
        prove(path, 0)
    with pytest.raises(AuditError, match="no entry 5"):
        prove(path, 5)


def test_a_body_that_is_not_json_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.sqlite", party="north", signer=NORTH) as log:
        with pytest.raises(AuditError, match="JSON"):
            log.append("egress", {"bad": object()})
        assert log.size == 0
        log.append("egress", {"ok": 1})
    assert verify_log(tmp_path / "audit.sqlite").entries == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(2, 30), data=st.data())
def test_any_single_edit_is_found_at_the_entry_edited(
    tmp_path_factory: pytest.TempPathFactory, count: int, data: st.DataObject
) -> None:
    path = filled(tmp_path_factory.mktemp("log") / "audit.sqlite", count, checkpoint_every=5)
    target = data.draw(st.integers(0, count - 1))
    field = data.draw(st.sampled_from(["body", "kind", "job", "round", "at"]))
    value = {"body": {"bytes": 0}, "kind": "nothing", "job": "job-x", "round": 99,
             "at": "2020-01-01T00:00:00"}[field]  # fmt: skip
    db = sqlite3.connect(path)
    (text,) = db.execute("SELECT entry FROM entries WHERE seq = ?", (target,)).fetchone()
    edited = {**json.loads(text), field: value}
    canonical = json.dumps(edited, sort_keys=True, separators=(",", ":"))
    db.execute("UPDATE entries SET entry = ? WHERE seq = ?", (canonical, target))
    db.commit()
    db.close()
    report = verify_log(path)
    assert (report.ok, report.first_bad) == (False, target)


def test_an_edit_deep_in_a_long_log_is_named_at_its_row(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, party="north", signer=NORTH) as log:
        with log.batch():
            for i in range(9000):  # more than one block of stored heads checked at once
                log.append("egress", {"n": i})
        log.checkpoint()
    # the row rewritten with its own leaf, but not the heads after it
    entry = read_entries(path)[5000]
    forged = dataclasses.replace(entry, body={"n": -1})
    sql(path, "UPDATE entries SET entry = ?, leaf = ? WHERE seq = 5000",
        forged.leaf_data().decode(), leaf_hash(forged.leaf_data()))  # fmt: skip
    report = verify_log(path)
    assert (report.ok, report.first_bad) == (False, 5000)
    assert "no longer fits" in report.problem


def test_threads_appending_at_once_get_consecutive_numbers_and_a_log_that_verifies(
    tmp_path: Path,
) -> None:
    """A party's round loop and its transport write one log: no entry may take another's
    number. The switch interval is cut to make the threads interleave inside ``append``."""
    path = tmp_path / "audit.sqlite"
    errors: list[BaseException] = []
    log = AuditLog(path, party="north", signer=NORTH)

    def wire(thread: int) -> None:
        try:
            for n in range(150):
                log.append("wire_received", {"thread": thread, "n": n})
        except BaseException as exc:  # reported below, with the assertion
            errors.append(exc)

    def rounds() -> None:
        try:
            for n in range(30):
                with log.batch():
                    log.append("received", {"n": n, "part": 0})
                    log.append("received", {"n": n, "part": 1})
                    log.checkpoint()
        except BaseException as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=wire, args=(t,)) for t in range(6)]
        threads.append(threading.Thread(target=rounds))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
        log.close()
    assert errors == []
    entries = read_entries(path)
    assert [e.seq for e in entries] == list(range(6 * 150 + 30 * 2))
    for thread in range(6):  # each thread's entries in its own order
        mine = [e.body["n"] for e in entries if e.body.get("thread") == thread]
        assert mine == list(range(150))
    batched = [i for i, e in enumerate(entries) if e.kind == "received"]
    assert all(b - a == 1 for a, b in zip(batched[::2], batched[1::2], strict=True))  # together
    report = verify_log(path)
    assert report.ok, report.problem
    assert report.checkpoints == 30


def test_a_closed_or_unwritable_log_raises_an_audit_error_and_keeps_its_size(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", party="north", signer=NORTH)
    log.append("egress", {"bytes": 1})
    log.close()
    with pytest.raises(AuditError, match=r"cannot be written.*closed"):
        log.append("egress", {"bytes": 2})
    with pytest.raises(AuditError, match="cannot be written"), log.batch():
        log.append("egress", {"bytes": 3})
    with pytest.raises(AuditError, match="cannot be written"):
        log.checkpoint()
    assert log.size == 1
    assert [e.body for e in read_entries(tmp_path / "audit.sqlite")] == [{"bytes": 1}]


def test_a_log_that_cannot_be_created_says_where_and_why(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"cannot be opened or created .* folder must exist"):
        AuditLog(tmp_path / "no-such-kit" / "audit.sqlite", party="north", signer=NORTH)


def test_each_start_records_the_key_and_policy_and_flags_what_changed(tmp_path: Path) -> None:
    north, south = FEDERATION.signers["north"], FEDERATION.signers["south"]
    log = AuditLog(tmp_path / "audit.sqlite", party="north", signer=north)
    first = record_start(log, kind="node_started", certificate_pem=north.certificate,
                         policy_text=b"max_rounds = 5\n")  # fmt: skip
    log.append("egress", {"stage": "train"})
    same = record_start(log, kind="node_started", certificate_pem=north.certificate,
                        policy_text=b"max_rounds = 5\n")  # fmt: skip
    edited = record_start(log, kind="node_started", certificate_pem=north.certificate,
                          policy_text=b"max_rounds = 50\n")  # fmt: skip
    renewed = record_start(log, kind="node_started", certificate_pem=south.certificate,
                           policy_text=b"max_rounds = 50\n")  # fmt: skip
    flags = [(e.body["key_changed"], e.body["policy_changed"])
             for e in (first, same, edited, renewed)]  # fmt: skip
    assert flags == [(False, False), (False, False), (False, True), (True, False)]
    assert first.body["policy_sha256"] != edited.body["policy_sha256"]
    assert log.last("node_started") == renewed and log.last("nothing") is None
    report = verify_log(tmp_path / "audit.sqlite")
    log.close()
    assert report.ok and report.signed_through == report.entries == 5


def test_last_finds_the_kind_not_a_body_that_mentions_it(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", party="north", signer=FEDERATION.signers["north"])
    real = log.append("node_started", {"certificate_sha256": "a"})
    log.append("egress", {"note": '"kind":"node_started"', "kind": "node_started"})
    assert log.last("node_started") == real
    log.close()
