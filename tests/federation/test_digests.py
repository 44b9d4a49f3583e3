"""Digests both sides of a message compute: over the bytes as streamed, and over a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sovereign_ai.core import Parameters
from sovereign_ai.federation.digests import file_digest, payload_digest


def streamed(parameters: Parameters, *, chunk: int) -> bytes:
    """The payload as the gRPC transport streams it (its chunks)."""
    return b"".join(bytes(c) for c in parameters.encoded().chunks(chunk))


def test_the_digest_is_of_the_bytes_streamed_whatever_the_chunking() -> None:
    big = Parameters({"w": np.arange(3_000_000, dtype=np.float32), "b": np.ones(3)})
    wire = streamed(big, chunk=4096)
    assert payload_digest(big) == (hashlib.sha256(wire).hexdigest(), len(wire))


def test_a_files_digest_is_of_its_bytes_read_in_pieces(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # more than one piece
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    assert file_digest(path) == (hashlib.sha256(data).hexdigest(), len(data))
    (tmp_path / "empty").write_bytes(b"")
    assert file_digest(tmp_path / "empty") == (hashlib.sha256(b"").hexdigest(), 0)
