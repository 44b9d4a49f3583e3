"""SHA-256 digests of what parties exchange, as their audit logs record them.

Both sides of a message compute the same digest over the same bytes: the node over the answer it
lets out (``egress``), the coordinator over the answer it takes in (``received``) and over the
models it adopts, so an auditor can match one party's entries against the other's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sovereign_ai.core import Parameters

__all__ = ["file_digest", "payload_digest"]

_CHUNK = 1 << 20  # 1 MiB: hashed piece by piece, never the whole payload in one bytes object


def payload_digest(parameters: Parameters) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of ``parameters`` as they travel (safetensors)."""
    encoded = parameters.encoded()
    digest = hashlib.sha256()
    for chunk in encoded.chunks(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest(), encoded.size


def file_digest(path: str | Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of the file at ``path``.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
