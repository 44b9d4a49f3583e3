"""The encrypted-inference messages: a JSON header and binary ciphertexts, length-prefixed.

::

    b"SVHE" | version (1 byte) | header length (u32) | header (UTF-8 JSON object)
            | count (u32) | count x (length (u64) | bytes)

Ciphertexts are TenSEAL's serialisations; they travel as bytes, not base64 (a third smaller, and
no decoding pass). The reader checks every length against its limits before reading, and refuses
trailing bytes: a malformed message is an :class:`~sovereign_ai.errors.EncryptionError` naming
what was wrong, never a crash.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from sovereign_ai.errors import EncryptionError

__all__ = ["pack", "unpack"]

_MAGIC = b"SVHE"
_VERSION = 1
_MAX_HEADER = 64 << 10


def pack(header: dict[str, Any], blobs: Sequence[bytes]) -> bytes:
    """One message: ``header`` (JSON-serialisable) and the ``blobs`` in order."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    parts = [_MAGIC, bytes([_VERSION]), struct.pack(">I", len(text)), text]
    parts.append(struct.pack(">I", len(blobs)))
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), bytes(blob)]
    return b"".join(parts)


def unpack(
    data: bytes, *, max_blobs: int, max_blob_bytes: int
) -> tuple[dict[str, Any], list[bytes]]:
    """The header and blobs of a message from :func:`pack`.

    Raises
    ------
    EncryptionError
        If the message is not one, is truncated or has trailing bytes, or breaks a limit.
    """
    view = memoryview(data)
    if view[:4] != _MAGIC or len(view) < 9:
        raise EncryptionError("Not an encrypted-inference message (bad magic bytes).")
    if view[4] != _VERSION:
        raise EncryptionError(f"Unsupported message version {view[4]}; this server speaks 1.")
    (length,) = struct.unpack(">I", view[5:9])
    if length > _MAX_HEADER or 9 + length + 4 > len(view):
        raise EncryptionError("The message's header is too long or the message is truncated.")
    try:
        header = json.loads(bytes(view[9 : 9 + length]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncryptionError(f"The message's header is not JSON: {exc}.") from exc
    if not isinstance(header, dict):
        raise EncryptionError("The message's header must be a JSON object.")
    offset = 9 + length
    (count,) = struct.unpack(">I", view[offset : offset + 4])
    offset += 4
    if count > max_blobs:
        raise EncryptionError(f"The message holds {count} ciphertexts; at most {max_blobs}.")
    blobs = []
    for index in range(count):
        if offset + 8 > len(view):
            raise EncryptionError(f"The message is truncated before ciphertext {index}.")
        (size,) = struct.unpack(">Q", view[offset : offset + 8])
        offset += 8
        if size > max_blob_bytes:
            raise EncryptionError(
                f"Ciphertext {index} is {size} bytes; at most {max_blob_bytes} fit these "
                "parameters."
            )
        if offset + size > len(view):
            raise EncryptionError(f"The message is truncated inside ciphertext {index}.")
        blobs.append(bytes(view[offset : offset + size]))
        offset += size
    if offset != len(view):
        raise EncryptionError(f"{len(view) - offset} trailing bytes after the last ciphertext.")
    return header, blobs
