"""The models a server holds, by name and version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.serving.model import ServedModel

__all__ = ["ModelRepository"]


class ModelRepository:
    """Models by name and version; a name's first model answers requests naming no version.

    Parameters
    ----------
    models
        The models, in the order given; at least one; no (name, version) twice.

    Raises
    ------
    ConfigError
        If ``models`` is empty or repeats a name and version.
    """

    def __init__(self, models: Sequence[ServedModel]) -> None:
        if not models:
            raise ConfigError("A server needs at least one model; got none.")
        self._models: dict[str, dict[str, ServedModel]] = {}
        for model in models:
            versions = self._models.setdefault(model.name, {})
            if model.version in versions:
                raise ConfigError(
                    f"Model {model.name!r} version {model.version!r} is given twice; serve each "
                    "version once."
                )
            versions[model.version] = model

    @property
    def names(self) -> frozenset[str]:
        """The model names served."""
        return frozenset(self._models)

    def versions(self, name: str) -> list[str]:
        """The versions served under ``name``, default first (empty if none)."""
        return list(self._models.get(name, {}))

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model ``name`` at ``version`` (default: its first).

        Raises
        ------
        UnknownNameError
            If no model of that name, or not that version of it, is served.
        """
        versions = self._models.get(name)
        if versions is None:
            raise UnknownNameError("model", name, sorted(self._models))
        if version is None:
            return next(iter(versions.values()))
        if version not in versions:
            raise UnknownNameError(f"version of model {name!r}:", version, sorted(versions))
        return versions[version]

    def __iter__(self) -> Iterator[ServedModel]:
        for versions in self._models.values():
            yield from versions.values()
