"""The model registry: versions and aliases in one SQLite file, each version's files beside it.

Registering is atomic: under the database's write lock the next version number is taken, the
passport is built and signed, the files are written into a staging folder, fsynced and renamed
into ``models/<name>/<version>/``, and only then is the row committed. A crash at any point
leaves either no version or a whole one; several processes may register into one registry at
once (SQLite serialises them) and get consecutive versions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sovereign_ai.core import Parameters
from sovereign_ai.core.durable_sqlite import DurableSqlite
from sovereign_ai.core.signatures import Signer
from sovereign_ai.errors import ConfigError, RegistryError, SerializationError, UnknownNameError
from sovereign_ai.registry._files import (
    MODEL_FILE,
    PASSPORT_FILE,
    SIGNATURE_FILE,
    PassportSignature,
    install_version,
)
from sovereign_ai.registry.passport import Lineage, Passport
from sovereign_ai.registry.reference import ModelReference, check_alias, check_model_name

__all__ = ["DATABASE_FILE", "ModelRegistry", "RegisteredVersion"]

DATABASE_FILE = "registry.sqlite"
_FORMAT = "sovereign-registry/1"
_SCHEMA = """
BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    registered_at TEXT NOT NULL,
    job_id TEXT NOT NULL,
    parameter_digest TEXT NOT NULL,
    passport_digest TEXT NOT NULL,
    is_signed INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
INSERT INTO meta VALUES ('format', 'sovereign-registry/1');
COMMIT;
"""
_SELECT = (
    "SELECT name, version, registered_at, job_id, parameter_digest, passport_digest, is_signed "
    "FROM versions"
)


@dataclass(frozen=True)
class RegisteredVersion:
    """One version's row: what the registry recorded when it was registered.

    ``parameter_digest`` and ``passport_digest`` are SHA-256 (hex) of the model file and the
    passport file as registered; ``is_signed`` whether a signature was stored with it.
    """

    name: str
    version: int
    registered_at: str
    job_id: str
    parameter_digest: str
    passport_digest: str
    is_signed: bool
    aliases: tuple[str, ...]
    folder: Path

    @property
    def reference(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def model_file(self) -> Path:
        """The parameters (safetensors)."""
        return self.folder / MODEL_FILE

    @property
    def passport_file(self) -> Path:
        """The passport's canonical JSON."""
        return self.folder / PASSPORT_FILE

    @property
    def signature_file(self) -> Path:
        """The passport's signature (signed versions only)."""
        return self.folder / SIGNATURE_FILE


