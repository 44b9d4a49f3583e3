"""AES-256-GCM share encryption: round trip; tampering and any binding mismatch are detected."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError, ShareAuthenticationError
from sovereign_ai.secagg import ShareBinding, decrypt_share, encrypt_share
from sovereign_ai.secagg.share_encryption import NONCE_BYTES, TAG_BYTES

BINDING = ShareBinding(job_id="job-1", round_number=2, sender_id="alice", recipient_id="bob")


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), plaintext=st.binary(max_size=600))
def test_a_share_round_trips_and_is_hidden(key: bytes, plaintext: bytes) -> None:
    message = encrypt_share(key, plaintext, binding=BINDING)
    assert len(message) == NONCE_BYTES + len(plaintext) + TAG_BYTES
    if len(plaintext) >= 16:
        assert plaintext not in message
    assert decrypt_share(key, message, binding=BINDING) == plaintext


def test_two_encryptions_of_one_share_differ() -> None:
    key = os.urandom(32)
    assert encrypt_share(key, b"share", binding=BINDING) != encrypt_share(
        key, b"share", binding=BINDING
    )


@settings(max_examples=50, deadline=None)
@given(data=st.data(), plaintext=st.binary(min_size=1, max_size=200))
def test_any_flipped_bit_is_detected(data: st.DataObject, plaintext: bytes) -> None:
    key = os.urandom(32)
    message = bytearray(encrypt_share(key, plaintext, binding=BINDING))
    position = data.draw(st.integers(min_value=0, max_value=len(message) * 8 - 1))
    message[position // 8] ^= 1 << (position % 8)
    with pytest.raises(ShareAuthenticationError, match="failed authentication"):
        decrypt_share(key, bytes(message), binding=BINDING)


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": "job-2"},
        {"round_number": 3},
        {"sender_id": "mallory"},
        {"recipient_id": "carol"},
        {"sender_id": "bob", "recipient_id": "alice"},  # reflected back to its sender
    ],
)
def test_a_share_bound_elsewhere_is_refused(change: dict[str, object]) -> None:
    key = os.urandom(32)
    message = encrypt_share(key, b"a share of alice's seed", binding=BINDING)
    with pytest.raises(ShareAuthenticationError, match="replayed from another round or pair"):
        decrypt_share(key, message, binding=dataclasses.replace(BINDING, **change))  # type: ignore[arg-type]


def test_a_wrong_key_or_a_truncated_message_is_refused() -> None:
    key = os.urandom(32)
    message = encrypt_share(key, b"share", binding=BINDING)
    with pytest.raises(ShareAuthenticationError, match="failed authentication"):
        decrypt_share(os.urandom(32), message, binding=BINDING)
    with pytest.raises(ShareAuthenticationError, match="truncated"):
        decrypt_share(key, message[: NONCE_BYTES + TAG_BYTES - 1], binding=BINDING)
    with pytest.raises(ShareAuthenticationError, match="failed authentication"):
        decrypt_share(key, message[:-1], binding=BINDING)


def test_a_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be 32 bytes"):
        encrypt_share(bytes(16), b"share", binding=BINDING)
