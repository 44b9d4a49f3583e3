"""The AES-256-CTR mask generator: deterministic per seed, in range, uniform, masks cancel."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg import generate_mask, modular_add, modular_subtract, modular_sum

seeds = st.binary(min_size=32, max_size=32)
modulus_bits = st.integers(min_value=1, max_value=64)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, length=st.integers(min_value=0, max_value=300), bits=modulus_bits)
def test_same_seed_gives_the_same_vector_within_range(seed: bytes, length: int, bits: int) -> None:
    first = generate_mask(seed, length=length, modulus_bits=bits)
    second = generate_mask(seed, length=length, modulus_bits=bits)
    assert first.dtype == np.uint64
    assert first.shape == (length,)
    np.testing.assert_array_equal(first, second)
    if bits < 64:
        assert int(first.max(initial=0)) < 2**bits


@settings(max_examples=60, deadline=None)
@given(seed=seeds, other=seeds)
def test_different_seeds_give_different_vectors(seed: bytes, other: bytes) -> None:
    if seed == other:
        return
    first = generate_mask(seed, length=64, modulus_bits=32)
    second = generate_mask(other, length=64, modulus_bits=32)
    assert not np.array_equal(first, second)


def test_seeds_differing_only_past_the_first_32_bits_give_different_vectors() -> None:
    # A generator that folded its seed to 32 bits would map these two to one stream.
    seed = bytes(range(32))
    other = seed[:4] + bytes(28)
    assert not np.array_equal(
        generate_mask(seed, length=16, modulus_bits=64),
        generate_mask(other, length=16, modulus_bits=64),
    )


def test_a_shorter_mask_is_a_prefix_of_a_longer_one() -> None:
    seed = bytes(range(32))
    long = generate_mask(seed, length=1000, modulus_bits=40)
    np.testing.assert_array_equal(generate_mask(seed, length=10, modulus_bits=40), long[:10])


@pytest.mark.parametrize("bits", [8, 32, 62, 64])
def test_the_top_bits_of_masks_are_uniform(bits: int) -> None:
    """Chi-square over the top 8 bits (256 bins): far too generous to fail by chance."""
    rng = np.random.default_rng(7)
    counts = np.zeros(256, dtype=np.int64)
    for _ in range(4):
        seed = rng.bytes(32)
        mask = generate_mask(seed, length=50_000, modulus_bits=bits)
        counts += np.bincount((mask >> np.uint64(bits - 8)).astype(np.int64), minlength=256)
    expected = counts.sum() / 256
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    # 255 degrees of freedom: mean 255, sd ~22.6; 400 is > 6 sd above the mean.
    assert chi_square < 400, chi_square
    # And it is not suspiciously perfect either (e.g. a counter instead of a PRG).
    assert chi_square > 150, chi_square


def test_every_bit_of_a_64_bit_mask_is_fair() -> None:
    mask = generate_mask(bytes([9]) * 32, length=100_000, modulus_bits=64)
    bits = (mask[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)  # (n, 64)
    ones = bits.mean(axis=0)
    # Per bit sd = 0.5 / sqrt(1e5) ~ 0.0016; 0.01 is > 6 sd.
    assert np.all(np.abs(ones - 0.5) < 0.01), ones


@settings(max_examples=30, deadline=None)
@given(
    node_count=st.integers(min_value=2, max_value=7),
    length=st.integers(min_value=1, max_value=50),
    bits=modulus_bits,
    data=st.data(),
)
def test_pairwise_masks_cancel_exactly_in_the_modular_sum(
    node_count: int, length: int, bits: int, data: st.DataObject
) -> None:
    high = (1 << bits) - 1
    inputs = [
        np.array(
            data.draw(st.lists(st.integers(0, high), min_size=length, max_size=length)),
            dtype=np.uint64,
        )
        for _ in range(node_count)
    ]
    pair_seeds = {
        (i, j): data.draw(seeds) for i in range(node_count) for j in range(i + 1, node_count)
    }
    masked = []
    for i, vector in enumerate(inputs):
        value = vector.copy()
        for (low, high_index), seed in pair_seeds.items():
            mask = generate_mask(seed, length=length, modulus_bits=bits)
            if i == low:  # mask_ij added by i ...
                value = modular_add(value, mask, modulus_bits=bits)
            elif i == high_index:  # ... and subtracted by j
                value = modular_subtract(value, mask, modulus_bits=bits)
        masked.append(value)
    np.testing.assert_array_equal(
        modular_sum(masked, modulus_bits=bits), modular_sum(inputs, modulus_bits=bits)
    )


@pytest.mark.parametrize(
    ("seed", "length", "bits", "match"),
    [
        (bytes(31), 4, 32, "'seed' parameter of generate_mask must be 32 bytes; got 31"),
        (bytes(32), -1, 32, "'length' parameter"),
        (bytes(32), 4, 0, "'modulus_bits' parameter of generate_mask"),
        (bytes(32), 4, 65, "'modulus_bits' parameter of generate_mask"),
    ],
)
def test_bad_arguments_are_refused(seed: bytes, length: int, bits: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_mask(seed, length=length, modulus_bits=bits)


@pytest.mark.parametrize("length", [1, 2, 7, 1000])
def test_the_mask_is_the_aes_256_ctr_keystream_from_counter_zero(length: int) -> None:
    """Known answer, independent of how the generator fills its buffer: keystream block i is
    AES-256_k(i) (a 128-bit big-endian counter), read as little-endian 64-bit words for a modulus
    above 2**32 and as 32-bit words up to it."""
    seed = bytes(range(100, 132))
    encryptor = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()
    blocks = (length + 1) // 2
    counters = b"".join(i.to_bytes(16, "big") for i in range(blocks))
    keystream = encryptor.update(counters) + encryptor.finalize()
    expected = np.frombuffer(keystream, dtype="<u8")[:length]
    np.testing.assert_array_equal(generate_mask(seed, length=length, modulus_bits=64), expected)
    words32 = np.frombuffer(keystream, dtype="<u4")[:length].astype(np.uint64)
    np.testing.assert_array_equal(
        generate_mask(seed, length=length, modulus_bits=20), words32 & np.uint64(2**20 - 1)
    )
    np.testing.assert_array_equal(generate_mask(seed, length=length, modulus_bits=32), words32)
