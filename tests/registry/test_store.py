"""The registry stores versions whole, numbers and aliases them, refuses what it cannot read."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.errors import ConfigError, RegistryError, UnknownNameError
from sovereign_ai.registry import ModelReference, ModelRegistry, Passport

from .conftest import SIGNER, make_lineage, make_parameters


def test_a_registered_version_round_trips(tmp_path: Path) -> None:
    parameters, lineage = make_parameters(), make_lineage()
    with ModelRegistry(tmp_path / "registry", create=True) as registry:
        version = registry.register("breast-cancer", parameters, lineage, signer=SIGNER)
        assert (version.name, version.version, version.is_signed) == ("breast-cancer", 1, True)
        loaded = registry.load_parameters("breast-cancer:1")
        passport = registry.passport("breast-cancer")
    assert list(loaded) == list(parameters)
    for name in parameters:
        np.testing.assert_array_equal(loaded[name], parameters[name])
    assert passport.lineage == lineage
    assert passport.parameter_digest == version.parameter_digest
    assert (passport.model_name, passport.version) == ("breast-cancer", 1)
    # The stored bytes are the passport's canonical form.
    assert version.passport_file.read_bytes() == passport.to_bytes()
    assert Passport.from_bytes(passport.to_bytes()) == passport
    # Reopened from disk, the same.
    with ModelRegistry(tmp_path / "registry") as again:
        assert again.resolve("breast-cancer") == version


def test_versions_increment_and_a_bare_name_is_the_latest(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        made = [
            registry.register("m", make_parameters(seed), make_lineage(), signer=None)
            for seed in range(3)
        ]
        registry.register("other", make_parameters(), make_lineage(), signer=None)
        assert [v.version for v in made] == [1, 2, 3]
        assert registry.resolve("m").version == 3
        assert registry.resolve(ModelReference("m", version=2)).parameter_digest == (
            made[1].parameter_digest
        )
        assert registry.names() == ["m", "other"]
        assert [(v.name, v.version) for v in registry.versions()] == [
            ("m", 1), ("m", 2), ("m", 3), ("other", 1),
        ]  # fmt: skip


def test_aliases_point_at_versions_and_move(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        for seed in range(2):
            registry.register("m", make_parameters(seed), make_lineage(), signer=None)
        registry.set_alias("m", "production", 1)
        registry.set_alias("m", "staging", 2)
        assert registry.resolve("m@production").version == 1
        assert registry.resolve("m:1").aliases == ("production",)
        registry.set_alias("m", "production", 2)
        assert registry.resolve("m@production").version == 2
        assert registry.resolve("m:2").aliases == ("production", "staging")
        assert registry.resolve("m:1").aliases == ()
        with pytest.raises(UnknownNameError, match="production, staging"):
            registry.resolve("m@canary")
        with pytest.raises(UnknownNameError, match="version of model 'm'"):
            registry.set_alias("m", "production", 7)
        with pytest.raises(ConfigError, match="alias"):
            registry.set_alias("m", "Production", 1)


def test_unknown_names_and_versions_say_what_exists(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        registry.register("m", make_parameters(), make_lineage(), signer=None)
        with pytest.raises(UnknownNameError, match=r"Unknown model 'n'; expected one of: m\."):
            registry.resolve("n")
        with pytest.raises(UnknownNameError, match="expected one of: 1"):
            registry.resolve("m:2")


@pytest.mark.parametrize(
    "text", ["", "m:", "m:x", "m:-1", "m:0", "m@", "m@Prod", "m@1a", "-m", "m:1@a"]
)
def test_malformed_references_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        ModelReference.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m", ModelReference("m")),
        ("m.v2_x-y", ModelReference("m.v2_x-y")),
        ("m:12", ModelReference("m", version=12)),
        ("m@production", ModelReference("m", alias="production")),
    ],
)
def test_references_parse(text: str, expected: ModelReference) -> None:
    assert ModelReference.parse(text) == expected
    assert str(expected) == text


def test_reading_a_missing_registry_does_not_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No model registry"):
        ModelRegistry(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("create", [False, True])
def test_a_garbage_database_is_a_clear_error(tmp_path: Path, create: bool) -> None:
    (tmp_path / "registry.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(RegistryError, match="unreadable, truncated or corrupt"):
        ModelRegistry(tmp_path, create=create)


def test_a_truncated_database_is_a_clear_error(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        for seed in range(40):  # several pages, so that truncation cuts rows
            registry.register("m", make_parameters(seed), make_lineage(), signer=None)
        registry._sqlite.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database = tmp_path / "registry.sqlite"
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError, match="registry database"), ModelRegistry(tmp_path) as opened:
        opened.versions()


def test_another_database_is_not_taken_for_a_registry(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(RegistryError, match="not a model registry"):
        ModelRegistry(tmp_path, create=True)


def test_concurrent_registrations_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    ModelRegistry(tmp_path, create=True).close()
    errors: list[BaseException] = []

    def register(seed: int) -> None:
        try:
            with ModelRegistry(tmp_path) as registry:  # one connection each, as processes have
                registry.register("m", make_parameters(seed), make_lineage(), signer=None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ModelRegistry(tmp_path) as registry:
        versions = registry.versions("m")
        assert [v.version for v in versions] == list(range(1, 9))
        assert len({v.parameter_digest for v in versions}) == 8
        for version in versions:  # every version's files are whole and its own
            assert registry.load_parameters(version.reference)
    assert list((tmp_path / ".staging").iterdir()) == []


def test_debris_of_a_crash_before_commit_is_replaced(tmp_path: Path) -> None:
    debris = tmp_path / "models" / "m" / "1"
    debris.mkdir(parents=True)
    (debris / "model.safetensors").write_bytes(b"half a model")
    with ModelRegistry(tmp_path, create=True) as registry:
        version = registry.register("m", make_parameters(), make_lineage(), signer=None)
        assert version.version == 1
        assert registry.load_parameters("m:1")


def test_a_failed_write_leaves_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sovereign_ai.registry import store

    def fail(*args: object) -> None:
        raise OSError("disk full")

    with ModelRegistry(tmp_path, create=True) as registry:
        monkeypatch.setattr(store, "install_version", fail)
        with pytest.raises(OSError, match="disk full"):
            registry.register("m", make_parameters(), make_lineage(), signer=None)
        assert registry.versions() == []


def test_a_changed_model_file_is_not_loaded(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry:
        version = registry.register("m", make_parameters(), make_lineage(), signer=None)
        data = bytearray(version.model_file.read_bytes())
        data[-1] ^= 0x01
        version.model_file.write_bytes(bytes(data))
        with pytest.raises(RegistryError, match="differs from the one registered"):
            registry.load_parameters("m")


def test_a_bad_model_name_is_refused(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path, create=True) as registry, pytest.raises(ConfigError, match="name"):
        registry.register("../escape", make_parameters(), make_lineage(), signer=None)
