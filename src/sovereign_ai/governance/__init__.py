"""Sovereignty governance: what a node lets leave, and a tamper-evident record of what did.

Pure parts (a node's policy and its rules, Merkle trees of RFC 9162) and thin state (the audit
log in SQLite); the federation layer composes them with the node's egress pipeline.
"""

from sovereign_ai.governance.audit_log import (
    AuditEntry,
    AuditLog,
    AuditSigner,
    Checkpoint,
    VerifyReport,
    check_proof,
    prove,
    read_entries,
    verify_log,
)
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
    "AuditEntry",
    "AuditLog",
    "AuditSigner",
    "Checkpoint",
    "CoordinatorIdentity",
    "JobTerms",
    "MerkleFrontier",
    "NodePolicy",
    "Output",
    "OutputsPolicy",
    "RefusalCode",
    "TaskRequest",
    "VerifyReport",
    "check_coordinator",
    "check_job",
    "check_proof",
    "check_task",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "normalise_fingerprint",
    "prove",
    "read_entries",
    "release",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
