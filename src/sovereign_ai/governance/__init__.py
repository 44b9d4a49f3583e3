"""Sovereignty governance: what a node lets leave, and a tamper-evident record of what did.

Pure parts (a node's policy and its rules, Merkle trees of RFC 9162) and thin state (the audit
log in SQLite); the federation layer composes them with the node's egress pipeline.
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
from sovereign_ai.governance.policy import NodePolicy, OutputsPolicy, normalise_fingerprint
from sovereign_ai.governance.policy_rules import (
    CoordinatorIdentity,
    JobTerms,
    Output,
    RefusalCode,
    TaskRequest,
    check_coordinator,
    check_job,
    check_task,
    release,
)

__all__ = [
    "CoordinatorIdentity",
    "JobTerms",
    "MerkleFrontier",
    "NodePolicy",
    "Output",
    "OutputsPolicy",
    "RefusalCode",
    "TaskRequest",
    "check_coordinator",
    "check_job",
    "check_task",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "normalise_fingerprint",
    "release",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]
