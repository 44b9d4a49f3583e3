"""A data owner's privacy-budget ledger: every mechanism run on each dataset, across every job.

The ledger is the *node's*: one SQLite file in the node's own folder, written only by the node.
For each dataset the owner sets a budget, ``max_epsilon`` at a ``δ``. Every privacy event that
touches the dataset is recorded, with the job and round it belongs to. What has been spent is the
whole history *composed*: RDP curves added, or PLDs convolved, then converted to ε once
(:func:`~sovereign_ai.privacy.accounting.epsilon_spent`). ε values of jobs are never added;
composing is tighter, and it is what the guarantee means.

Before a job, :meth:`PrivacyLedger.check` tells whether the job's projected events still fit the
budget, and refuses with the numbers if not. During a job, :meth:`PrivacyLedger.spend` records an
event only if it fits, in the same transaction as the check. Each write is one SQLite transaction
(WAL journal, synchronous ``FULL``), so a process killed mid-write leaves the ledger as it was
before the write, or with the whole event recorded: never half.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovereign_ai.core.durable_sqlite import DurableSqlite
from sovereign_ai.errors import ConfigError, PrivacyBudgetError
from sovereign_ai.privacy.accounting import Accounting, PrivacyEvent, epsilon_spent

__all__ = ["Budget", "LedgerEntry", "PrivacyLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    dataset TEXT PRIMARY KEY,
    max_epsilon REAL NOT NULL CHECK (max_epsilon > 0),
    delta REAL NOT NULL CHECK (delta > 0 AND delta < 1),
    accounting TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL REFERENCES budgets(dataset),
    job_id TEXT NOT NULL,
    round_number INTEGER NOT NULL,
    what TEXT NOT NULL,
    event TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_dataset ON events (dataset, job_id);
"""


