"""Sovereignty governance: what a node lets leave, and a tamper-evident record of what did.

Pure parts (Merkle trees of RFC 9162) and thin state (the audit log in SQLite); the federation
layer composes them with the node's egress pipeline.
"""

from sovereign_ai.governance.merkle import (
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "MerkleFrontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]
