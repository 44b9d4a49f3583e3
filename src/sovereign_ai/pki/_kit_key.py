"""Opening a kit's private key: decrypted with its passphrase, or refused with the way to fix it.

A key is stored as ``kit.json`` says: encrypted when it names a passphrase source, plain when it
names none. A plain key where an encrypted one is expected is refused, because someone decrypted
it on disk and it has to be assumed copied.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import ProvisioningError
from sovereign_ai.pki._kit_files import MANIFEST_FILE
from sovereign_ai.pki.certificates import is_encrypted_pem, read_private_key
from sovereign_ai.pki.passphrase import PassphrasePrompt, PassphraseSource, read_passphrase

__all__ = ["open_kit_key"]


def open_kit_key(
    key_path: Path,
    data: bytes,
    *,
    source: PassphraseSource | None,
    holder: str,
    passphrase: bytes | None,
    prompt: PassphrasePrompt | None,
) -> ec.EllipticCurvePrivateKey:
    """Decrypt (or just parse) a kit's key ``data``, read from ``key_path``.

    Parameters
    ----------
    key_path
        Where ``data`` was read; named in errors.
    data
        The PEM key as stored.
    source
        Where ``kit.json`` says the passphrase comes from; ``None``: the key is stored unencrypted.
    holder
        The kit holder's name, for the renewal command errors suggest.
    passphrase
        Overrides ``source`` when given.
    prompt
        Asks a person, if ``source`` needs one (see :func:`read_passphrase`).

    Raises
    ------
    ProvisioningError
        If the key is unreadable, stored unlike ``kit.json`` says, or cannot be decrypted.
    """
    if not is_encrypted_pem(data):
        try:
            key = read_private_key(data)
        except ValueError as exc:
            raise ProvisioningError(f"{key_path} is not a usable private key: {exc}") from exc
        if source is not None:
            raise ProvisioningError(
                f"{key_path} is not encrypted, although {MANIFEST_FILE} says its passphrase "
                f"comes from {source.describe()}; a key that was decrypted on disk has to be "
                "assumed copied. Ask the federation administrator for a new key: "
                f"`sovereign provision renew {holder} --new-key --revoke-old`."
            )
        return key
    if passphrase is None:
        if source is None:
            raise ProvisioningError(
                f"{key_path} is encrypted, but {MANIFEST_FILE} does not say where its passphrase "
                "comes from; pass the passphrase explicitly, or ask the federation "
                f"administrator to re-issue the kit (`sovereign provision renew {holder} "
                "--new-key`)."
            )
        passphrase = read_passphrase(source, key_path=key_path, prompt=prompt)
    try:
        return read_private_key(data, passphrase=passphrase)
    except ValueError as exc:
        origin = source.describe() if source is not None else "the caller"
        raise ProvisioningError(
            f"The passphrase from {origin} does not decrypt {key_path} ({exc}); supply this "
            "kit's passphrase."
        ) from exc
