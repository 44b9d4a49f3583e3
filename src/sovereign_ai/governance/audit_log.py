"""A party's audit log: append-only entries in SQLite, an RFC 9162 Merkle tree over them, and
checkpoints of its head signed with the party's certificate key.

Each entry is one canonical JSON object (its number, kind, job, round, time and body), stored as
the exact text hashed as its leaf. The row keeps its leaf hash and the tree head after it, so
editing a row by hand shows at that row; a checkpoint signs (party, size, head, time), so
rewriting rows *and* their hashes shows at the first checkpoint after the change, which nobody
without the party's key can re-sign. A proof (:func:`prove`) carries one entry, its inclusion
path and a signed checkpoint: a third party checks it offline (:func:`check_proof`) with the
party's certificate alone.

Writes are single SQLite transactions in WAL mode with ``synchronous = FULL``: once
:meth:`AuditLog.append` returns, the entry is on disk, before whatever it records is sent.
One log may be written from several threads (a party's round loop and its transport): each
write holds the log's lock from reading the tree's size to updating it, so entries get
consecutive numbers in the order they commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sovereign_ai.core.durable_sqlite import DurableSqlite
from sovereign_ai.core.signatures import Signer, check_signature
from sovereign_ai.errors import AuditError, SignatureError
from sovereign_ai.governance.merkle import (
    MerkleFrontier,
    inclusion_proof,
    leaf_hash,
    verify_inclusion,
)

__all__ = [
    "AUDIT_FILE",
    "AuditEntry",
    "AuditLog",
    "AuditSigner",
    "Checkpoint",
    "VerifyReport",
    "check_proof",
    "prove",
    "read_entries",
    "record_start",
    "verify_log",
]

AUDIT_FILE = "audit-log.sqlite"
"""The log's file name in a party's kit folder."""

_FORMAT = "sovereign-audit/1"
_PROOF_FORMAT = "sovereign-audit-proof/1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    job_id TEXT,
    entry TEXT NOT NULL,
    leaf BLOB NOT NULL,
    head BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_job ON entries (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER PRIMARY KEY,
    head BLOB NOT NULL,
    signed_at TEXT NOT NULL,
    certificate BLOB NOT NULL,
    signature BLOB NOT NULL
);
"""


AuditSigner = Signer
"""Signs checkpoints: a party's certificate (PEM) and its key (e.g. ``pki.IdentitySigner``)."""


