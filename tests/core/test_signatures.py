"""Signatures checked with the signer's certificate alone; anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovereign_ai.core.signatures import check_signature
from sovereign_ai.errors import SignatureError
from sovereign_ai.pki.signing import ephemeral_federation

FEDERATION = ephemeral_federation("signatures", ["north", "south"])
NORTH, SOUTH = FEDERATION.signers["north"], FEDERATION.signers["south"]


@given(st.binary(max_size=256))
def test_a_signature_verifies_with_its_certificate_only(message: bytes) -> None:
    signature = NORTH.sign(message)
    check_signature(NORTH.certificate, message, signature)
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(SOUTH.certificate, message, signature)
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(NORTH.certificate, message + b"!", signature)


def test_an_unreadable_certificate_is_refused() -> None:
    with pytest.raises(SignatureError, match="unreadable"):
        check_signature(b"-----BEGIN CERTIFICATE-----\nnope\n", b"m", b"s")
