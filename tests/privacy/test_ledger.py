"""The data owner's ledger: composition across jobs, refusal over budget, and crash safety."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sovereign_ai.errors import ConfigError, PrivacyBudgetError
from sovereign_ai.privacy import Accounting, PrivacyEvent, PrivacyLedger, epsilon_spent

DELTA = 1e-5
JOB_A = [PrivacyEvent(1.1, 0.05, 100), PrivacyEvent(1.1, 0.05, 100)]
JOB_B = [PrivacyEvent(2.0, 0.2, 50)]


@pytest.fixture
def ledger(tmp_path: Path) -> PrivacyLedger:
    ledger = PrivacyLedger(tmp_path / "ledger.sqlite")
    ledger.set_budget("patients", max_epsilon=10.0, delta=DELTA)
    return ledger


def record(ledger: PrivacyLedger, job: str, events: list[PrivacyEvent]) -> None:
    for number, event in enumerate(events, start=1):
        ledger.spend("patients", event, job_id=job, round_number=number)


def test_two_jobs_compose_to_the_accountants_answer_for_the_whole_history(
    ledger: PrivacyLedger,
) -> None:
    record(ledger, "job-a", JOB_A)
    record(ledger, "job-b", JOB_B)
    total = ledger.spent("patients")
    assert total == pytest.approx(epsilon_spent([*JOB_A, *JOB_B], delta=DELTA), rel=1e-12)
    alone = ledger.spent("patients", job_id="job-a") + ledger.spent("patients", job_id="job-b")
    assert total < alone
    assert ledger.jobs("patients") == ["job-a", "job-b"]
    assert [e.round_number for e in ledger.entries("patients", job_id="job-a")] == [1, 2]


def test_a_job_whose_projected_spend_exceeds_the_budget_is_refused_with_the_numbers(
    ledger: PrivacyLedger,
) -> None:
    record(ledger, "job-a", JOB_A)
    greedy = [PrivacyEvent(0.6, 0.5, 400)]
    projected = epsilon_spent([*JOB_A, *greedy], delta=DELTA)
    assert projected > 10
    with pytest.raises(PrivacyBudgetError, match=r"over its owner's budget of ε = 10") as caught:
        ledger.check("patients", greedy)
    assert caught.value.projected == pytest.approx(projected)
    assert caught.value.spent == pytest.approx(ledger.spent("patients"))
    assert ledger.check("patients", JOB_B) < 10  # a modest job still fits


def test_spending_stops_at_the_budget_and_records_nothing_over_it(ledger: PrivacyLedger) -> None:
    ledger.set_budget("patients", max_epsilon=1.0, delta=DELTA)
    step = PrivacyEvent(1.0, 0.1, 20)
    spent_rounds = 0
    with pytest.raises(PrivacyBudgetError):
        for round_number in range(1, 1000):
            ledger.spend("patients", step, job_id="j", round_number=round_number)
            spent_rounds += 1
    assert ledger.spent("patients") <= 1.0
    assert len(ledger.entries("patients")) == spent_rounds


def test_a_dataset_without_a_budget_is_refused(tmp_path: Path) -> None:
    with (
        PrivacyLedger(tmp_path / "l.sqlite") as ledger,
        pytest.raises(ConfigError, match="has no privacy budget"),
    ):
        ledger.check("unknown", JOB_B)


def test_the_budget_keeps_its_delta_once_something_was_spent(ledger: PrivacyLedger) -> None:
    record(ledger, "job-a", JOB_A[:1])
    ledger.set_budget("patients", max_epsilon=20.0, delta=DELTA)  # raising the cap is fine
    with pytest.raises(ConfigError, match="must keep them"):
        ledger.set_budget("patients", max_epsilon=20.0, delta=1e-6)
    with pytest.raises(ConfigError, match="must keep them"):
        ledger.set_budget("patients", max_epsilon=20.0, delta=DELTA, accounting=Accounting.PLD)


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a privacy ledger"):
        PrivacyLedger(path)


WRITER = """
import sys
from sovereign_ai.privacy import PrivacyEvent, PrivacyLedger
ledger = PrivacyLedger(sys.argv[1])
ledger.set_budget("patients", max_epsilon=1e9, delta=1e-5)
print("ready", flush=True)
round_number = 0
while True:
    round_number += 1
    ledger.spend("patients", PrivacyEvent(5.0, 0.01, 1), job_id="j", round_number=round_number)
"""


@pytest.mark.slow
def test_a_process_killed_while_writing_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(path)],
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == b"ready"
    time.sleep(1.0)  # many transactions in flight
    writer.kill()
    writer.wait(timeout=30)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with PrivacyLedger(path) as ledger:
        entries = ledger.entries("patients")
        assert entries, "the writer recorded nothing before it was killed"
        assert [e.round_number for e in entries] == list(range(1, len(entries) + 1))
        assert ledger.spent("patients") > 0
        ledger.spend("patients", PrivacyEvent(5.0, 0.01, 1), job_id="after", round_number=1)
