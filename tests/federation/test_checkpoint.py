"""Durable coordinator state: round trips, digests and job binding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.core import Parameters
from sovereign_ai.errors import CheckpointError
from sovereign_ai.federation import CheckpointStore


def params(value: float) -> Parameters:
    return Parameters({"w": np.full((2, 3), value), "b": np.arange(3, dtype=np.float32)})


def test_latest_round_trips_parameters_state_and_metrics(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path) as store:
        store.bind_job(job_id="j", spec_digest="d", spec_json="{}")
        assert store.latest() is None
        store.save_round(round_number=0, parameters=params(0), strategy_state={}, metrics={})
        store.save_round(
            round_number=1,
            parameters=params(1.5),
            strategy_state={"m": np.ones(4, np.float32)},
            metrics={"accuracy": 0.75},
        )
    with CheckpointStore(tmp_path) as reopened:
        latest = reopened.latest()
        assert latest is not None
        assert latest.round_number == 1
        assert latest.parameters == params(1.5)
        assert np.array_equal(latest.strategy_state["m"], np.ones(4))
        assert latest.metrics == {"accuracy": 0.75}
        assert reopened.history() == [{"round": 1.0, "accuracy": 0.75}]


def test_other_job_is_refused(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path) as store:
        store.bind_job(job_id="a", spec_digest="1", spec_json="{}")
    with CheckpointStore(tmp_path) as store, pytest.raises(CheckpointError, match="spec changed"):
        store.bind_job(job_id="b", spec_digest="2", spec_json="{}")


def test_tampered_parameters_are_detected(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path) as store:
        store.save_round(round_number=1, parameters=params(2), strategy_state={}, metrics={})
    file = tmp_path / "parameters" / "round-000001.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with CheckpointStore(tmp_path) as store, pytest.raises(CheckpointError, match="SHA-256"):
        store.latest()


def test_missing_parameters_file_is_reported(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path) as store:
        store.save_round(round_number=1, parameters=params(2), strategy_state={}, metrics={})
    (tmp_path / "parameters" / "round-000001.safetensors").unlink()
    with CheckpointStore(tmp_path) as store, pytest.raises(CheckpointError, match="missing"):
        store.latest()


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path) as store:
        store.save_round(round_number=1, parameters=params(2), strategy_state={}, metrics={})
    assert sorted(p.name for p in (tmp_path / "parameters").iterdir()) == [
        "round-000001.safetensors"
    ]


def test_unwritable_folder_gives_checkpoint_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="Cannot open"):
        CheckpointStore(blocker / "state")


def test_round_records_keep_who_took_part(tmp_path: Path) -> None:
    record = {"cohort": ["a", "b"], "answered": ["a"], "failures": {"b": "late"}, "attempts": 2}
    with CheckpointStore(tmp_path) as store:
        store.save_round(round_number=0, parameters=params(0), strategy_state={}, metrics={})
        store.save_round(
            round_number=1, parameters=params(1), strategy_state={}, metrics={"x": 1.0},
            record=record,
        )  # fmt: skip
    with CheckpointStore(tmp_path) as reopened:
        assert reopened.round_records() == [{"round": 1, "metrics": {"x": 1.0}, **record}]


def test_a_state_folder_from_before_round_records_still_opens(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "state.db") as db:  # the schema of earlier releases
        db.execute(
            "CREATE TABLE rounds (round_number INTEGER PRIMARY KEY, parameters_file TEXT NOT NULL,"
            " parameters_sha256 TEXT NOT NULL, strategy_state BLOB NOT NULL, metrics_json TEXT"
            " NOT NULL, completed_at REAL NOT NULL)"
        )
        db.execute("INSERT INTO rounds VALUES (1, 'f', 'd', x'', '{\"x\": 2.0}', 0)")
    with CheckpointStore(tmp_path) as store:
        assert store.round_records() == [{"round": 1, "metrics": {"x": 2.0}}]
