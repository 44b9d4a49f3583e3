"""One SQLite file a party writes durably: the privacy ledger and the audit log share this.

WAL journal with ``synchronous = FULL``: a transaction is on disk when it commits, and a process
killed mid-write leaves the file as it was before that transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DurableSqlite"]


class DurableSqlite:
    """A connection to ``path`` used from any thread, one writer at a time.

    Raises
    ------
    sqlite3.DatabaseError
        If the file is not a database (the caller turns it into its own error).
    """

    def __init__(self, path: str | Path, *, schema: str = "") -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        # One connection, used by whichever thread answers a task (the lock serialises them).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if schema:
                self.db.executescript(schema)
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed at the end of the block or
        rolled back if it raises; inside another, the outer one commits."""
        with self.lock:
            if self.db.in_transaction:
                yield self.db
                return
            self.db.execute("BEGIN IMMEDIATE")  # one writer at a time, from the first statement
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
