"""Durable coordinator state: after each round, the round is on disk before the next begins.

One SQLite file (``state.db``) per coordinator holds the job it belongs to and one row per completed
round (metrics, strategy state, digest of the parameters); the parameters themselves are
safetensors files beside it. A parameters file is written to a temporary name, flushed and renamed
*before* the row that names it commits, so a process killed at any instant leaves either the whole
round or none of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovereign_ai.core import FloatArray, Parameters
from sovereign_ai.errors import CheckpointError, SerializationError

__all__ = ["CheckpointStore", "RoundCheckpoint", "write_atomically"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    job_id TEXT NOT NULL,
    spec_digest TEXT NOT NULL,
    spec_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round_number INTEGER PRIMARY KEY,
    parameters_file TEXT NOT NULL,
    parameters_sha256 TEXT NOT NULL,
    strategy_state BLOB NOT NULL,
    metrics_json TEXT NOT NULL,
    completed_at REAL NOT NULL,
    record_json TEXT NOT NULL DEFAULT '{}'
);
"""
_ADDED_COLUMNS = {"record_json": "TEXT NOT NULL DEFAULT '{}'"}  # columns newer than a state.db


@dataclass(frozen=True)
class RoundCheckpoint:
    """The durable state after one completed round (round 0 holds the initial model)."""

    round_number: int
    parameters: Parameters
    strategy_state: dict[str, FloatArray]
    metrics: dict[str, float]


class CheckpointStore:
    """A coordinator's durable state in one folder.

    Parameters
    ----------
    directory
        Created if missing; holds ``state.db`` and ``parameters/round-NNNNNN.safetensors``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._params_dir = self.directory / "parameters"
        try:
            self._params_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.directory / "state.db", isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(rounds)")}
            for name, declaration in _ADDED_COLUMNS.items():
                if name not in columns:
                    self._db.execute(f"ALTER TABLE rounds ADD COLUMN {name} {declaration}")
        except (OSError, sqlite3.Error) as exc:
            raise CheckpointError(
                f"Cannot open the coordinator state in {str(self.directory)!r}: {exc}."
            ) from exc

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Job binding --------------------------------------------------------------------------------
    def bind_job(self, *, job_id: str, spec_digest: str, spec_json: str) -> None:
        """Record which job this state belongs to, or check that it is the same job.

        Raises
        ------
        CheckpointError
            If the folder already holds state of a different job spec.
        """
        row = self._db.execute("SELECT job_id, spec_digest FROM job WHERE id = 1").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO job (id, job_id, spec_digest, spec_json) VALUES (1, ?, ?, ?)",
                (job_id, spec_digest, spec_json),
            )
        elif row[1] != spec_digest:
            raise CheckpointError(
                f"The state in {str(self.directory)!r} belongs to job {row[0]!r}, not {job_id!r} "
                "(the job spec changed). Give this job its own run folder (--out DIR; the "
                "default is runs/<job name>, so a new [job] name also works), or restore the "
                "original spec to resume it."
            )

    def has_rounds(self) -> bool:
        """Whether any round (including the initial round 0) is durable."""
        return self._db.execute("SELECT 1 FROM rounds LIMIT 1").fetchone() is not None

    # Rounds -------------------------------------------------------------------------------------
    def save_round(
        self,
        *,
        round_number: int,
        parameters: Parameters,
        strategy_state: Mapping[str, FloatArray],
        metrics: Mapping[str, float],
        record: Mapping[str, Any] | None = None,
    ) -> None:
        """Make one completed round durable (parameters file first, then the row).

        ``record`` holds JSON-ready facts about the round kept beside its metrics (who was
        asked, who answered, why others did not).
        """
        payload = parameters.to_bytes()
        name = f"round-{round_number:06d}.safetensors"
        write_atomically(self._params_dir / name, payload)
        state_bytes = Parameters(dict(strategy_state)).to_bytes()
        self._db.execute(
            "INSERT OR REPLACE INTO rounds (round_number, parameters_file, parameters_sha256, "
            "strategy_state, metrics_json, completed_at, record_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                round_number,
                name,
                hashlib.sha256(payload).hexdigest(),
                state_bytes,
                json.dumps(dict(metrics), sort_keys=True),
                time.time(),
                json.dumps(dict(record or {}), sort_keys=True),
            ),
        )

    def latest(self) -> RoundCheckpoint | None:
        """The most recent durable round, verified against its digest; ``None`` if none."""
        row = self._db.execute(
            "SELECT round_number, parameters_file, parameters_sha256, strategy_state, metrics_json "
            "FROM rounds ORDER BY round_number DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        round_number, file_name, digest, state_bytes, metrics_json = row
        path = self._params_dir / file_name
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"Parameters of round {round_number} missing: {exc}.") from exc
        if hashlib.sha256(payload).hexdigest() != digest:
            raise CheckpointError(
                f"Parameters file {str(path)!r} of round {round_number} does not match its "
                "recorded SHA-256; the state was modified or damaged."
            )
        try:
            parameters = Parameters.from_bytes(payload)
            state = dict(Parameters.from_bytes(bytes(state_bytes)))
        except SerializationError as exc:
            raise CheckpointError(f"Round {round_number} state is corrupt: {exc}") from exc
        return RoundCheckpoint(
            round_number=int(round_number),
            parameters=parameters,
            strategy_state=state,
            metrics=json.loads(metrics_json),
        )

    def history(self) -> list[dict[str, float]]:
        """Metrics of every durable round in order, each with its ``round``."""
        return [{"round": float(r["round"]), **r["metrics"]} for r in self.round_records()]

    def round_records(self) -> list[dict[str, Any]]:
        """Every durable round after round 0, in order: ``round``, ``metrics`` and its record.

        Rounds written before records were kept have an empty record.
        """
        rows = self._db.execute(
            "SELECT round_number, metrics_json, record_json FROM rounds WHERE round_number > 0 "
            "ORDER BY round_number"
        ).fetchall()
        return [
            {**json.loads(record), "round": int(number), "metrics": json.loads(metrics)}
            for number, metrics, record in rows
        ]


def write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
