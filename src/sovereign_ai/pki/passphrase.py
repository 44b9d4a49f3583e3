"""Private keys encrypted at rest, and where a party finds the passphrase that opens its key.

Provisioning encrypts every kit's private key with a passphrase (PKCS#8, ``cryptography``'s
``BestAvailableEncryption``). The kit's ``kit.json`` records *where* the party finds that passphrase
when it starts, never the passphrase itself:

- ``env``: an environment variable, named in the kit (``SOVEREIGN_KIT_PASSPHRASE`` by default); a
  service gets it from its unit, e.g. systemd's ``EnvironmentFile=``;
- ``file``: a file at an absolute path named in the kit, readable by its owner only (``0600``);
- ``prompt``: typed by a person when the party starts.

Loading a kit resolves the source its ``kit.json`` names (an explicit ``passphrase=`` argument
wins). That is the one place the library reads an environment variable or a file it was not
handed: the kit declares it, so it is configuration the administrator wrote down, not a hidden
global setting.

Notes
-----
The passphrase guards the key file against a copy of the disk or a backup; while a party runs,
the decrypted key is in its memory, as it must be for TLS. ``BestAvailableEncryption`` derives the
AES key with PBKDF2 at a modest iteration count, so the passphrase itself must carry the strength:
use a long random one (``openssl rand -base64 32``), which is why :class:`KeyEncryption` refuses
anything shorter than :data:`MIN_PASSPHRASE_BYTES`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki._kit_files import read_kit_file

__all__ = [
    "KeyEncryption",
    "PassphraseKind",
    "PassphrasePrompt",
    "PassphraseSource",
    "read_passphrase",
]

DEFAULT_PASSPHRASE_VARIABLE = "SOVEREIGN_KIT_PASSPHRASE"  # noqa: S105  # a name, not a secret
"""The environment variable a kit names unless the administrator chose another source."""

MIN_PASSPHRASE_BYTES = 12
"""Shortest passphrase accepted for a new key (``openssl rand -base64 32`` gives 44)."""

_T = TypeVar("_T")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

PassphrasePrompt = Callable[[str], str]
"""Asks a person for a passphrase: called with the question, returns what they typed."""


class PassphraseKind(StrEnum):
    """Where a party finds the passphrase of its private key."""

    ENV = "env"
    FILE = "file"
    PROMPT = "prompt"


class PassphraseSource(BaseModel):
    """Where a kit's passphrase comes from, as recorded in ``kit.json``.

    Build one with :meth:`env`, :meth:`file` or :meth:`prompt`.

    Parameters
    ----------
    kind
        Environment variable, file or prompt.
    variable
        The environment variable's name (``kind="env"`` only).
    path
        The passphrase file's absolute path (``kind="file"`` only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PassphraseKind
    variable: str | None = None
    path: Path | None = None

    @model_validator(mode="after")
    def _check_fields(self) -> Self:
        if self.kind is PassphraseKind.ENV:
            if self.variable is None or not _VARIABLE_NAME.fullmatch(self.variable):
                raise ValueError(
                    "'variable' must be an environment variable name (letters, digits and _, "
                    f"not starting with a digit); got {self.variable!r} instead"
                )
        elif self.variable is not None:
            raise ValueError(f"'variable' is only for kind 'env'; got kind {self.kind.value!r}")
        if self.kind is PassphraseKind.FILE:
            if self.path is None or not self.path.is_absolute():
                raise ValueError(
                    "'path' must be an absolute path, so that the party finds the file from any "
                    f"working directory; got {self.path!r} instead"
                )
        elif self.path is not None:
            raise ValueError(f"'path' is only for kind 'file'; got kind {self.kind.value!r}")
        return self

    @classmethod
    def env(cls, variable: str = DEFAULT_PASSPHRASE_VARIABLE) -> PassphraseSource:
        """The passphrase is in the environment variable ``variable``.

        Raises
        ------
        ConfigError
            If ``variable`` is not a valid variable name.
        """
        return cls._build(kind=PassphraseKind.ENV, variable=variable)

    @classmethod
    def file(cls, path: Path) -> PassphraseSource:
        """The passphrase is the content of the file at absolute ``path`` (one line).

        Raises
        ------
        ConfigError
            If ``path`` is relative.
        """
        return cls._build(kind=PassphraseKind.FILE, path=Path(path))

    @classmethod
    def prompt(cls) -> PassphraseSource:
        """The passphrase is typed by a person when the party starts."""
        return cls._build(kind=PassphraseKind.PROMPT)

    @classmethod
    def _build(cls, **values: object) -> PassphraseSource:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                error["msg"].removeprefix("Value error, ") for error in exc.errors()
            )
            raise ConfigError(f"Invalid passphrase source: {problems}.") from None

    def describe(self) -> str:
        """Say in words where the passphrase comes from, e.g. ``the environment variable X``."""
        if self.kind is PassphraseKind.ENV:
            return f"the environment variable {self.variable}"
        if self.kind is PassphraseKind.FILE:
            return f"the file {self.path}"
        return "a prompt"