class ModelRegistry:
    """A folder of registered models.

    Parameters
    ----------
    folder
        The registry's folder.
    create
        Create the folder and its database if they do not exist (registration does; reading
        commands do not, so a mistyped folder is an error rather than an empty registry).

    Raises
    ------
    ConfigError
        If there is no registry at ``folder`` and ``create`` is false.
    RegistryError
        If its database is not a registry's, or is truncated or corrupt.
    """

    def __init__(self, folder: str | Path, *, create: bool = False) -> None:
        self.folder = Path(folder)
        self.database = self.folder / DATABASE_FILE
        if not self.database.exists():
            if not create:
                raise ConfigError(
                    f"No model registry at {str(self.folder)!r} (no {DATABASE_FILE} there); "
                    "pass --registry with the folder a job registered its model in."
                )
            self.folder.mkdir(parents=True, exist_ok=True)
        with self._mapped():
            self._sqlite = DurableSqlite(self.database)
        try:
            with self._mapped():
                self._open(create=create)
        except BaseException:
            self._sqlite.close()
            raise

    def _open(self, *, create: bool) -> None:
        db = self._sqlite.db
        db.execute("PRAGMA busy_timeout = 60000")  # another process may be registering
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check found damage")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if not tables and create:
            db.executescript(_SCHEMA)
            tables = {"meta"}
        row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() if (
            "meta" in tables
        ) else None  # fmt: skip
        if row is None or row[0] != _FORMAT:
            raise RegistryError(
                f"{str(self.database)!r} is not a model registry of format {_FORMAT!r}."
            )

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise RegistryError(
                f"The registry database {str(self.database)!r} is unreadable, truncated or "
                f"corrupt: {exc}. Restore it from a backup; the version folders under "
                "models/ hold each version's files."
            ) from exc

    def close(self) -> None:
        """Close the database."""
        self._sqlite.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Writing ------------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        parameters: Parameters,
        lineage: Lineage,
        *,
        signer: Signer | None,
        now: dt.datetime | None = None,
    ) -> RegisteredVersion:
        """Register ``parameters`` as the next version of ``name``, with its passport.

        Parameters
        ----------
        name
            The model's name (a job's model is registered under the job's name).
        parameters
            The model.
        lineage
            Where it came from; the passport adds the name, version, time and the digest of
            ``parameters``.
        signer
            Signs the passport (a deployed coordinator's certificate key); ``None`` leaves it
            unsigned (simulation: there is no federation identity to sign with).
        now
            The registration time (UTC now by default).

        Raises
        ------
        ConfigError
            If ``name`` cannot name a model.
        RegistryError
            If the database cannot be written.
        """
        check_model_name(name)
        model = parameters.to_bytes()
        when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="seconds")
        with self._mapped(), self._sqlite.transaction() as db:
            last = db.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,))
            version = int(last.fetchone()[0] or 0) + 1
            passport = Passport(
                model_name=name,
                version=version,
                registered_at=when,
                parameter_digest=hashlib.sha256(model).hexdigest(),
                lineage=lineage,
            )
            body = passport.to_bytes()
            files = {MODEL_FILE: model, PASSPORT_FILE: body}
            if signer is not None:
                signature = PassportSignature(signer.certificate, signer.sign(body))
                files[SIGNATURE_FILE] = signature.to_bytes()
            target = self._folder_of(name, version)
            install_version(self.folder, target, files)
            try:
                db.execute(
                    "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        version,
                        when,
                        lineage.job_id,
                        passport.parameter_digest,
                        hashlib.sha256(body).hexdigest(),
                        int(signer is not None),
                    ),
                )
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        return self.resolve(ModelReference(name, version=version))

    def set_alias(self, name: str, alias: str, version: int) -> RegisteredVersion:
        """Point ``name@alias`` at ``version`` (moving it if it pointed elsewhere).

        Raises
        ------
        ConfigError
            If the alias is malformed.
        UnknownNameError
            If there is no such model or version.
        """
        check_alias(alias)
        target = self.resolve(ModelReference(name, version=version))
        with self._mapped(), self._sqlite.transaction() as db:
            db.execute(
                "INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                (target.name, alias, target.version),
            )
        return self.resolve(ModelReference(name, version=version))

    # Reading ------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every model name, sorted."""
        with self._mapped(), self._sqlite.lock:
            rows = self._sqlite.db.execute("SELECT DISTINCT name FROM versions ORDER BY name")
            return [str(row[0]) for row in rows]

    def versions(self, name: str | None = None) -> list[RegisteredVersion]:
        """Every version of ``name`` (of every model if ``None``), by name then version."""
        with self._mapped(), self._sqlite.lock:
            if name is None:
                rows = self._sqlite.db.execute(_SELECT + " ORDER BY name, version").fetchall()
            else:
                rows = self._sqlite.db.execute(
                    _SELECT + " WHERE name = ? ORDER BY version", (name,)
                ).fetchall()
            aliases: dict[tuple[str, int], list[str]] = {}
            for alias_name, alias, version in self._sqlite.db.execute(
                "SELECT name, alias, version FROM aliases ORDER BY alias"
            ):
                aliases.setdefault((alias_name, version), []).append(alias)
        return [self._row(row, tuple(aliases.get((row[0], row[1]), ()))) for row in rows]

    def resolve(self, reference: str | ModelReference) -> RegisteredVersion:
        """The version ``reference`` names (``name``: its latest version).

        Raises
        ------
        ConfigError
            If ``reference`` is malformed.
        UnknownNameError
            If the model, version or alias does not exist.
        """
        ref = ModelReference.parse(reference) if isinstance(reference, str) else reference
        versions = self.versions(ref.name)
        if not versions:
            raise UnknownNameError("model", ref.name, self.names())
        if ref.alias is not None:
            chosen = [v for v in versions if ref.alias in v.aliases]
            if not chosen:
                known = sorted({a for v in versions for a in v.aliases})
                raise UnknownNameError(f"alias of model {ref.name!r}", ref.alias, known)
            return chosen[0]
        if ref.version is not None:
            chosen = [v for v in versions if v.version == ref.version]
            if not chosen:
                known = [str(v.version) for v in versions]
                raise UnknownNameError(f"version of model {ref.name!r}", str(ref.version), known)
            return chosen[0]
        return versions[-1]

    def find(self, name: str, *, job_id: str, parameter_digest: str) -> RegisteredVersion | None:
        """The version of ``name`` registered for this job with these parameters, if any."""
        for version in self.versions(name):
            if version.job_id == job_id and version.parameter_digest == parameter_digest:
                return version
        return None

    def passport(self, reference: str | ModelReference) -> Passport:
        """The passport of a version, read as stored (``verify`` checks it)."""
        version = self.resolve(reference)
        return Passport.from_bytes(_read(version.passport_file, "passport"))

    def load_parameters(self, reference: str | ModelReference) -> Parameters:
        """A version's parameters, after checking the file against its recorded digest.

        Raises
        ------
        RegistryError
            If the file is missing, changed or not a tensor file.
        """
        version = self.resolve(reference)
        data = _read(version.model_file, "model file")
        if hashlib.sha256(data).hexdigest() != version.parameter_digest:
            raise RegistryError(
                f"The model file of {version.reference} differs from the one registered "
                "(its SHA-256 changed); refusing to load it."
            )
        try:
            return Parameters.from_bytes(data)
        except SerializationError as exc:
            raise RegistryError(f"The model file of {version.reference}: {exc}") from exc

    def _folder_of(self, name: str, version: int) -> Path:
        return self.folder / "models" / name / str(version)

    def _row(self, row: tuple[object, ...], aliases: tuple[str, ...]) -> RegisteredVersion:
        name, version = str(row[0]), int(str(row[1]))
        return RegisteredVersion(
            name=name,
            version=version,
            registered_at=str(row[2]),
            job_id=str(row[3]),
            parameter_digest=str(row[4]),
            passport_digest=str(row[5]),
            is_signed=bool(row[6]),
            aliases=aliases,
            folder=self._folder_of(name, version),
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise RegistryError(f"The {what} {str(path)!r} is missing.") from exc
    except OSError as exc:
        raise RegistryError(f"The {what} {str(path)!r} cannot be read: {exc}.") from exc