@dataclass(frozen=True)
class AuditEntry:
    """One recorded event.

    Parameters
    ----------
    seq
        Its index in the log (from 0), and its leaf index in the tree.
    kind
        What happened, e.g. ``"egress"``, ``"task"``, ``"job.refused"``.
    job_id, round_number
        The job and round it belongs to, if any.
    recorded_at
        UTC time, ISO 8601.
    body
        The details (JSON object).
    """

    seq: int
    kind: str
    job_id: str | None
    round_number: int | None
    recorded_at: str
    body: Mapping[str, Any]

    def leaf_data(self) -> bytes:
        """The bytes hashed as the entry's leaf (and stored): canonical JSON of every field."""
        return _canonical(
            {
                "seq": self.seq,
                "kind": self.kind,
                "job": self.job_id,
                "round": self.round_number,
                "at": self.recorded_at,
                "body": self.body,
            }
        )

    @classmethod
    def from_text(cls, text: str) -> AuditEntry:
        """The entry whose :meth:`leaf_data` is ``text``.

        Raises
        ------
        AuditError
            If ``text`` is not an entry.
        """
        try:
            raw = json.loads(text)
            return cls(
                int(raw["seq"]), str(raw["kind"]), raw["job"], raw["round"], str(raw["at"]),
                dict(raw["body"]),
            )  # fmt: skip
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"An audit entry is unreadable: {exc!r}.") from exc


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the log of ``party`` had ``tree_size`` entries of head ``head``."""

    party: str
    tree_size: int
    head: bytes
    signed_at: str
    certificate: bytes
    signature: bytes

    def message(self) -> bytes:
        """The bytes signed: format, party, size, head and time, one per line."""
        lines = [_FORMAT, self.party, str(self.tree_size), self.head.hex(), self.signed_at]
        return "\n".join(lines).encode()

    def check_signature(self) -> None:
        """Return if the certificate's key signed :meth:`message`.

        Raises
        ------
        AuditError
            If the certificate is unreadable or the signature does not verify.
        """
        try:
            check_signature(self.certificate, self.message(), self.signature)
        except SignatureError as exc:
            raise AuditError(
                f"The checkpoint of size {self.tree_size} is not signed by its certificate's key "
                f"({exc}): it was forged or altered."
            ) from exc


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_log` found.

    Parameters
    ----------
    party
        Whose log it is.
    entries
        Entries in the log.
    checkpoints
        Signed checkpoints that verified.
    signed_through
        Entries covered by the latest good checkpoint; later ones are not signed yet.
    first_bad
        The first entry found removed, altered or out of order (``None`` if none).
    problem
        What is wrong, in words ("" if nothing).
    """

    party: str
    entries: int
    checkpoints: int
    signed_through: int
    first_bad: int | None
    problem: str

    @property
    def ok(self) -> bool:
        """Whether the log verified."""
        return not self.problem


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _open(path: Path, *, create: bool) -> DurableSqlite:
    """The log's file, checked to be an audit log (created if ``create`` and missing)."""
    if not create and not path.is_file():
        raise AuditError(f"No audit log at {path}.")
    try:
        file = DurableSqlite(path, schema=_SCHEMA if create else "")
        tables = {
            r[0] for r in file.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            raise AuditError(
                f"The audit log {path} cannot be opened or created ({exc}): its folder must exist "
                "and be writable by this process (the log lives in the party's kit folder)."
            ) from exc
        raise AuditError(
            f"{path} is not a readable audit log ({exc}): the file is damaged or truncated."
        ) from exc
    if not {"meta", "entries", "checkpoints"} <= tables:
        file.close()
        raise AuditError(f"{path} is not an audit log: its tables are missing.")
    return file


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    return _open(path, create=create).db


class AuditLog:
    """A party's append-only audit log in one SQLite file.

    Parameters
    ----------
    path
        The file, e.g. ``<kit>/audit-log.sqlite``; created if missing.
    party
        The party's name (a node id, or ``coordinator``); must match the file's.
    signer
        Signs checkpoints with the party's certificate key.

    Raises
    ------
    AuditError
        If the file is not an audit log, belongs to another party, or is damaged.
    """

    def __init__(self, path: str | Path, *, party: str, signer: AuditSigner) -> None:
        self.path = Path(path)
        self.party = party
        self._signer = signer
        self._file = _open(self.path, create=True)
        self._db, self._lock, self._transaction = (
            self._file.db,
            self._file.lock,
            self._file.transaction,
        )
        try:
            with self._transaction() as db:
                stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not stored:
                    db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [
                            ("format", _FORMAT),
                            ("party", party),
                            ("frontier", '{"size":0,"heads":[]}'),
                        ],
                    )
                    stored = {
                        "format": _FORMAT,
                        "party": party,
                        "frontier": '{"size":0,"heads":[]}',
                    }
            if stored.get("format") != _FORMAT or stored.get("party") != party:
                raise AuditError(
                    f"{self.path} is the audit log of {stored.get('party')!r} "
                    f"({stored.get('format')}), not of {party!r}."
                )
            frontier = json.loads(stored["frontier"])
            self._frontier = MerkleFrontier(
                frontier["size"], [bytes.fromhex(h) for h in frontier["heads"]]
            )
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        """The number of entries."""
        return self._frontier.size

    def last(self, kind: str) -> AuditEntry | None:
        """The most recent entry of ``kind``, or ``None`` if there is none."""
        pattern = "%" + json.dumps({"kind": kind}, separators=(",", ":"))[1:-1] + "%"
        with self._lock:
            rows = self._db.execute(
                "SELECT entry FROM entries WHERE entry LIKE ? ORDER BY seq DESC", (pattern,)
            )
            for (text,) in rows:
                entry = AuditEntry.from_text(text)
                if entry.kind == kind:
                    return entry
        return None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Append several entries in one transaction: on disk together when the block ends, or
        not at all if it raises (one fsync instead of one per entry)."""
        with self._lock:
            before = MerkleFrontier(self._frontier.size, self._frontier.heads)
            try:
                with self._writing():
                    yield
            except BaseException:  # also if the commit itself fails
                self._frontier = before
                raise

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the log's lock, SQLite's errors raised as AuditError."""
        try:
            with self._lock, self._transaction() as db:
                yield db
        except sqlite3.Error as exc:
            raise AuditError(
                f"The audit log {self.path} cannot be written ({type(exc).__name__}: {exc}); "
                "nothing was recorded. Check that the file is open, its disk has space and is "
                "writable."
            ) from exc

    def append(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        job_id: str | None = None,
        round_number: int | None = None,
    ) -> AuditEntry:
        """Record an event; it is on disk when this returns.

        Safe to call from several threads at once.

        Raises
        ------
        AuditError
            If ``body`` is not a JSON object, or the file cannot be written.
        """
        try:
            _canonical(body)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"An audit entry's body must be JSON: {exc}.") from exc
        # The lock spans reading the size and adopting the new frontier: another thread's
        # entry in between would otherwise take the same number.
        with self._lock:
            with self._writing() as db:
                entry = AuditEntry(
                    self._frontier.size, kind, job_id, round_number, _now(), dict(body)
                )
                data = entry.leaf_data()
                leaf = leaf_hash(data)
                frontier = MerkleFrontier(self._frontier.size, self._frontier.heads)
                frontier.append(leaf)
                db.execute(
                    "INSERT INTO entries (seq, job_id, entry, leaf, head) VALUES (?, ?, ?, ?, ?)",
                    (entry.seq, job_id, data.decode(), leaf, frontier.root()),
                )
                state = {"size": frontier.size, "heads": [h.hex() for h in frontier.heads]}
                db.execute("UPDATE meta SET value = ? WHERE key = 'frontier'", (json.dumps(state),))
            self._frontier = frontier  # only once the transaction committed (or its batch will)
        return entry

    def checkpoint(self) -> Checkpoint:
        """Sign the current head and keep the signature in the log.

        Raises
        ------
        AuditError
            If the file cannot be written.
        """
        with self._writing() as db:
            signed = Checkpoint(
                self.party, self._frontier.size, self._frontier.root(), _now(),
                self._signer.certificate, b"",
            )  # fmt: skip
            signature = self._signer.sign(signed.message())
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (tree_size, head, signed_at, certificate, "
                "signature) VALUES (?, ?, ?, ?, ?)",
                (signed.tree_size, signed.head, signed.signed_at, signed.certificate, signature),
            )
        return Checkpoint(
            signed.party, signed.tree_size, signed.head, signed.signed_at, signed.certificate,
            signature,
        )  # fmt: skip


