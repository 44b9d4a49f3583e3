"""Provisioning a federation: its certificate authority, certificates and startup kits.

``provision`` creates the CA, the coordinator's kit and one kit per node from a
:class:`FederationSpec`; ``add_node`` enrols a node later without re-issuing anyone else;
``revoke_node`` locks a node out at its next connection. Transports load kits with
``load_coordinator_kit`` / ``load_node_kit`` and admit peers with ``verify_node_certificate`` /
``verify_coordinator_certificate``. Depends on ``cryptography``, pydantic and the standard library.
"""

from sovereign_ai.pki.ca import CertificateAuthority, IssuedCertificate, RevokedSerial
from sovereign_ai.pki.certificates import CertificateIdentity, Role, certificate_identity
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
    verify_coordinator_certificate,
    verify_node_certificate,
)
from sovereign_ai.pki.kits import IssuedKit, ProvisionReport, add_node, provision
from sovereign_ai.pki.revocation import revoke_node
from sovereign_ai.pki.roster import KitManifest, NodeStatus, Roster, RosterEntry

__all__ = [
    "CertificateAuthority",
    "CertificateIdentity",
    "CoordinatorKit",
    "CoordinatorSection",
    "FederationSection",
    "FederationSpec",
    "IssuedCertificate",
    "IssuedKit",
    "KitManifest",
    "NodeEntry",
    "NodeKit",
    "NodeStatus",
    "ProvisionReport",
    "RevokedSerial",
    "Role",
    "Roster",
    "RosterEntry",
    "add_node",
    "certificate_identity",
    "expiry_warnings",
    "load_coordinator_kit",
    "load_kit",
    "load_node_kit",
    "parse_federation_spec",
    "provision",
    "revoke_node",
    "verify_coordinator_certificate",
    "verify_node_certificate",
]
