"""How a person names a registered model: ``name``, ``name@alias`` or ``name:version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sovereign_ai.errors import ConfigError

__all__ = ["ModelReference", "check_alias", "check_model_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it can name a model (as a job's name can).

    Raises
    ------
    ConfigError
        If it is not 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit.
    """
    if not _NAME.match(name):
        raise ConfigError(
            "A model name must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit; got {name!r}."
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it can be an alias (``production``, ``staging``, ``candidate-2``).

    Raises
    ------
    ConfigError
        If it is not 1-32 lower-case letters, digits, '_' or '-', starting with a letter.
    """
    if not _ALIAS.match(alias):
        raise ConfigError(
            "An alias must be 1-32 lower-case letters, digits, '_' or '-', starting with a "
            f"letter; got {alias!r}."
        )
    return alias


@dataclass(frozen=True)
class ModelReference:
    """A model name with at most one of a version and an alias; neither means the latest.

    Parameters
    ----------
    name
        The model's name.
    version
        A version number (``name:3``).
    alias
        An alias (``name@production``).
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if self.version is not None and self.alias is not None:
            raise ConfigError("A model reference names a version or an alias, not both.")
        if self.version is not None and self.version < 1:
            raise ConfigError(f"A model version must be >= 1; got {self.version}.")
        if self.alias is not None:
            check_alias(self.alias)

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        """Read ``name``, ``name@alias`` or ``name:version``.

        Raises
        ------
        ConfigError
            If ``text`` is none of these.
        """
        name, at, alias = text.partition("@")
        if at:
            return cls(name, alias=alias)
        name, colon, version = text.partition(":")
        if colon:
            if not version.isdigit() or not version.isascii():
                raise ConfigError(
                    f"A model reference is NAME, NAME@ALIAS or NAME:VERSION with VERSION a "
                    f"number; got {text!r}."
                )
            return cls(name, version=int(version))
        return cls(name)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
