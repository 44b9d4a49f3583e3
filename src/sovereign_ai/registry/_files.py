"""A version's files: written whole into a staging folder, made durable, then renamed in place.

::

    <registry>/
      registry.sqlite                 versions and aliases (the only record of what exists)
      models/<name>/<version>/
        model.safetensors             the parameters, Parameters.to_bytes()
        passport.json                 the passport's canonical bytes
        signature.json                the coordinator's signature of them (signed versions)
      .staging/                       folders being written; anything left here is debris

A version folder without its database row is debris of a crash between the rename and the
commit; the next registration of that version number replaces it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sovereign_ai.errors import RegistryError

__all__ = [
    "MODEL_FILE",
    "PASSPORT_FILE",
    "SIGNATURE_FILE",
    "PassportSignature",
    "install_version",
]

MODEL_FILE = "model.safetensors"
PASSPORT_FILE = "passport.json"
SIGNATURE_FILE = "signature.json"
_SIGNATURE_FORMAT = "sovereign-passport-signature/1"


@dataclass(frozen=True)
class PassportSignature:
    """The signature of a passport's bytes and the certificate (PEM) to check it with."""

    certificate: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        """As stored in ``signature.json``."""
        document = {
            "certificate": self.certificate.decode("ascii"),
            "format": _SIGNATURE_FORMAT,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PassportSignature:
        """Read ``signature.json``.

        Raises
        ------
        RegistryError
            If it is not a signature file of this format.
        """
        try:
            document = json.loads(data)
            if document.get("format") != _SIGNATURE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {_SIGNATURE_FORMAT!r}")
            certificate = str(document["certificate"]).encode("ascii")
            signature = base64.b64decode(str(document["signature"]), validate=True)
        except (ValueError, KeyError, AttributeError, binascii.Error) as exc:
            raise RegistryError(f"The signature file is unreadable: {exc}.") from exc
        return cls(certificate=certificate, signature=signature)


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def install_version(root: Path, target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a staging folder under ``root``, fsync them, rename it to ``target``.

    The caller holds the registry's write transaction, so nobody else installs ``target``
    meanwhile; a ``target`` already there is debris of an earlier crash and is replaced.

    Raises
    ------
    OSError
        If a file cannot be written; nothing is left at ``target`` then.
    """
    staging_root = root / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_root))
    try:
        for name, data in files.items():
            _write_durably(staging / name, data)
        _sync_folder(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        _sync_folder(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