def read_entries(path: str | Path, *, job_id: str | None = None) -> list[AuditEntry]:
    """Every entry of the log at ``path`` (of one job, if given), in order.

    Raises
    ------
    AuditError
        If the file is missing, damaged or not an audit log.
    """
    db = _connect(Path(path), create=False)
    try:
        query = "SELECT entry FROM entries"
        rows = (
            db.execute(query + " WHERE job_id = ? ORDER BY seq", (job_id,))
            if job_id is not None
            else db.execute(query + " ORDER BY seq")
        )
        entries = [AuditEntry.from_text(r[0]) for r in rows]
    except sqlite3.DatabaseError as exc:
        raise AuditError(f"{path} cannot be read as an audit log: {exc}.") from exc
    finally:
        db.close()
    return [e for e in entries if job_id is None or e.job_id == job_id]


def _checkpoints(db: sqlite3.Connection, party: str) -> list[Checkpoint]:
    rows = db.execute(
        "SELECT tree_size, head, signed_at, certificate, signature FROM checkpoints "
        "ORDER BY tree_size"
    )
    return [Checkpoint(party, int(r[0]), bytes(r[1]), r[2], bytes(r[3]), bytes(r[4])) for r in rows]


@dataclass
class _Replay:
    """The tree rebuilt from a log's rows, up to the first bad one."""

    frontier: MerkleFrontier
    heads: dict[int, bytes]  # tree size -> head, at the sizes checkpoints sign
    first_bad: int | None = None
    problem: str = ""


_HEAD_CHECK_EVERY = 4096  # rows between checks of the stored heads; a mismatch is rescanned


