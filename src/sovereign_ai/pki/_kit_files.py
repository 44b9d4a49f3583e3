"""Writing and reading the files of CA and kit folders: atomically, and with owner-only permissions.

Every file is written to a temporary file in the same folder and renamed over the target, so a
crash leaves either the old file or the new one, never half of either. Folders are created ``0700``
and private keys ``0600``; a key that is readable by the group or others is refused on load rather
than used, because such a key has to be assumed copied.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sovereign_ai.errors import ProvisioningError
from sovereign_ai.pki.certificates import Role

__all__ = [
    "CA_CERTIFICATE",
    "CA_FOLDER",
    "CA_KEY",
    "CERTIFICATE_FILES",
    "COORDINATOR_FOLDER",
    "CRL_FILE",
    "KEY_FILES",
    "MANIFEST_FILE",
    "NODES_FOLDER",
    "NODE_CONFIG_FILE",
    "PRIVATE_FILE_MODE",
    "PRIVATE_FOLDER_MODE",
    "PUBLIC_FILE_MODE",
    "ROSTER_FILE",
    "make_private_folder",
    "read_kit_file",
    "write_file_atomically",
    "write_private_file",
    "write_public_file",
]

# Layout of a provisioning folder (``--out``) and of the kits in it:
#   ca/                 ca.pem  ca.key  roster.json  crl.pem          stays with the administrator
#   coordinator/        ca.pem  coordinator.pem  coordinator.key  roster.json  crl.pem  kit.json
#   nodes/<name>/       ca.pem  node.pem  node.key  kit.json  node.toml
CA_FOLDER = "ca"
COORDINATOR_FOLDER = "coordinator"
NODES_FOLDER = "nodes"
CA_CERTIFICATE = "ca.pem"
CA_KEY = "ca.key"
ROSTER_FILE = "roster.json"
CRL_FILE = "crl.pem"
MANIFEST_FILE = "kit.json"
NODE_CONFIG_FILE = "node.toml"
CERTIFICATE_FILES = {Role.COORDINATOR: "coordinator.pem", Role.NODE: "node.pem"}
KEY_FILES = {Role.COORDINATOR: "coordinator.key", Role.NODE: "node.key"}

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
_CHECKS_PERMISSIONS = os.name == "posix"  # Windows has no mode bits; ACLs there are the owner's job


def make_private_folder(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode ``0700``; tighten it if it already exists.

    Raises
    ------
    ProvisioningError
        If the folder cannot be created.
    """
    try:
        path.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
        path.chmod(PRIVATE_FOLDER_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise ProvisioningError(f"Cannot create folder {path}: {exc.strerror}.") from exc


def write_file_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The temporary file is created with mode ``0600`` (``mkstemp``), so a private key is never
    readable by others, not even for an instant, and only then given ``mode``.

    Raises
    ------
    ProvisioningError
        If the file cannot be written.
    """
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ProvisioningError(f"Cannot write {path}: {exc.strerror}.") from exc


def read_kit_file(path: Path, *, is_private: bool = False, label: str = "Private key") -> bytes:
    """Read one file of a kit, refusing a private key others can read.

    Parameters
    ----------
    path
        The file to read.
    is_private
        Whether the file is a secret (a private key, a passphrase file); if so it must not be
        readable by group or others.
    label
        What the secret is, for the error message.

    Raises
    ------
    ProvisioningError
        If the file is missing, unreadable, or a private key with loose permissions (the message
        gives the ``chmod 600`` that fixes it).
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ProvisioningError(
            f"{path} is missing; is {path.parent} a complete startup kit?"
        ) from None
    except OSError as exc:
        raise ProvisioningError(f"Cannot read {path}: {exc.strerror}.") from exc
    if not stat.S_ISREG(status.st_mode):
        raise ProvisioningError(f"{path} is not a regular file.")
    if is_private and _CHECKS_PERMISSIONS and status.st_mode & 0o077:
        raise ProvisioningError(
            f"{label} {path} is readable by others (mode {stat.S_IMODE(status.st_mode):03o}); "
            f"refusing to use it. If it has not been copied, restrict it with: chmod 600 {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvisioningError(f"Cannot read {path}: {exc.strerror}.") from exc


def write_public_file(path: Path, data: bytes) -> None:
    """Write a certificate, list or manifest atomically, readable by all (mode ``0644``)."""
    write_file_atomically(path, data, mode=PUBLIC_FILE_MODE)


def write_private_file(path: Path, data: bytes) -> None:
    """Write a private key atomically, readable by its owner only (mode ``0600``)."""
    write_file_atomically(path, data, mode=PRIVATE_FILE_MODE)
