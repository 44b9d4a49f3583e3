"""What both ends of a call hash, so that a node's record and the coordinator's can be matched.

A call's *wire digest* is the SHA-256 of its request messages exactly as gRPC frames them inside
HTTP/2 DATA frames: for each message one flag byte (0, uncompressed), its length as four
big-endian bytes, then the serialised message. Its *wire bytes* are the length of that framing.
The node computes both over the bytes it hands to gRPC (:mod:`._egress_guard`); the coordinator
over the bytes gRPC handed to it (:class:`WireTally`). Equal digests mean the coordinator received
exactly what the node recorded, byte for byte, headers and metrics included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Framed", "Received", "ReceivedCallback", "WireDigest", "WireTally", "grpc_prefix"]

M = TypeVar("M")


def grpc_prefix(length: int) -> bytes:
    """gRPC's length prefix of an uncompressed message of ``length`` bytes."""
    return b"\x00" + length.to_bytes(4, "big")


@dataclass(frozen=True)
class WireDigest:
    """SHA-256 (hex) and size in bytes of a call's framed request messages."""

    sha256: str
    wire_bytes: int
    messages: int


class WireTally:
    """Accumulates the wire digest of a call's messages as they pass.

    Parameters
    ----------
    keep
        Also keep the messages' bytes (:attr:`kept`), for inspection.
    """

    def __init__(self, *, keep: bool = False) -> None:
        self._hash = hashlib.sha256()
        self._bytes = 0
        self._messages = 0
        self._keep = keep
        self.kept: list[bytes] = []

    def add(self, *parts: bytes | memoryview) -> None:
        """Count one message given as consecutive parts of its serialised bytes."""
        length = sum(len(part) for part in parts)
        self._hash.update(grpc_prefix(length))
        for part in parts:
            self._hash.update(part)
        self._bytes += 5 + length
        self._messages += 1

    @property
    def wire_bytes(self) -> int:
        """Bytes of the framed messages counted so far."""
        return self._bytes

    @property
    def digest(self) -> WireDigest:
        """The digest of the messages counted so far."""
        return WireDigest(self._hash.hexdigest(), self._bytes, self._messages)

    def unwrap(self, framed: Iterable[Framed[M]]) -> Iterator[M]:
        """The messages of ``framed``, each counted as it is read."""
        for item in framed:
            self.add(item.raw)
            if self._keep:
                self.kept.append(item.raw)
            yield item.message


@dataclass(frozen=True)
class Framed(Generic[M]):
    """A received message with the bytes it was parsed from."""

    message: M
    raw: bytes


@dataclass(frozen=True)
class Received:
    """One call a node made, as the coordinator received it.

    Parameters
    ----------
    rpc
        ``"PullTask"`` or ``"PushResult"``.
    node_id
        The caller, from its certificate.
    wire
        Digest and size of the request messages read (all of them, unless the call was refused
        part-way).
    job_id, round_number, stage
        The task a result claims to answer (empty for a long-poll or an unreadable header).
    refusal
        Why the coordinator refused the call; empty if it accepted it.
    messages
        The messages' bytes, only when the transport was asked to keep them.
    """

    rpc: str
    node_id: str
    wire: WireDigest
    job_id: str = ""
    round_number: int = 0
    stage: str = ""
    refusal: str = ""
    messages: tuple[bytes, ...] = ()


ReceivedCallback = Callable[[Received], None]
