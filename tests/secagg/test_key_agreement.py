"""X25519 + HKDF pairwise keys: symmetric, 256-bit, bound to job, round, pair and purpose."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError, SecureAggregationError
from sovereign_ai.secagg import KeyPair, KeyPurpose, PairContext, derive_pair_key
from sovereign_ai.secagg.key_agreement import KEY_BYTES

node_ids = st.text(min_size=1, max_size=12)


def context(**changes: object) -> PairContext:
    fields: dict[str, object] = {
        "job_id": "job-1",
        "round_number": 3,
        "node_a": "alice",
        "node_b": "bob",
        "purpose": KeyPurpose.MASK,
    }
    fields.update(changes)
    return PairContext(**fields)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    job_id=st.text(max_size=12),
    round_number=st.integers(min_value=0, max_value=10**6),
    pair=st.lists(node_ids, min_size=2, max_size=2, unique=True),
    purpose=st.sampled_from(KeyPurpose),
)
def test_both_ends_derive_the_same_full_length_key(
    job_id: str, round_number: int, pair: list[str], purpose: KeyPurpose
) -> None:
    first, second = KeyPair.generate(), KeyPair.generate()
    a, b = pair
    key_ab = derive_pair_key(
        first,
        second.public_key,
        context=PairContext(
            job_id=job_id, round_number=round_number, node_a=a, node_b=b, purpose=purpose
        ),
    )
    key_ba = derive_pair_key(
        second,
        first.public_key,
        context=PairContext(
            job_id=job_id, round_number=round_number, node_a=b, node_b=a, purpose=purpose
        ),
    )
    assert key_ab == key_ba
    assert len(key_ab) == KEY_BYTES == 32


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": "job-2"},
        {"round_number": 4},
        {"node_b": "carol"},
        {"node_a": "carol"},
        {"purpose": KeyPurpose.SHARE_ENCRYPTION},
    ],
)
def test_a_key_is_bound_to_its_context(change: dict[str, object]) -> None:
    first, second = KeyPair.generate(), KeyPair.generate()
    base = derive_pair_key(first, second.public_key, context=context())
    other = derive_pair_key(first, second.public_key, context=context(**change))
    assert base != other


def test_the_info_string_cannot_be_confused_by_moving_characters_between_fields() -> None:
    assert (
        context(job_id="ab", round_number=1).info() != context(job_id="a", round_number=11).info()
    )
    assert context(node_a="a:b", node_b="c").info() != context(node_a="a", node_b="b:c").info()


def test_different_peers_give_different_keys_and_the_raw_secret_is_not_the_key() -> None:
    own, peer, other_peer = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    key = derive_pair_key(own, peer.public_key, context=context())
    assert key != derive_pair_key(own, other_peer.public_key, context=context())
    raw_secret = own.private_key.exchange(X25519PublicKey.from_public_bytes(peer.public_key))
    assert key != raw_secret


def test_a_key_pair_round_trips_through_its_private_bytes() -> None:
    pair = KeyPair.generate()
    rebuilt = KeyPair.from_private_bytes(pair.private_bytes())
    assert rebuilt.public_key == pair.public_key
    assert "private_key" not in repr(pair)


def test_a_pair_of_one_node_with_itself_is_refused() -> None:
    with pytest.raises(ConfigError, match="two different nodes"):
        context(node_b="alice")


def test_malformed_and_low_order_peer_keys_are_refused() -> None:
    own = KeyPair.generate()
    with pytest.raises(SecureAggregationError, match="must be 32 bytes"):
        derive_pair_key(own, b"\x01" * 31, context=context())
    with pytest.raises(SecureAggregationError, match="low-order point"):
        derive_pair_key(own, bytes(32), context=context())