@dataclass(frozen=True, kw_only=True)
class KeyEncryption:
    """How provisioning encrypts a new private key, and where the party will find the passphrase.

    Parameters
    ----------
    passphrase
        The passphrase (never written anywhere by provisioning, never shown in ``repr``).
    source
        Recorded in the kit's ``kit.json``: where the party reads the passphrase at start.

    Raises
    ------
    ConfigError
        If the passphrase is shorter than :data:`MIN_PASSPHRASE_BYTES`.
    """

    passphrase: bytes = field(repr=False)
    source: PassphraseSource

    def __post_init__(self) -> None:
        if len(self.passphrase) < MIN_PASSPHRASE_BYTES:
            raise ConfigError(
                f"The 'passphrase' parameter of KeyEncryption must be at least "
                f"{MIN_PASSPHRASE_BYTES} bytes long (a random one: `openssl rand -base64 32`); "
                f"got {len(self.passphrase)} bytes instead."
            )


def read_passphrase(
    source: PassphraseSource,
    *,
    key_path: Path | None,
    environ: Mapping[str, str] | None = None,
    prompt: PassphrasePrompt | None = None,
) -> bytes:
    """Fetch the passphrase of the key at ``key_path`` from ``source``.

    Parameters
    ----------
    source
        Where the kit says the passphrase is.
    key_path
        The encrypted key, named in questions and errors; ``None`` for keys not yet written.
    environ
        The environment to read an ``env`` source from; defaults to the process's.
    prompt
        Asks a person; used for a ``prompt`` source, and for an ``env`` source whose variable is
        not set. Without it, such a passphrase cannot be had and an error says how to supply it.

    Raises
    ------
    ProvisioningError
        If the passphrase cannot be had: variable not set, file missing, empty or readable by
        others (the message gives the ``chmod 600``), or a prompt is needed but none is possible.
    """
    key = f"the private key {key_path}" if key_path is not None else "the new private keys"
    if source.kind is PassphraseKind.FILE:
        path = _required(source.path, source)
        data = read_kit_file(path, is_private=True, label="Passphrase file")
        passphrase = data.rstrip(b"\r\n")
        if not passphrase:
            raise ProvisioningError(
                f"The passphrase file {path} of {key} is empty; write the kit's "
                "passphrase into it (one line, mode 0600)."
            )
        return passphrase
    if source.kind is PassphraseKind.ENV:
        variable = _required(source.variable, source)
        value = (os.environ if environ is None else environ).get(variable, "")
        if value:
            return value.encode()
        if prompt is None:
            raise ProvisioningError(
                f"The passphrase of {key} is read from the environment variable {variable}, "
                f"which is not set. Set it before starting (`export {variable}=...`; for a "
                "service, an EnvironmentFile= in its systemd unit holding that line, mode 0600)."
            )
    elif prompt is None:
        raise ProvisioningError(
            f"The passphrase of {key} is typed at a prompt, but no one can be asked here. Start "
            "it from a terminal, or have the administrator re-issue the key for a service with "
            "`sovereign provision renew NAME --new-key --passphrase-env VARIABLE` (or "
            "--passphrase-file PATH)."
        )
    typed = prompt(f"Passphrase of {key}")
    if not typed:
        raise ProvisioningError(f"No passphrase was typed for {key}.")
    return typed.encode()


def _required(value: _T | None, source: PassphraseSource) -> _T:
    # Only a source built with model_construct (skipping validation) can lack its field.
    if value is None:
        raise ConfigError(f"The passphrase source {source!r} lacks its variable or path.")
    return value