def _replay(db: sqlite3.Connection, wanted: set[int]) -> _Replay:
    """Rehash every row in order, stopping at the first missing, altered or misplaced one.

    Per row: one SHA-256 of the stored text against its leaf, and one append to the frontier
    (the loop an auditor's verification of a million entries spends its time in; kept lean).
    The stored heads are compared every ``_HEAD_CHECK_EVERY`` rows and at the end; a block whose
    head differs is replayed row by row to name the first row that no longer fits.
    """
    replay = _Replay(MerkleFrontier(), {0: MerkleFrontier().root()})
    frontier = replay.frontier
    append, sha256 = frontier.append, hashlib.sha256
    start = MerkleFrontier()
    last_head = b""
    rows = db.execute("SELECT seq, entry, leaf, head FROM entries ORDER BY seq")
    for seq, text, leaf, head in rows:
        if seq != frontier.size:
            return _fail(
                replay, frontier.size, f"entry {frontier.size} is missing: entries were removed"
            )
        data = text.encode()
        computed = sha256(b"\x00" + data).digest()
        if computed != leaf or not data.endswith(b',"seq":%d}' % seq):
            return _fail(
                replay, seq, f"entry {seq} was altered or moved: it no longer hashes to its leaf"
            )
        append(computed)
        last_head = head
        if frontier.size in wanted:
            replay.heads[frontier.size] = frontier.root()
        if frontier.size - start.size == _HEAD_CHECK_EVERY:
            if not _heads_fit(db, replay, start, last_head):
                return replay
            start = MerkleFrontier(frontier.size, frontier.heads)
    _heads_fit(db, replay, start, last_head)
    return replay


def _heads_fit(
    db: sqlite3.Connection, replay: _Replay, start: MerkleFrontier, last_head: bytes
) -> bool:
    """Whether the stored head after the block is right; if not, name the block's first row
    whose stored head is not."""
    if replay.frontier.size == start.size or replay.frontier.root() == last_head:
        return True
    frontier = MerkleFrontier(start.size, start.heads)
    rows = db.execute(
        "SELECT seq, leaf, head FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
        (start.size, replay.frontier.size),
    )
    for seq, leaf, head in rows:  # the leaves were checked against the texts already
        frontier.append(leaf)
        if frontier.root() != head:
            _fail(replay, seq, (
                f"entry {seq} no longer fits the entries before it: it, or an earlier one "
                "rewritten together with its hashes, was changed"
            ))  # fmt: skip
            return False
    return True


def _fail(replay: _Replay, seq: int, problem: str) -> _Replay:
    replay.first_bad, replay.problem = seq, problem
    return replay


def _first_bad_checkpoint(
    checkpoints: list[Checkpoint], replay: _Replay
) -> tuple[int, int, int | None, str]:
    """``(good, signed_through, first_bad, problem)`` over the checkpoints, in size order."""
    good, signed_through = 0, 0
    for checkpoint in checkpoints:
        head = replay.heads.get(checkpoint.tree_size)
        if head is None:
            size = replay.frontier.size
            return (
                good,
                signed_through,
                size,
                (
                    f"a checkpoint signs {checkpoint.tree_size} entries but only {size} check out: "
                    "entries were removed from its end"
                ),
            )
        try:
            checkpoint.check_signature()
        except AuditError as exc:
            return good, signed_through, signed_through, str(exc)
        if head != checkpoint.head:
            return (
                good,
                signed_through,
                signed_through,
                (
                    f"the checkpoint of size {checkpoint.tree_size} does not match the entries: "
                    f"one of entries {signed_through} to {checkpoint.tree_size - 1} was changed "
                    "after it was signed"
                ),
            )
        good, signed_through = good + 1, checkpoint.tree_size
    return good, signed_through, None, ""


