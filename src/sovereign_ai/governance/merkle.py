"""Merkle trees of RFC 9162 (Certificate Transparency 2.0, section 2.1): heads and proofs.

Pure functions over leaf hashes, plus :class:`MerkleFrontier`, the O(log n) state an append-only
log keeps to know its head after every append. Domain separation as the RFC: a leaf hashes
``0x00 || data``, an interior node ``0x01 || left || right``, with SHA-256; the head of the empty
tree is ``SHA-256("")``.

Written here rather than taken from pymerkle: the log appends once per message a node sends and
must be cheap there, and an auditor verifies a whole log, so both loops are the product itself;
``bench/audit.py`` measures both against pymerkle in the same run. The test vectors are the
RFC's reference ones (Certificate Transparency's tree heads for sizes 0 to 8), and the proofs are
checked against the RFC's recursive definitions on every shape of tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "MerkleFrontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The head of the empty tree."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The tree head ``MTH`` of the leaf hashes ``leaves``."""
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class MerkleFrontier:
    """The heads of the perfect subtrees an append-only tree of ``size`` leaves splits into.

    Appending costs one leaf push and, amortised, one node hash; the head folds at most
    ``log2(size)`` of them. This is all a log keeps in memory, whatever its length.

    Parameters
    ----------
    size
        The number of leaves the heads stand for (0 for a new tree).
    heads
        The subtree heads, largest (leftmost) first; their sizes are the binary digits of
        ``size``.
    """

    def __init__(self, size: int = 0, heads: Sequence[bytes] = ()) -> None:
        if size < 0 or len(heads) != bin(size).count("1"):
            raise ValueError(f"{len(heads)} subtree heads cannot stand for {size} leaves.")
        self.size = size
        self.heads = list(heads)

    def append(self, leaf: bytes) -> None:
        """Add the leaf hash ``leaf`` at index ``size``."""
        self.heads.append(leaf)
        self.size += 1
        merges = (self.size & -self.size).bit_length() - 1  # trailing zeros: equal-size pairs
        for _ in range(merges):
            right = self.heads.pop()
            self.heads[-1] = node_hash(self.heads[-1], right)

    def root(self) -> bytes:
        """The tree head of the leaves appended so far."""
        if not self.heads:
            return EMPTY_ROOT
        root = self.heads[-1]
        for head in reversed(self.heads[:-1]):
            root = node_hash(head, root)
        return root


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162, 2.1.3.1).

    Raises
    ------
    ValueError
        If ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"Leaf {index} is not in a tree of {len(leaves)} leaves.")
    path: list[bytes] = []
    low, high = 0, len(leaves)
    while high - low > 1:
        k = _split(high - low)
        if index - low < k:
            path.append(root_of(leaves[low + k : high]))
            high = low + k
        else:
            path.append(root_of(leaves[low : low + k]))
            low += k
    path.reverse()  # the recursion emits from the top; the path runs from the leaf up
    return path


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of ``leaves[:old_size]`` is a prefix of ``leaves``
    (RFC 9162, 2.1.4.1).

    Raises
    ------
    ValueError
        Unless ``0 < old_size <= len(leaves)``.
    """
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"No consistency proof from size {old_size} to {len(leaves)}.")
    proof: list[bytes] = []
    low, high, m, whole = 0, len(leaves), old_size, True
    while m != high - low:
        k = _split(high - low)
        if m <= k:
            proof.append(root_of(leaves[low + k : high]))
            high = low + k
        else:
            proof.append(root_of(leaves[low : low + k]))
            low, m, whole = low + k, m - k, False
    if not whole:
        proof.append(root_of(leaves[low:high]))
    proof.reverse()
    return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` of the tree of head ``root``
    (RFC 9162, 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree of head ``old_root`` is a prefix of the one of head
    ``new_root`` (RFC 9162, 2.1.4.2; equal sizes need an empty proof and equal heads)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old head is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0
