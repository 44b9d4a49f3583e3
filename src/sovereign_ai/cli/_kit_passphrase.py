"""The passphrase options of ``sovereign provision``, and asking a person for a kit's passphrase.

``create``, ``add-node`` and ``renew --new-key`` encrypt new private keys. One of these options says
where the parties will find the passphrase, and the command reads it from there now:

- ``--passphrase-env NAME`` (the default, with ``SOVEREIGN_KIT_PASSPHRASE``): from that variable,
  or typed twice at a prompt if it is not set;
- ``--passphrase-file PATH``: the first line of that file (mode 0600);
- ``--passphrase-prompt``: typed twice now, and typed again whenever the party starts;
- ``--allow-unencrypted-keys``: no encryption, with a warning (tests and demos only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sovereign_ai.errors import ConfigError, ProvisioningError
from sovereign_ai.pki import (
    KeyEncryption,
    PassphraseKind,
    PassphrasePrompt,
    PassphraseSource,
    read_passphrase,
)
from sovereign_ai.pki.passphrase import DEFAULT_PASSPHRASE_VARIABLE

__all__ = [
    "AllowUnencryptedOption",
    "PassphraseEnvOption",
    "PassphraseFileOption",
    "PassphrasePromptOption",
    "key_encryption_from_options",
    "terminal_prompt",
]

PassphraseEnvOption = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="NAME",
        help="Encrypt new private keys with the passphrase in environment variable NAME (asked "
        "for if unset); each party reads it from NAME when it starts. Default: "
        f"{DEFAULT_PASSPHRASE_VARIABLE}.",
    ),
]
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        metavar="PATH",
        help="Encrypt new private keys with the passphrase in file PATH (one line, mode 0600); "
        "each party reads it from the same absolute path when it starts.",
        dir_okay=False,
    ),
]
PassphrasePromptOption = Annotated[
    bool,
    typer.Option(
        "--passphrase-prompt",
        help="Encrypt new private keys with a passphrase typed now; it is typed again whenever "
        "a party starts (not for unattended services).",
    ),
]
AllowUnencryptedOption = Annotated[
    bool,
    typer.Option(
        "--allow-unencrypted-keys",
        help="INSECURE: write private keys unencrypted (file mode 0600 only). Tests and demos.",
    ),
]


def terminal_prompt() -> PassphrasePrompt | None:
    """A prompt that asks at the terminal without echo, or ``None`` when no one is there."""
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> str:
        return str(typer.prompt(question, hide_input=True))

    return ask


def key_encryption_from_options(
    *,
    env: str | None,
    file: Path | None,
    prompt: bool,
    allow_unencrypted_keys: bool,
    default: PassphraseSource | None = None,
    console: Console,
) -> KeyEncryption | None:
    """Build the :class:`KeyEncryption` the options ask for (``None`` if unencrypted is allowed).

    Raises
    ------
    ConfigError
        If more than one option is given, or the passphrase is too short.
    ProvisioningError
        If the passphrase cannot be read (file missing or readable by others, variable unset and
        no terminal to ask at).
    """
    chosen = [
        flag
        for flag, given in (
            ("--passphrase-env", env is not None),
            ("--passphrase-file", file is not None),
            ("--passphrase-prompt", prompt),
            ("--allow-unencrypted-keys", allow_unencrypted_keys),
        )
        if given
    ]
    if len(chosen) > 1:
        raise ConfigError(
            "Choose one of --passphrase-env, --passphrase-file, --passphrase-prompt and "
            f"--allow-unencrypted-keys; got {' and '.join(chosen)}."
        )
    if allow_unencrypted_keys:
        console.print(
            "[bold yellow]warning:[/] INSECURE: private keys are written UNENCRYPTED (file mode "
            "0600 only). Use --allow-unencrypted-keys for tests and demos only.",
            highlight=False,
        )
        return None
    if env is not None:
        source = PassphraseSource.env(env)
    elif file is not None:
        source = PassphraseSource.file(file.absolute())
    elif prompt:
        source = PassphraseSource.prompt()
    else:
        source = default or PassphraseSource.env(DEFAULT_PASSPHRASE_VARIABLE)
    return KeyEncryption(passphrase=_passphrase_now(source), source=source)


def _passphrase_now(source: PassphraseSource) -> bytes:
    """Read the passphrase for new keys from ``source``, asking twice where a person types it."""
    if source.kind is PassphraseKind.FILE:
        return read_passphrase(source, key_path=None)
    if source.kind is PassphraseKind.ENV and source.variable is not None:
        value = os.environ.get(source.variable, "")
        if value:
            return value.encode()
    if not sys.stdin.isatty():
        where = (
            f"set {source.variable}"
            if source.kind is PassphraseKind.ENV
            else "run this from a terminal"
        )
        raise ProvisioningError(
            "New private keys are encrypted, but no passphrase was given and no one can be "
            f"asked here: {where}, or use --passphrase-file PATH "
            "(`umask 077; openssl rand -base64 32 > PATH`)."
        )
    note = f" (parties will read it from {source.describe()})"
    typed = typer.prompt(
        f"Passphrase for the new private keys{note}", hide_input=True, confirmation_prompt=True
    )
    return str(typed).encode()
