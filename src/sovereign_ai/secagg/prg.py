"""The mask generator: a cryptographic PRG that expands a 256-bit seed into a uniform vector.

Secure aggregation hides each update behind masks expanded from short seeds by a pseudorandom
generator (Bonawitz et al., CCS 2017, §4 "PRG"; Bell et al., CCS 2020, §3). Its output must be
indistinguishable from uniform in ``Z_{2**b}``, so:

- the generator is AES-256 in counter mode (NIST SP 800-38A) from ``cryptography``, keyed with the
  full 256-bit seed — never a seed folded to 32 bits, never numpy's (or any statistical) RNG, whose
  output is predictable from a few values;
- the modulus is a power of two, ``2**b`` with ``1 <= b <= 64``. Each element takes one fresh
  keystream *word* — 32 bits when ``b <= 32``, 64 bits otherwise — of which the low ``b`` are
  kept. Every ``b``-bit pattern is then equally likely, so the reduction is exactly unbiased (no
  rejection sampling is needed; a non-power-of-two modulus is not supported). A 32-bit modulus,
  the default of secure aggregation, thus costs half the keystream of a 64-bit one.

The counter starts at zero with a fixed all-zero initial block. That is safe because a seed expands
into exactly one vector: pairwise seeds are derived per (job, round, attempt, pair) and self-mask
seeds are drawn fresh per attempt, so no (key, counter) pair is ever used twice.

Speed: OpenSSL (AES-NI where the CPU has it) writes the keystream straight into a reused buffer,
and :class:`MaskSum` adds or subtracts it in the word width, keeping the low ``b`` bits only once
at the end (``(x mod 2**w) mod 2**b = x mod 2**b`` for ``b <= w``): one keystream pass and one
addition per mask, no vector allocated per mask (``bench/secagg_primitives.py``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError
from sovereign_ai.secagg.modular import check_modulus_bits

__all__ = ["SEED_BYTES", "MaskSum", "generate_mask", "word_dtype"]

SEED_BYTES = 32
"""Length of a mask seed: 256 bits, the AES-256 key."""

_COUNTER_BLOCK = bytes(16)  # AES-CTR initial counter block; see the module docstring
_SPARE_BYTES = 16  # update_into needs room for len(data) + block_size - 1 bytes


def word_dtype(modulus_bits: int) -> type[np.unsignedinteger[Any]]:
    """The keystream word of one element: ``uint32`` for ``b <= 32``, ``uint64`` otherwise."""
    check_modulus_bits(modulus_bits, owner="word_dtype")
    return np.uint32 if modulus_bits <= 32 else np.uint64


def _check_seed(seed: bytes, owner: str) -> None:
    if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
        size = len(seed) if isinstance(seed, bytes | bytearray) else type(seed).__name__
        raise ConfigError(
            f"The 'seed' parameter of {owner} must be {SEED_BYTES} bytes; got {size} instead."
        )


class _Keystream:
    """A reusable buffer the AES-256-CTR keystream of a seed is written into, word by word."""

    def __init__(self, length: int, dtype: type[np.unsignedinteger[Any]]) -> None:
        itemsize = np.dtype(dtype).itemsize
        spare = -(-_SPARE_BYTES // itemsize)
        self._buffer = np.zeros(length + spare, dtype=dtype)  # (length + spare,)
        self._raw = self._buffer.data.cast("B")
        self._bytes = length * itemsize
        self.length = length

    def fill(self, seed: bytes) -> npt.NDArray[Any]:
        """The first ``length`` keystream words of ``seed`` (a view into the buffer)."""
        encryptor = Cipher(algorithms.AES(bytes(seed)), modes.CTR(_COUNTER_BLOCK)).encryptor()
        self._buffer.fill(0)
        # Encrypting zeros in place (OpenSSL allows input and output to be one buffer) leaves
        # the bare keystream, with no copy of it ever made.
        encryptor.update_into(self._raw[: self._bytes], self._raw)
        words = self._buffer[: self.length]
        if sys.byteorder != "little":  # the stream is defined as little-endian words
            words.byteswap(inplace=True)
        return words


def generate_mask(seed: bytes, *, length: int, modulus_bits: int) -> NDArray[np.uint64]:
    """Expand ``seed`` into ``length`` independent uniform integers in ``[0, 2**modulus_bits)``.

    Parameters
    ----------
    seed
        ``SEED_BYTES`` secret bytes (a pairwise key from key agreement or a fresh self-mask seed).
    length
        Number of elements.
    modulus_bits
        ``b`` of the modulus ``2**b``, in ``[1, 64]``.

    Returns
    -------
    numpy.ndarray
        ``(length,)``, ``uint64``; the same seed always gives the same vector.

    Raises
    ------
    ConfigError
        If the seed is not 32 bytes, ``length`` is negative or ``modulus_bits`` out of range.
    """
    _check_seed(seed, "generate_mask")
    if isinstance(length, bool) or length < 0:
        raise ConfigError(
            f"The 'length' parameter of generate_mask must be >= 0; got {length!r} instead."
        )
    check_modulus_bits(modulus_bits, owner="generate_mask")
    words = _Keystream(length, word_dtype(modulus_bits)).fill(seed)
    mask = words.astype(np.uint64)  # (length,)
    np.bitwise_and(mask, np.uint64((1 << modulus_bits) - 1), out=mask)
    return mask


class MaskSum:
    """A running sum modulo ``2**b`` of vectors and of the masks of seeds, added or subtracted.

    Equal to summing :func:`generate_mask` outputs with :mod:`.modular`, at a fraction of the
    cost: no vector per mask, arithmetic in the keystream's word width.

    Parameters
    ----------
    length
        Elements of every vector and mask.
    modulus_bits
        ``b``.
    """

    def __init__(self, length: int, *, modulus_bits: int) -> None:
        dtype = word_dtype(modulus_bits)
        self.modulus_bits = modulus_bits
        self._total = np.zeros(length, dtype=dtype)  # (length,), wraps modulo 2**w
        self._keystream = _Keystream(length, dtype)

    def add_vector(self, vector: NDArray[np.unsignedinteger[Any]]) -> None:
        """Add an integer vector (its values modulo ``2**b`` count)."""
        np.add(self._total, vector, out=self._total, casting="unsafe")

    def add_mask(self, seed: bytes, *, sign: int = 1) -> None:
        """Add (``sign = 1``) or subtract (``sign = -1``) the mask of ``seed``."""
        _check_seed(seed, "MaskSum.add_mask")
        words = self._keystream.fill(seed)
        if sign == 1:
            np.add(self._total, words, out=self._total)
        elif sign == -1:
            np.subtract(self._total, words, out=self._total)
        else:
            raise ConfigError(
                f"The 'sign' parameter of MaskSum.add_mask must be 1 or -1; got {sign!r}."
            )

    def result(self) -> NDArray[np.uint64]:
        """The sum modulo ``2**b``, ``(length,)`` uint64."""
        total = self._total.astype(np.uint64)
        np.bitwise_and(total, np.uint64((1 << self.modulus_bits) - 1), out=total)
        return total
