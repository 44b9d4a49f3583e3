"""The model registry: every version of a federation's models, with its signed passport.

A registry is a folder: one SQLite file of versions and aliases, and each version's files (the
model as safetensors, its passport as canonical JSON, the coordinator's signature). A version is
named ``name``, ``name@alias`` or ``name:version`` (:class:`ModelReference`);
:func:`verify_version` checks its files against the passport, the signature and the registry's
record, and :func:`model_card` writes its Markdown model card (docs/registry.md).

This package imports only ``sovereign_ai.core`` and ``sovereign_ai.errors``: the federation
builds the :class:`Lineage` and registers the final model of every job
(``sovereign_ai.federation.registration``).
"""

from sovereign_ai.registry.card import model_card
from sovereign_ai.registry.passport import (
    CoordinatorRecord,
    DataSchema,
    InputScaling,
    Lineage,
    NodeRecord,
    Passport,
    PrivacyRecord,
    RoundRecord,
    SecureAggregationRecord,
    SoftwareVersions,
    software_versions,
)
from sovereign_ai.registry.reference import ModelReference
from sovereign_ai.registry.store import ModelRegistry, RegisteredVersion
from sovereign_ai.registry.verification import Check, VerificationReport, verify_version

__all__ = [
    "Check",
    "CoordinatorRecord",
    "DataSchema",
    "InputScaling",
    "Lineage",
    "ModelReference",
    "ModelRegistry",
    "NodeRecord",
    "Passport",
    "PrivacyRecord",
    "RegisteredVersion",
    "RoundRecord",
    "SecureAggregationRecord",
    "SoftwareVersions",
    "VerificationReport",
    "model_card",
    "software_versions",
    "verify_version",
]
