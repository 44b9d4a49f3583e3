"""Payload data chunks on the wire without the protobuf runtime's copies.

A data chunk is ``TaskChunk(data=...)`` or ``ResultChunk(data=...)``. On the wire that is one byte
naming field 2 as length-delimited (``0x12``), the length as a varint, then the bytes. Through the
protobuf runtime a 1 MiB chunk is copied three times on the way out (out of the model, into the
message, serialised) and twice on the way in (parsed, read back as ``bytes``): for a 200 MB model,
a second of CPU time across both ends. :class:`DataFrame` writes that one shape straight from a
view of the model's memory (one copy, which gRPC needs anyway) and
:func:`chunk_parser` reads it as a view of the bytes gRPC received (no copy).

Every other message, and a data chunk in any other valid encoding, goes through the protobuf
runtime as before; the tests check both paths against it. This is the only protobuf encoding
written by hand, and only because the runtime has no zero-copy bytes field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from google.protobuf.message import Message

__all__ = ["DataFrame", "chunk_parser", "serialize"]

DATA_TAG = 0x12  # field number 2 (``data`` in both chunk messages), wire type 2
_MAX_VARINT_BYTES = 10

M = TypeVar("M", bound=Message)


class DataFrame:
    """One data chunk of a payload, as a view; stands for ``TaskChunk``/``ResultChunk(data=...)``.

    It answers the part of the message API the transport uses (``WhichOneof``, ``data``,
    ``SerializeToString``), so senders and receivers treat it like the message it encodes.

    Parameters
    ----------
    data
        The chunk's bytes (a view is kept, not a copy).
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = memoryview(data).cast("B")

    def WhichOneof(self, group: str) -> Literal["data"]:  # noqa: N802  # protobuf's API name
        """Like the message's: this chunk carries ``data``."""
        del group
        return "data"

    def SerializeToString(self) -> bytes:  # noqa: N802  # protobuf's API name
        """The chunk message's wire bytes, built with one copy of the data."""
        return b"".join(self.parts())

    def parts(self) -> tuple[bytes, memoryview]:
        """The wire bytes as (tag and length, data view), without copying the data."""
        return _varint_prefix(self.data.nbytes), self.data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataFrame):
            return NotImplemented
        return self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # compared by content, like messages


def _varint_prefix(length: int) -> bytes:
    prefix = bytearray([DATA_TAG])
    while True:
        low, length = length & 0x7F, length >> 7
        prefix.append(low | (0x80 if length else 0))
        if not length:
            return bytes(prefix)


def serialize(message: Message | DataFrame) -> bytes:
    """Wire bytes of a protocol message or a :class:`DataFrame` (gRPC's serializer)."""
    return message.SerializeToString()


def chunk_parser(message_type: type[M]) -> Callable[[bytes], M | DataFrame]:
    """A deserializer for ``message_type`` that reads data chunks as views.

    Raises whatever ``message_type.FromString`` raises on bytes that are not a valid message.
    """

    def parse(raw: bytes) -> M | DataFrame:
        start = _data_start(raw)
        if start is not None:
            return DataFrame(memoryview(raw)[start:])
        message: M = message_type.FromString(raw)
        return message

    return parse


def _data_start(raw: bytes) -> int | None:
    """Where the data starts if ``raw`` is exactly tag, varint length and that many bytes."""
    if not raw or raw[0] != DATA_TAG:
        return None
    length, shift = 0, 0
    for index in range(1, min(len(raw), 1 + _MAX_VARINT_BYTES)):
        byte = raw[index]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return index + 1 if len(raw) - index - 1 == length else None
    return None
