"""Shamir sharing of 32-byte secrets: any t of n reconstruct; too few, duplicates refused."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import BelowThresholdError, ConfigError, SecureAggregationError
from sovereign_ai.secagg import Share, reconstruct_secret, split_secret
from sovereign_ai.secagg.shamir import FIELD_PRIME, SHARE_BYTES

secrets_32 = st.binary(min_size=32, max_size=32)


@st.composite
def sharings(draw: st.DrawFn) -> tuple[bytes, int, list[Share]]:
    secret = draw(secrets_32)
    share_count = draw(st.integers(min_value=1, max_value=30))
    threshold = draw(st.integers(min_value=1, max_value=share_count))
    return secret, threshold, split_secret(secret, threshold=threshold, share_count=share_count)


def test_the_field_prime_is_the_mersenne_prime_521() -> None:
    sympy = pytest.importorskip("sympy")
    assert FIELD_PRIME == 2**521 - 1
    assert sympy.isprime(FIELD_PRIME)


@settings(max_examples=60, deadline=None)
@given(sharing=sharings(), data=st.data())
def test_any_t_of_n_shares_reconstruct_the_secret(
    sharing: tuple[bytes, int, list[Share]], data: st.DataObject
) -> None:
    secret, threshold, shares = sharing
    assert [share.x for share in shares] == list(range(1, len(shares) + 1))
    chosen = data.draw(st.permutations(shares))[: data.draw(st.integers(threshold, len(shares)))]
    assert reconstruct_secret(chosen, threshold=threshold) == secret


@settings(max_examples=60, deadline=None)
@given(secret=secrets_32, data=st.data())
def test_t_minus_one_shares_do_not_give_the_secret(secret: bytes, data: st.DataObject) -> None:
    share_count = data.draw(st.integers(min_value=2, max_value=30))
    threshold = data.draw(st.integers(min_value=2, max_value=share_count))
    shares = split_secret(secret, threshold=threshold, share_count=share_count)
    too_few = data.draw(st.permutations(shares))[: threshold - 1]
    with pytest.raises(BelowThresholdError, match=f"threshold is {threshold}"):
        reconstruct_secret(too_few, threshold=threshold)
    # Interpolating them anyway (as if t were t - 1) yields a random field element, which is
    # refused as inconsistent rather than returned as a wrong secret.
    with pytest.raises(SecureAggregationError, match="inconsistent"):
        reconstruct_secret(too_few, threshold=threshold - 1)


def test_one_share_of_a_threshold_one_sharing_is_the_secret() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, threshold=1, share_count=3)
    assert {share.y for share in shares} == {int.from_bytes(secret, "big")}


def test_duplicate_shares_are_refused() -> None:
    shares = split_secret(bytes(32), threshold=3, share_count=5)
    with pytest.raises(SecureAggregationError, match=r"x = \[2\] appear more than once"):
        reconstruct_secret([shares[1], shares[0], shares[1]], threshold=3)


@settings(max_examples=40, deadline=None)
@given(sharing=sharings(), data=st.data())
def test_a_corrupted_share_is_detected(
    sharing: tuple[bytes, int, list[Share]], data: st.DataObject
) -> None:
    _, threshold, shares = sharing
    victim = data.draw(st.integers(0, threshold - 1))
    # A uniformly random replacement (hypothesis would favour tiny values); deterministic per
    # example. An *additive* edit is not detectable: shares are authenticated by AES-GCM.
    corrupted_y = random.Random(data.draw(st.integers())).randrange(FIELD_PRIME)
    used = list(shares[:threshold])
    if corrupted_y == used[victim].y:
        return
    used[victim] = Share(x=used[victim].x, y=corrupted_y)
    with pytest.raises(SecureAggregationError, match="inconsistent"):
        reconstruct_secret(used, threshold=threshold)


def test_shares_from_two_secrets_do_not_mix() -> None:
    first = split_secret(bytes(32), threshold=2, share_count=3)
    second = split_secret(bytes([1]) * 32, threshold=2, share_count=3)
    with pytest.raises(SecureAggregationError, match="inconsistent"):
        reconstruct_secret([first[0], second[1]], threshold=2)


@settings(max_examples=40, deadline=None)
@given(sharing=sharings())
def test_shares_round_trip_through_bytes(sharing: tuple[bytes, int, list[Share]]) -> None:
    _, _, shares = sharing
    for share in shares:
        raw = share.to_bytes()
        assert len(raw) == SHARE_BYTES == 70
        assert Share.from_bytes(raw) == share


def test_malformed_shares_are_refused() -> None:
    with pytest.raises(SecureAggregationError, match="70 bytes; got 69"):
        Share.from_bytes(bytes(69))
    with pytest.raises(SecureAggregationError, match="malformed"):
        Share.from_bytes(bytes(SHARE_BYTES))  # x = 0 would be the secret itself
    with pytest.raises(SecureAggregationError, match="malformed"):
        Share(x=1, y=FIELD_PRIME)


@pytest.mark.parametrize(
    ("secret", "threshold", "share_count", "match"),
    [
        (bytes(31), 1, 1, "'secret' parameter of split_secret must be 32 bytes; got 31"),
        (bytes(32), 0, 3, "'threshold' parameter of split_secret"),
        (bytes(32), 4, 3, "'threshold' parameter of split_secret"),
        (bytes(32), 1, 0, "'share_count' parameter of split_secret"),
    ],
)
def test_bad_split_arguments_are_refused(
    secret: bytes, threshold: int, share_count: int, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        split_secret(secret, threshold=threshold, share_count=share_count)
