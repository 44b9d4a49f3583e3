"""Shamir secret sharing of 32-byte secrets over the prime field of the Mersenne prime 2**521 - 1.

A secret ``s`` becomes the constant term of a random polynomial of degree ``t - 1``; share ``i`` is
the polynomial's value at ``x = i``. Any ``t`` shares give back ``s`` by Lagrange interpolation at
zero, and ``t - 1`` shares say nothing about it (Shamir, "How to Share a Secret", CACM 1979).
Secure aggregation shares each node's self-mask seed and pairwise private key this way (Bonawitz
et al., CCS 2017, §4 "SS.share"/"SS.recon"; Bell et al., CCS 2020).

Field. ``p = 2**521 - 1`` (a Mersenne prime). A 256-bit secret fits in one field element, so
there is no splitting into halves, and shares that do not lie on one polynomial of degree
``t - 1`` — a share of another secret, a corrupted share, or fewer shares than the polynomial
needs — interpolate to a near-uniform element, which is below ``2**256`` with probability
``2**-265``; :func:`reconstruct_secret` refuses such a result instead of returning a wrong secret
(fail closed). This is a consistency check, not authentication: someone who can *edit* a share
can shift the result by a chosen amount, which is why shares travel only inside AES-GCM
(:mod:`sovereign_ai.secagg.share_encryption`). Shares are 4 + 66 bytes.

Library or not. The well-kept candidate is pycryptodome's ``Crypto.Protocol.SecretSharing``
(GF(2**128), so a 32-byte secret is shared as two 16-byte halves). It is not installed in the
project's environment; measured in a scratch directory (pycryptodome 3.23.0, development machine,
2 cores shared with other work, one 32-byte secret, both halves, split + reconstruct from ``t``)::

    n = 100, t = 50     pycryptodome  0.24 - 0.29 s    this module  0.002 s
    n = 500, t = 250    pycryptodome  6.0  - 9.0  s    this module  0.04 - 0.06 s

Its field multiplication is a pure-Python bit loop, so it is too slow at hundreds of shares and
would add a dependency; this module uses Python's own big integers (C arithmetic), with shares at
small ``x`` so that Horner's evaluation multiplies by machine-size integers only.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sovereign_ai.errors import BelowThresholdError, ConfigError, SecureAggregationError

__all__ = [
    "FIELD_PRIME",
    "SECRET_BYTES",
    "SHARE_BYTES",
    "Share",
    "reconstruct_secret",
    "split_secret",
]

FIELD_PRIME = 2**521 - 1
"""The Mersenne prime M521; every share value is an element of GF(FIELD_PRIME)."""

SECRET_BYTES = 32
"""Length of a shared secret (a mask seed or an X25519 private key)."""

_X_BYTES = 4
_Y_BYTES = (FIELD_PRIME.bit_length() + 7) // 8  # 66
SHARE_BYTES = _X_BYTES + _Y_BYTES
"""Length of a serialised share: ``x`` (4 bytes) then ``y`` (66 bytes), big-endian."""

_MAX_SHARES = 2**32 - 1


@dataclass(frozen=True)
class Share:
    """One point ``(x, y)`` of a sharing polynomial.

    Parameters
    ----------
    x
        The evaluation point, ``1 <= x < 2**32`` (never 0: that is the secret).
    y
        The polynomial's value at ``x``, in ``[0, FIELD_PRIME)``.
    """

    x: int
    y: int

    def __post_init__(self) -> None:
        if not 1 <= self.x <= _MAX_SHARES or not 0 <= self.y < FIELD_PRIME:
            raise SecureAggregationError(
                f"A Shamir share must have 1 <= x < 2**32 and 0 <= y < 2**521 - 1; got x={self.x}"
                f" and a y of {self.y.bit_length()} bits. The share is malformed."
            )

    def to_bytes(self) -> bytes:
        """``SHARE_BYTES`` bytes: ``x`` then ``y``, big-endian, fixed width."""
        return self.x.to_bytes(_X_BYTES, "big") + self.y.to_bytes(_Y_BYTES, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Share:
        """Parse :meth:`to_bytes` output; raises :class:`SecureAggregationError` if malformed."""
        if len(raw) != SHARE_BYTES:
            raise SecureAggregationError(
                f"A serialised Shamir share is {SHARE_BYTES} bytes; got {len(raw)} bytes."
            )
        return cls(x=int.from_bytes(raw[:_X_BYTES], "big"), y=int.from_bytes(raw[_X_BYTES:], "big"))


def split_secret(secret: bytes, *, threshold: int, share_count: int) -> list[Share]:
    """Split ``secret`` into ``share_count`` shares, any ``threshold`` of which recover it.

    Parameters
    ----------
    secret
        ``SECRET_BYTES`` bytes.
    threshold
        ``t``: shares needed to reconstruct, ``1 <= t <= share_count``.
    share_count
        ``n``: shares made, at ``x = 1 .. n`` (the caller maps them to recipients).

    Returns
    -------
    list[Share]
        ``n`` shares, share ``i - 1`` at ``x = i``.

    Raises
    ------
    ConfigError
        If the secret is not 32 bytes or ``t``/``n`` are out of range.
    """
    if len(secret) != SECRET_BYTES:
        raise ConfigError(
            f"The 'secret' parameter of split_secret must be {SECRET_BYTES} bytes; "
            f"got {len(secret)} bytes instead."
        )
    if not 1 <= share_count <= _MAX_SHARES:
        raise ConfigError(
            "The 'share_count' parameter of split_secret must be in [1, 2**32 - 1]; "
            f"got {share_count!r} instead."
        )
    if not 1 <= threshold <= share_count:
        raise ConfigError(
            f"The 'threshold' parameter of split_secret must be in [1, share_count={share_count}]; "
            f"got {threshold!r} instead."
        )
    # Coefficients from the highest degree down to the secret (the constant term).
    coefficients = [secrets.randbelow(FIELD_PRIME) for _ in range(threshold - 1)]
    coefficients.append(int.from_bytes(secret, "big"))
    shares = []
    for x in range(1, share_count + 1):
        y = 0
        for coefficient in coefficients:  # Horner: x is small, so y * x is cheap
            y = (y * x + coefficient) % FIELD_PRIME
        shares.append(Share(x=x, y=y))
    return shares


@functools.lru_cache(maxsize=4096)
def _lagrange_weights_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """``l_i(0) = prod_{j != i} x_j / (x_j - x_i)`` modulo the prime, for distinct ``xs``.

    Cached: the coordinator rebuilds hundreds of secrets per round from shares at the same few
    ``x`` (holders revealing in the same order), so each set of weights is computed once. The
    factors are small integers, so the products stay exact Python ints, and one modular inverse
    serves all weights (Montgomery's trick).
    """
    all_x = math.prod(xs)
    numerators = [all_x // x for x in xs]
    denominators = [math.prod(x - other for x in xs if x != other) % FIELD_PRIME for other in xs]
    # 1 / d_i = (prod_{j != i} d_j) / prod_j d_j: prefix and suffix products, one inverse.
    count = len(xs)
    prefix, suffix = [1] * (count + 1), [1] * (count + 1)
    for i, d in enumerate(denominators):
        prefix[i + 1] = prefix[i] * d % FIELD_PRIME
    for i in range(count - 1, -1, -1):
        suffix[i] = suffix[i + 1] * denominators[i] % FIELD_PRIME
    inverse = pow(prefix[count], -1, FIELD_PRIME)
    return tuple(
        numerators[i]
        % FIELD_PRIME
        * (prefix[i] * suffix[i + 1] % FIELD_PRIME)
        % FIELD_PRIME
        * inverse
        % FIELD_PRIME
        for i in range(count)
    )


def reconstruct_secret(shares: Sequence[Share], *, threshold: int) -> bytes:
    """Recover the secret from ``threshold`` shares by Lagrange interpolation at ``x = 0``.

    Parameters
    ----------
    shares
        At least ``threshold`` shares with distinct ``x``; the first ``threshold`` are used.
    threshold
        ``t`` the secret was split with.

    Returns
    -------
    bytes
        The ``SECRET_BYTES``-byte secret.

    Raises
    ------
    BelowThresholdError
        If fewer than ``threshold`` shares are given.
    SecureAggregationError
        If two shares have the same ``x``, or the shares are inconsistent (corrupted, from another
        polynomial, or ``threshold`` is lower than the one used to split): the interpolated value
        is then not a 256-bit secret, with probability ``1 - 2**-265``.
    """
    if threshold < 1:
        raise ConfigError(
            f"The 'threshold' parameter of reconstruct_secret must be >= 1; got {threshold!r}."
        )
    if len(shares) < threshold:
        raise BelowThresholdError(what="Shamir shares", available=len(shares), threshold=threshold)
    used = list(shares[:threshold])
    xs = [share.x for share in used]
    if len(set(xs)) != len(xs):
        duplicates = sorted({x for x in xs if xs.count(x) > 1})
        raise SecureAggregationError(
            f"Shamir shares must have distinct x; x = {duplicates} appear more than once. "
            "A share was duplicated or replayed; drop the duplicate and ask for another share."
        )
    secret = 0
    for share, weight in zip(used, _lagrange_weights_at_zero(tuple(xs)), strict=True):
        secret = (secret + share.y * weight) % FIELD_PRIME
    if secret >= 1 << (8 * SECRET_BYTES):
        raise SecureAggregationError(
            f"The {threshold} Shamir shares are inconsistent: they do not interpolate to a "
            f"{SECRET_BYTES}-byte secret. A share was corrupted, comes from another secret, "
            "or the threshold is lower than the one the secret was split with."
        )
    return secret.to_bytes(SECRET_BYTES, "big")
