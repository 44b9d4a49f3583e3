"""RFC 9162 Merkle trees: reference tree heads, and proofs against the RFC's own definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovereign_ai.governance.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference leaves and the tree heads of their first n, n = 0..8.
DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
HEADS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(bytes.fromhex(d)) for d in DATA]


# The RFC's recursive definitions, written as literally as possible, as the reference.
def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], whole), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def test_tree_heads_match_the_reference_for_sizes_0_to_8() -> None:
    assert EMPTY_ROOT.hex() == HEADS[0]
    frontier = MerkleFrontier()
    for size in range(9):
        assert root_of(LEAVES[:size]).hex() == HEADS[size]
        assert frontier.root().hex() == HEADS[size]
        if size < 8:
            frontier.append(LEAVES[size])


leaf_lists = st.lists(st.binary(min_size=0, max_size=8).map(leaf_hash), min_size=1, max_size=70)


@given(leaves=leaf_lists)
def test_the_frontier_head_is_the_rfc_head_after_every_append(leaves: list[bytes]) -> None:
    frontier = MerkleFrontier()
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == mth(leaves[:n])
        restored = MerkleFrontier(frontier.size, frontier.heads)  # what a log stores
        assert restored.root() == frontier.root()


@given(leaves=leaf_lists, data=st.data())
def test_inclusion_proofs_are_the_rfc_paths_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(index, leaves)
    assert proof == path(index, leaves)
    root = mth(leaves)
    assert verify_inclusion(index, len(leaves), leaves[index], proof, root)
    other = leaf_hash(b"not in the log")
    assert not verify_inclusion(index, len(leaves), other, proof, root)
    # (the size itself is bound by the signed checkpoint that states it with the head)
    assert not verify_inclusion(len(leaves), len(leaves), leaves[index], proof, root)
    if proof:
        assert not verify_inclusion(index, len(leaves), leaves[index], proof[:-1], root)
        assert not verify_inclusion(index, len(leaves), leaves[index], [*proof, root], root)
    if len(leaves) > 1:
        wrong = (index + 1) % len(leaves)
        if leaves[wrong] != leaves[index]:
            assert not verify_inclusion(wrong, len(leaves), leaves[index], proof, root)


@given(leaves=leaf_lists, data=st.data())
def test_consistency_proofs_are_the_rfc_proofs_and_verify(
    leaves: list[bytes], data: st.DataObject
) -> None:
    old = data.draw(st.integers(1, len(leaves)))
    proof = consistency_proof(old, leaves)
    assert proof == subproof(old, leaves, True)
    old_root, new_root = mth(leaves[:old]), mth(leaves)
    assert verify_consistency(old, len(leaves), old_root, new_root, proof)
    forged = leaf_hash(b"rewritten history")
    if old < len(leaves):
        assert not verify_consistency(old, len(leaves), forged, new_root, proof)
        assert not verify_consistency(old, len(leaves), old_root, forged, proof)
        assert not verify_consistency(old, len(leaves), old_root, new_root, proof[1:])
    assert not verify_consistency(old + 1, len(leaves), old_root, new_root, proof) or (
        old + 1 == len(leaves) and not proof
    )


def test_a_rewritten_entry_changes_every_later_head() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(20)]
    tampered = [*leaves[:7], leaf_hash(b"edited"), *leaves[8:]]
    assert [root_of(leaves[:n]) == root_of(tampered[:n]) for n in range(1, 21)] == [
        n < 8 for n in range(1, 21)
    ]
    # and no consistency proof links the honest head of 10 to the rewritten one of 20
    proof = consistency_proof(10, tampered)
    assert not verify_consistency(10, 20, root_of(leaves[:10]), root_of(tampered), proof)


@pytest.mark.parametrize(("size", "count"), [(-1, 0), (3, 1), (4, 2)])
def test_a_frontier_refuses_heads_that_cannot_stand_for_its_size(size: int, count: int) -> None:
    with pytest.raises(ValueError, match="cannot stand for"):
        MerkleFrontier(size, [EMPTY_ROOT] * count)


@given(data=st.lists(st.binary(max_size=40), min_size=1, max_size=60))
def test_heads_agree_with_pymerkle_an_independent_implementation(data: list[bytes]) -> None:
    from pymerkle import InmemoryTree

    theirs = InmemoryTree(algorithm="sha256")
    ours = MerkleFrontier()
    for item in data:
        theirs.append_entry(item)
        ours.append(leaf_hash(item))
        assert ours.root() == theirs.get_root()