def verify_log(path: str | Path) -> VerifyReport:
    """Recompute the log's tree from its entries and check every signed checkpoint.

    Finds the first entry that is missing (a gap in the sequence), altered (its contents no
    longer hash to its leaf, or the head after it differs) or out of order, and the first
    checkpoint whose head the entries no longer give or whose signature fails. Entries after
    the last checkpoint are reported as not yet signed: nothing yet binds them.

    Raises
    ------
    AuditError
        If the file is missing, damaged or not an audit log (never a silent pass).
    """
    db = _connect(Path(path), create=False)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        party = str(meta.get("party", "?"))
        checkpoints = _checkpoints(db, party)
        replay = _replay(db, {c.tree_size for c in checkpoints})
        good, signed_through, first_bad, problem = _first_bad_checkpoint(checkpoints, replay)
    except (sqlite3.DatabaseError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise AuditError(f"{path} cannot be read as an audit log: {exc}.") from exc
    finally:
        db.close()
    if replay.problem:  # a bad row comes first; checkpoints after it cannot be checked
        first_bad, problem = replay.first_bad, replay.problem
    return VerifyReport(party, replay.frontier.size, good, signed_through, first_bad, problem)


def prove(path: str | Path, seq: int) -> dict[str, Any]:
    """A proof that entry ``seq`` is in the log: the entry, its inclusion path to the head of
    the latest signed checkpoint that covers it, and that checkpoint.

    Raises
    ------
    AuditError
        If the entry does not exist, no checkpoint covers it yet, or the log does not verify.
    """
    report = verify_log(path)
    if not report.ok:
        raise AuditError(f"The log does not verify, so it proves nothing: {report.problem}.")
    db = _connect(Path(path), create=False)
    try:
        covering = [c for c in _checkpoints(db, report.party) if c.tree_size > seq]
        if not 0 <= seq < report.entries:
            raise AuditError(f"The log has no entry {seq}; it holds 0 to {report.entries - 1}.")
        if not covering:
            raise AuditError(
                f"No signed checkpoint covers entry {seq} yet; sign one first (the node does at "
                "the end of every job)."
            )
        checkpoint = covering[-1]
        leaves = [
            bytes(r[0])
            for r in db.execute(
                "SELECT leaf FROM entries WHERE seq < ? ORDER BY seq", (checkpoint.tree_size,)
            )
        ]
        (text,) = db.execute("SELECT entry FROM entries WHERE seq = ?", (seq,)).fetchone()
    finally:
        db.close()
    entry = json.loads(text)
    return {
        "format": _PROOF_FORMAT,
        "entry": entry,
        "inclusion": [h.hex() for h in inclusion_proof(seq, leaves)],
        "checkpoint": {
            "party": checkpoint.party,
            "tree_size": checkpoint.tree_size,
            "head": checkpoint.head.hex(),
            "signed_at": checkpoint.signed_at,
            "certificate": checkpoint.certificate.decode(),
            "signature": base64.b64encode(checkpoint.signature).decode(),
        },
    }


def check_proof(document: Mapping[str, Any]) -> tuple[Checkpoint, AuditEntry]:
    """Check a proof from :func:`prove` offline: the entry's leaf is in the signed tree.

    Returns
    -------
    tuple
        The checkpoint (whose certificate the caller checks against the federation CA) and the
        entry proven.

    Raises
    ------
    AuditError
        If the document is malformed, the entry is not in the tree the checkpoint signs, or the
        signature does not verify.
    """
    try:
        if document["format"] != _PROOF_FORMAT:
            raise AuditError(f"Not an audit proof: format {document['format']!r}.")
        raw, signed = document["entry"], document["checkpoint"]
        entry = AuditEntry(
            int(raw["seq"]), str(raw["kind"]), raw["job"], raw["round"], str(raw["at"]),
            dict(raw["body"]),
        )  # fmt: skip
        checkpoint = Checkpoint(
            str(signed["party"]), int(signed["tree_size"]), bytes.fromhex(signed["head"]),
            str(signed["signed_at"]), str(signed["certificate"]).encode(),
            base64.b64decode(signed["signature"], validate=True),
        )  # fmt: skip
        path = [bytes.fromhex(h) for h in document["inclusion"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError(f"The proof is malformed: {exc!r}.") from exc
    checkpoint.check_signature()
    if not verify_inclusion(
        entry.seq, checkpoint.tree_size, leaf_hash(entry.leaf_data()), path, checkpoint.head
    ):
        raise AuditError(
            f"Entry {entry.seq} is not in the log whose head the checkpoint signs: the entry or "
            "its path was altered, or it belongs to another log."
        )
    return checkpoint, entry


def record_start(
    log: AuditLog, *, kind: str, certificate_pem: bytes, policy_text: bytes | None = None
) -> AuditEntry:
    """Record that the party started: the certificate it holds and the policy in force.

    Appends ``kind`` (``node_started``, ``coordinator_started``) with the certificate's SHA-256
    fingerprint and expiry and, for a node, the SHA-256 of its ``policy.toml`` (or ``None``),
    each flagged if it changed since the party's previous start: a renewed or replaced
    certificate is a key event, an edited policy a policy change, both visible to an auditor
    in the log itself. The entry is signed at once.
    """
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    fingerprint = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    policy = None if policy_text is None else hashlib.sha256(policy_text).hexdigest()
    previous = log.last(kind)
    body: dict[str, object] = {
        "certificate_sha256": fingerprint,
        "certificate_not_after": certificate.not_valid_after_utc.isoformat(),
        "key_changed": previous is not None
        and previous.body.get("certificate_sha256") != fingerprint,
    }
    if kind == "node_started":
        body["policy_sha256"] = policy
        body["policy_changed"] = (
            previous is not None and previous.body.get("policy_sha256") != policy
        )
    with log.batch():
        entry = log.append(kind, body)
        log.checkpoint()
    return entry
