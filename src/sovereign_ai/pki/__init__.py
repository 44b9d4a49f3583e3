"""Provisioning a federation: its certificate authority, certificates and startup kits.

``provision`` creates the CA, the coordinator's kit and one kit per node from a
:class:`FederationSpec`; ``add_node`` enrols a node later without re-issuing anyone else;
``renew_certificate`` gives one party a fresh certificate (and key) under the same CA;
``revoke_node`` locks a node out at its next connection; ``list_enrolment`` says who is enrolled
and in what state. Private keys are encrypted at rest with a :class:`KeyEncryption`; each kit
records the :class:`PassphraseSource` its party reads the passphrase from. Transports load kits
with ``load_coordinator_kit`` / ``load_node_kit`` and admit peers with
``verify_node_certificate`` / ``verify_coordinator_certificate``. Depends on ``cryptography``,
pydantic and the standard library.
"""

from sovereign_ai.pki.ca import CertificateAuthority, IssuedCertificate, RevokedSerial
from sovereign_ai.pki.certificates import (
    CertificateIdentity,
    Role,
    certificate_fingerprint,
    certificate_identity,
    certificate_jurisdiction,
)
from sovereign_ai.pki.enrolment import (
    Enrolment,
    EnrolmentState,
    kit_enrolment,
    list_enrolment,
    read_roster,
)
from sovereign_ai.pki.expiry import expiry_warnings
from sovereign_ai.pki.federation_file import (
    CoordinatorSection,
    FederationSection,
    FederationSpec,
    NodeEntry,
    parse_federation_spec,
)
from sovereign_ai.pki.identity import (
    CoordinatorKit,
    NodeKit,
    load_coordinator_kit,
    load_kit,
    load_node_kit,
    refresh_trust_lists,
    verify_coordinator_certificate,
    verify_node_certificate,
)
from sovereign_ai.pki.kits import IssuedKit, ProvisionReport, add_node, provision
from sovereign_ai.pki.passphrase import (
    KeyEncryption,
    PassphraseKind,
    PassphrasePrompt,
    PassphraseSource,
    read_passphrase,
)
from sovereign_ai.pki.renewal import (
    RenewalReport,
    recorded_passphrase_source,
    renew_certificate,
)
from sovereign_ai.pki.revocation import revoke_node
from sovereign_ai.pki.roster import (
    KitManifest,
    NodeStatus,
    ReplacedCertificate,
    Roster,
    RosterEntry,
)
from sovereign_ai.pki.signing import (
    FederationIdentities,
    IdentitySigner,
    NodeSignatureVerifier,
    certificate_holder,
    ephemeral_federation,
)

__all__ = [
    "CertificateAuthority",
    "CertificateIdentity",
    "CoordinatorKit",
    "CoordinatorSection",
    "Enrolment",
    "EnrolmentState",
    "FederationIdentities",
    "FederationSection",
    "FederationSpec",
    "IdentitySigner",
    "IssuedCertificate",
    "IssuedKit",
    "KeyEncryption",
    "KitManifest",
    "NodeEntry",
    "NodeKit",
    "NodeSignatureVerifier",
    "NodeStatus",
    "PassphraseKind",
    "PassphrasePrompt",
    "PassphraseSource",
    "ProvisionReport",
    "RenewalReport",
    "ReplacedCertificate",
    "RevokedSerial",
    "Role",
    "Roster",
    "RosterEntry",
    "add_node",
    "certificate_fingerprint",
    "certificate_holder",
    "certificate_identity",
    "certificate_jurisdiction",
    "ephemeral_federation",
    "expiry_warnings",
    "kit_enrolment",
    "list_enrolment",
    "load_coordinator_kit",
    "load_kit",
    "load_node_kit",
    "parse_federation_spec",
    "provision",
    "read_passphrase",
    "read_roster",
    "recorded_passphrase_source",
    "refresh_trust_lists",
    "renew_certificate",
    "revoke_node",
    "verify_coordinator_certificate",
    "verify_node_certificate",
]