@dataclass(frozen=True)
class Budget:
    """A dataset's budget: at most ``max_epsilon`` at ``delta``, composed with ``accounting``."""

    dataset: str
    max_epsilon: float
    delta: float
    accounting: Accounting


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded event: what ran on which dataset, for which job and round."""

    dataset: str
    job_id: str
    round_number: int
    what: str
    event: PrivacyEvent
    recorded_at: str


class PrivacyLedger:
    """The node's ledger in ``path`` (created if missing).

    Parameters
    ----------
    path
        The SQLite file, e.g. ``<node kit>/privacy-ledger.sqlite``.

    Raises
    ------
    ConfigError
        If the file exists but is not a ledger.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = DurableSqlite(self.path, schema=_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a privacy ledger: {exc}.") from exc
        self._db = self._file.db
        self._transaction = self._file.transaction

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> PrivacyLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Budgets ------------------------------------------------------------------------------------
    def set_budget(
        self,
        dataset: str,
        *,
        max_epsilon: float,
        delta: float,
        accounting: Accounting = Accounting.RDP,
    ) -> None:
        """Set (or change) a dataset's budget; what was spent stays recorded.

        Raises
        ------
        ConfigError
            If a value is out of range, or ``delta``/``accounting`` differ from those the
            dataset's events were recorded under (ε at one δ is not comparable with another).
        """
        if not dataset:
            raise ConfigError("A dataset needs a name in the privacy ledger.")
        if not (math.isfinite(max_epsilon) and max_epsilon > 0):
            raise ConfigError(f"'max_epsilon' must be > 0; got {max_epsilon!r}.")
        if not 0 < delta < 1:
            raise ConfigError(f"'delta' must be in (0, 1); got {delta!r}.")
        method = Accounting(accounting)
        current = self.budget(dataset)
        changes = current is not None and (current.delta, current.accounting) != (delta, method)
        if current is not None and changes and self.entries(dataset):
            raise ConfigError(
                f"Dataset {dataset!r} has spending recorded at δ = {current.delta:g} with "
                f"{current.accounting.value} accounting; its budget must keep them (got "
                f"δ = {delta:g}, {method.value})."
            )
        with self._transaction() as db:
            db.execute(
                "INSERT INTO budgets (dataset, max_epsilon, delta, accounting, set_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET "
                "max_epsilon = excluded.max_epsilon, delta = excluded.delta, "
                "accounting = excluded.accounting, set_at = excluded.set_at",
                (dataset, float(max_epsilon), float(delta), method.value, _now()),
            )

    def budget(self, dataset: str) -> Budget | None:
        """The dataset's budget, or ``None`` if the owner set none."""
        row = self._db.execute(
            "SELECT max_epsilon, delta, accounting FROM budgets WHERE dataset = ?", (dataset,)
        ).fetchone()
        if row is None:
            return None
        return Budget(dataset, float(row[0]), float(row[1]), Accounting(row[2]))

    def datasets(self) -> list[str]:
        """Every dataset with a budget, sorted."""
        return [r[0] for r in self._db.execute("SELECT dataset FROM budgets ORDER BY dataset")]

    # Spending -----------------------------------------------------------------------------------
    def entries(self, dataset: str, *, job_id: str | None = None) -> list[LedgerEntry]:
        """The recorded events of a dataset (of one job, if given), oldest first."""
        query = (
            "SELECT dataset, job_id, round_number, what, event, recorded_at FROM events "
            "WHERE dataset = ?"
        )
        arguments: tuple[str, ...] = (dataset,)
        if job_id is not None:
            query += " AND job_id = ?"
            arguments = (dataset, job_id)
        rows = self._db.execute(query + " ORDER BY id", arguments).fetchall()
        return [
            LedgerEntry(r[0], r[1], int(r[2]), r[3], PrivacyEvent.from_json(r[4]), r[5])
            for r in rows
        ]

    def spent(self, dataset: str, *, job_id: str | None = None) -> float:
        """ε spent on ``dataset`` at its budget's δ: all jobs composed (or one job's alone)."""
        budget = self._require_budget(dataset)
        events = [e.event for e in self.entries(dataset, job_id=job_id)]
        return epsilon_spent(events, delta=budget.delta, method=budget.accounting)

    def projected(self, dataset: str, events: Sequence[PrivacyEvent]) -> float:
        """ε the dataset would have spent after ``events`` as well."""
        budget = self._require_budget(dataset)
        history = [e.event for e in self.entries(dataset)]
        return epsilon_spent([*history, *events], delta=budget.delta, method=budget.accounting)

    def check(self, dataset: str, events: Sequence[PrivacyEvent]) -> float:
        """The projected ε after ``events``, if within the budget.

        Raises
        ------
        PrivacyBudgetError
            With the numbers, if the projection exceeds the budget.
        ConfigError
            If the dataset has no budget (the owner must set one before any DP job).
        """
        budget = self._require_budget(dataset)
        projected = self.projected(dataset, events)
        if projected > budget.max_epsilon:
            raise PrivacyBudgetError(
                dataset=dataset,
                spent=self.spent(dataset),
                projected=projected,
                budget=budget.max_epsilon,
                delta=budget.delta,
            )
        return projected

    def spend(
        self,
        dataset: str,
        event: PrivacyEvent,
        *,
        job_id: str,
        round_number: int,
        what: str = "round",
    ) -> float:
        """Record ``event`` if it fits the budget; return the ε spent then.

        The check and the write are one transaction: two processes sharing the ledger cannot
        both spend the last of a budget.

        Raises
        ------
        PrivacyBudgetError
            If it would exceed the budget (nothing is recorded).
        """
        with self._transaction() as db:
            projected = self.check(dataset, [event])
            db.execute(
                "INSERT INTO events (dataset, job_id, round_number, what, event, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (dataset, job_id, int(round_number), what, event.to_json(), _now()),
            )
        return projected

    def last_round(self, dataset: str, *, job_id: str) -> int:
        """The latest round of ``job_id`` recorded for ``dataset`` (0 if none)."""
        row = self._db.execute(
            "SELECT MAX(round_number) FROM events WHERE dataset = ? AND job_id = ?",
            (dataset, job_id),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def jobs(self, dataset: str) -> list[str]:
        """The jobs that spent on ``dataset``, in the order they first did."""
        rows = self._db.execute(
            "SELECT job_id FROM events WHERE dataset = ? GROUP BY job_id ORDER BY MIN(id)",
            (dataset,),
        )
        return [r[0] for r in rows]

    def _require_budget(self, dataset: str) -> Budget:
        budget = self.budget(dataset)
        if budget is None:
            raise ConfigError(
                f"Dataset {dataset!r} has no privacy budget in {self.path}; its owner sets one "
                "('max_epsilon' and 'delta') before any job with differential privacy."
            )
        return budget


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
