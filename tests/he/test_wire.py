"""The encrypted-inference message format: round trips, and any hostile bytes a clear error."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovereign_ai.errors import EncryptionError
from sovereign_ai.he import pack, unpack

LIMITS = {"max_blobs": 64, "max_blob_bytes": 4096}


@given(header=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
       blobs=st.lists(st.binary(max_size=300), max_size=8))  # fmt: skip
def test_round_trip(header: dict[str, object], blobs: list[bytes]) -> None:
    assert unpack(pack(header, blobs), **LIMITS) == (header, blobs)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_message_or_a_clear_error(data: bytes) -> None:
    with contextlib.suppress(EncryptionError):
        unpack(data, **LIMITS)


@given(cut=st.integers(0, 60))
def test_truncated_or_extended_messages_are_refused(cut: int) -> None:
    message = pack({"rows": 2}, [b"x" * 10, b"y" * 20])
    with pytest.raises(EncryptionError):
        unpack(message[: len(message) - 1 - cut], **LIMITS)
    with pytest.raises(EncryptionError, match="trailing"):
        unpack(message + b"\x00", **LIMITS)


def test_limits_are_checked_before_reading() -> None:
    with pytest.raises(EncryptionError, match="at most 64"):
        unpack(pack({}, [b""] * 65), **LIMITS)
    with pytest.raises(EncryptionError, match="4096 fit"):
        unpack(pack({}, [b"z" * 5000]), **LIMITS)
