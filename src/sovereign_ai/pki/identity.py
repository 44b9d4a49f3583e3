"""Loading startup kits and deciding whether a peer's certificate is admitted.

The TLS layer (gRPC or Python's ``ssl``) already checks that a peer's certificate chains to the
federation CA. The checks here go further, and a transport runs them on every new connection:

- the certificate claims the *right role* (a node's certificate never passes as the coordinator's);
- for a node: its name is on the roster, not revoked there, its serial number is the one enrolled
  (or one that renewal replaced and did not revoke), and the serial is not on the CRL. Revocation
  and renewal are therefore effective at the node's next connection, as soon as the coordinator
  has the new ``roster.json`` and ``crl.pem`` (:func:`refresh_trust_lists` re-reads them).

A kit's private key is usually encrypted (see :mod:`sovereign_ai.pki.passphrase`); loading
decrypts it with the passphrase from the source ``kit.json`` names, and the loaded kit hands the
TLS stack the decrypted key as unencrypted PKCS#8 PEM, in memory only.

Every refusal raises :class:`~sovereign_ai.errors.AuthenticationError` with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from sovereign_ai.errors import AuthenticationError, ProvisioningError
from sovereign_ai.pki._kit_files import (
    CA_CERTIFICATE,
    CERTIFICATE_FILES,
    CRL_FILE,
    KEY_FILES,
    MANIFEST_FILE,
    NODE_CONFIG_FILE,
    ROSTER_FILE,
    read_kit_file,
)
from sovereign_ai.pki._kit_key import open_kit_key
from sovereign_ai.pki.ca import resolve_now
from sovereign_ai.pki.certificates import (
    Role,
    certificate_identity,
    key_matches_certificate,
    private_key_to_pem,
    read_certificate,
    read_private_key,
)
from sovereign_ai.pki.passphrase import PassphrasePrompt
from sovereign_ai.pki.roster import KitManifest, NodeStatus, Roster, read_json_model

__all__ = [
    "CoordinatorKit",
    "NodeKit",
    "load_coordinator_kit",
    "load_kit",
    "load_node_kit",
    "refresh_trust_lists",
    "verify_coordinator_certificate",
    "verify_node_certificate",
]


@dataclass(frozen=True)
class _Kit:
    folder: Path
    manifest: KitManifest
    certificate: x509.Certificate
    certificate_pem: bytes
    private_key_pem: bytes
    ca: x509.Certificate
    ca_pem: bytes

    @property
    def name(self) -> str:
        """The holder's name (coordinator or node)."""
        return self.manifest.name

    @property
    def federation(self) -> str:
        """The federation's name."""
        return self.manifest.federation

    @property
    def coordinator_address(self) -> str:
        """The ``host:port`` nodes dial (for the coordinator: the address it is reached at)."""
        return self.manifest.coordinator_address

    @property
    def certificate_path(self) -> Path:
        """The holder's certificate (PEM)."""
        return self.folder / CERTIFICATE_FILES[self.manifest.role]

    @property
    def private_key_path(self) -> Path:
        """The holder's private key (PEM, mode 0600; encrypted unless the kit says otherwise)."""
        return self.folder / KEY_FILES[self.manifest.role]

    @property
    def is_key_encrypted(self) -> bool:
        """Whether the key file is encrypted at rest (``kit.json`` names a passphrase source)."""
        return self.manifest.key_passphrase is not None

    @property
    def ca_path(self) -> Path:
        """The federation CA certificate (PEM)."""
        return self.folder / CA_CERTIFICATE

    def load_cert_chain_into(self, context: ssl.SSLContext) -> None:
        """Load this kit's certificate and (decrypted) key into a Python ``ssl`` context.

        ``ssl`` reads keys from files only. The key is written to a private temporary folder
        encrypted under a one-time password held in memory, loaded, and deleted at once, so the
        key never rests unencrypted on disk and no passphrase prompt appears. The certificate and
        key are the ones loaded with the kit, even if renewal has replaced the files since.

        Raises
        ------
        ssl.SSLError
            If OpenSSL refuses the pair.
        """
        one_time = secrets.token_bytes(32)
        key = private_key_to_pem(read_private_key(self.private_key_pem), passphrase=one_time)
        with tempfile.TemporaryDirectory(prefix="sovereign-kit-") as folder:  # mode 0700
            chain = Path(folder) / "chain.pem"
            chain.write_bytes(self.certificate_pem + key)
            context.load_cert_chain(chain, password=one_time)


@dataclass(frozen=True)
class CoordinatorKit(_Kit):
    """The coordinator's startup kit, loaded and checked.

    Attributes
    ----------
    folder, manifest
        Where the kit is and its ``kit.json``.
    certificate, certificate_pem, private_key_pem
        The coordinator's certificate (parsed and PEM) and private key (unencrypted PEM, decrypted
        in memory), for the TLS server.
    ca, ca_pem
        The federation CA certificate, to require and check node certificates.
    roster, crl
        Who is admitted, and which serial numbers are revoked.
    """

    roster: Roster
    crl: x509.CertificateRevocationList

    def verify_node(
        self, certificate: bytes | x509.Certificate, *, now: dt.datetime | None = None
    ) -> str:
        """Check a connecting node's certificate; see :func:`verify_node_certificate`."""
        return verify_node_certificate(
            certificate, ca=self.ca, roster=self.roster, crl=self.crl, now=now
        )


@dataclass(frozen=True)
class NodeKit(_Kit):
    """A node's startup kit, loaded and checked.

    Attributes
    ----------
    folder, manifest
        Where the kit is and its ``kit.json`` (federation, node name, coordinator address).
    certificate, certificate_pem, private_key_pem
        The node's certificate (parsed and PEM) and private key (unencrypted PEM, decrypted in
        memory), for the TLS client.
    ca, ca_pem
        The federation CA certificate, to check the coordinator.
    """

    @property
    def node_config_path(self) -> Path:
        """The node configuration template (``node.toml``) shipped with the kit."""
        return self.folder / NODE_CONFIG_FILE

    def verify_coordinator(
        self, certificate: bytes | x509.Certificate, *, now: dt.datetime | None = None
    ) -> str:
        """Check the coordinator's certificate; see :func:`verify_coordinator_certificate`."""
        return verify_coordinator_certificate(certificate, ca=self.ca, now=now)


def load_coordinator_kit(
    folder: Path, *, passphrase: bytes | None = None, prompt: PassphrasePrompt | None = None
) -> CoordinatorKit:
    """Load and check the coordinator kit in ``folder``.

    Parameters
    ----------
    folder
        The kit folder.
    passphrase
        The key's passphrase; by default it is read from the source ``kit.json`` names.
    prompt
        Asks a person for the passphrase when the kit's source is a prompt, or an environment
        variable that is not set. Without it, such a kit fails to load with an error that says
        how to supply the passphrase.

    Raises
    ------
    ProvisioningError
        If a file is missing or corrupt (naming it), the key is readable by others (giving the
        ``chmod 600``), its passphrase cannot be had or does not decrypt it, the key does not
        match the certificate, the certificate is not from the kit's CA, or the folder is a
        node's kit.
    """
    kit = _load(Path(folder), role=Role.COORDINATOR, passphrase=passphrase, prompt=prompt)
    roster, crl = _read_trust_lists(kit.folder)
    return CoordinatorKit(**vars(kit), roster=roster, crl=crl)


def refresh_trust_lists(kit: CoordinatorKit) -> CoordinatorKit:
    """Return ``kit`` with the roster and revocation list re-read from its folder.

    The coordinator's certificate and key stay those already loaded (a running TLS server keeps
    serving them until it restarts), so no passphrase is needed again.

    Raises
    ------
    ProvisioningError
        If ``roster.json`` or ``crl.pem`` is missing or corrupt.
    """
    roster, crl = _read_trust_lists(kit.folder)
    return dataclasses.replace(kit, roster=roster, crl=crl)


def load_node_kit(
    folder: Path, *, passphrase: bytes | None = None, prompt: PassphrasePrompt | None = None
) -> NodeKit:
    """Load and check the node kit in ``folder``.

    Parameters and errors are those of :func:`load_coordinator_kit`.
    """
    return NodeKit(
        **vars(_load(Path(folder), role=Role.NODE, passphrase=passphrase, prompt=prompt))
    )


def load_kit(
    folder: Path, *, passphrase: bytes | None = None, prompt: PassphrasePrompt | None = None
) -> CoordinatorKit | NodeKit:
    """Load the kit in ``folder``, whichever role its ``kit.json`` names.

    Parameters and errors are those of :func:`load_coordinator_kit`.
    """
    manifest = _read_manifest(Path(folder))
    if manifest.role is Role.COORDINATOR:
        return load_coordinator_kit(folder, passphrase=passphrase, prompt=prompt)
    return load_node_kit(folder, passphrase=passphrase, prompt=prompt)


def _read_trust_lists(folder: Path) -> tuple[Roster, x509.CertificateRevocationList]:
    roster_path, crl_path = folder / ROSTER_FILE, folder / CRL_FILE
    roster = read_json_model(Roster, read_kit_file(roster_path), source=str(roster_path))
    try:
        crl = x509.load_pem_x509_crl(read_kit_file(crl_path))
    except ValueError as exc:
        raise ProvisioningError(f"{crl_path} is not a PEM revocation list: {exc}") from exc
    return roster, crl


def _read_manifest(folder: Path) -> KitManifest:
    path = folder / MANIFEST_FILE
    return read_json_model(KitManifest, read_kit_file(path), source=str(path))


def _load(
    folder: Path, *, role: Role, passphrase: bytes | None, prompt: PassphrasePrompt | None
) -> _Kit:
    manifest = _read_manifest(folder)
    if manifest.role is not role:
        raise ProvisioningError(
            f"{folder} is the {manifest.role.value} kit of {manifest.name!r}, "
            f"not a {role.value} kit."
        )
    ca_path, certificate_path = folder / CA_CERTIFICATE, folder / CERTIFICATE_FILES[role]
    key_path = folder / KEY_FILES[role]
    ca_pem, certificate_pem = read_kit_file(ca_path), read_kit_file(certificate_path)
    stored_key_pem = read_kit_file(key_path, is_private=True)
    ca, certificate = (
        _parse_kit_certificate(ca_path, ca_pem),
        _parse_kit_certificate(certificate_path, certificate_pem),
    )
    key = open_kit_key(
        key_path,
        stored_key_pem,
        source=manifest.key_passphrase,
        holder=manifest.name,
        passphrase=passphrase,
        prompt=prompt,
    )
    if not key_matches_certificate(key, certificate):
        raise ProvisioningError(f"{key_path} is not the key of {certificate_path}.")
    try:
        _check_signed_by(certificate, ca)
        identity = certificate_identity(certificate)
    except (AuthenticationError, ValueError) as exc:
        raise ProvisioningError(f"{certificate_path} does not fit this kit: {exc}") from exc
    if (identity.role, identity.name) != (role, manifest.name):
        raise ProvisioningError(
            f"{certificate_path} is for {identity.role.value} {identity.name!r} but "
            f"{MANIFEST_FILE} names {role.value} {manifest.name!r}."
        )
    return _Kit(
        folder=folder,
        manifest=manifest,
        certificate=certificate,
        certificate_pem=certificate_pem,
        private_key_pem=private_key_to_pem(key) if manifest.key_passphrase else stored_key_pem,
        ca=ca,
        ca_pem=ca_pem,
    )


def _parse_kit_certificate(path: Path, data: bytes) -> x509.Certificate:
    try:
        return read_certificate(data)
    except ValueError as exc:
        raise ProvisioningError(f"{path} is not a PEM certificate: {exc}") from exc


def verify_node_certificate(
    certificate: bytes | x509.Certificate,
    *,
    ca: x509.Certificate,
    roster: Roster,
    crl: x509.CertificateRevocationList,
    now: dt.datetime | None = None,
) -> str:
    """Decide whether a connecting node is admitted, and return its name.

    Parameters
    ----------
    certificate
        The peer's certificate, PEM or DER (as gRPC's auth context or ``ssl`` hand it over).
    ca
        The federation CA certificate.
    roster
        The current roster; only active nodes are admitted, with the enrolled serial number or
        one that renewal replaced without revoking it.
    crl
        The current revocation list, signed by ``ca``.
    now
        The time to check validity at; defaults to the current time.

    Returns
    -------
    str
        The node's name.

    Raises
    ------
    AuthenticationError
        If the certificate is unreadable, not signed by ``ca``, outside its validity, not a node
        certificate, revoked (CRL or roster), not enrolled, or superseded; or if ``crl`` itself is
        not signed by ``ca`` or out of date (fail closed).
    """
    at = resolve_now(now)
    peer, name = _check_chain(certificate, ca=ca, role=Role.NODE, at=at)
    _check_not_revoked(peer, ca=ca, crl=crl, at=at)
    entry = roster.node(name)
    if entry is None:
        raise AuthenticationError(f"Node {name!r} is not on the roster of {roster.federation!r}.")
    if entry.status is NodeStatus.REVOKED:
        raise AuthenticationError(
            f"Node {name!r} was revoked on {entry.revoked_at:%Y-%m-%d}: {entry.revocation_reason}."
        )
    if entry.serial_number != peer.serial_number:
        replaced = entry.replaced_certificate(peer.serial_number)
        if replaced is None:
            raise AuthenticationError(
                f"Node {name!r} presented certificate {peer.serial_number:x}, but the roster "
                f"enrols {entry.serial_number:x}; the presented certificate was superseded."
            )
        if replaced.revoked_at is not None:
            raise AuthenticationError(
                f"Node {name!r} presented certificate {peer.serial_number:x}, which was revoked "
                f"on {replaced.revoked_at:%Y-%m-%d} when it was renewed; install the node's "
                "renewed kit."
            )
    return name


def verify_coordinator_certificate(
    certificate: bytes | x509.Certificate,
    *,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Decide whether a server a node dialled is its federation's coordinator; return its name.

    Host names are checked by TLS against the certificate's subject alternative names; this checks
    what TLS cannot: that the certificate is the *coordinator's*, not another node's.

    Parameters
    ----------
    certificate
        The server's certificate, PEM or DER.
    ca
        The federation CA certificate from the node's kit.
    crl
        A revocation list signed by ``ca``, if the node has one.
    now
        The time to check validity at; defaults to the current time.

    Raises
    ------
    AuthenticationError
        If the certificate is unreadable, not signed by ``ca``, outside its validity, not a
        coordinator certificate, or on ``crl``.
    """
    at = resolve_now(now)
    peer, name = _check_chain(certificate, ca=ca, role=Role.COORDINATOR, at=at)
    if crl is not None:
        _check_not_revoked(peer, ca=ca, crl=crl, at=at)
    return name


def _check_signed_by(certificate: x509.Certificate, ca: x509.Certificate) -> None:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AuthenticationError(
            f"Certificate {certificate.subject.rfc4514_string()!r} was not issued by the "
            f"federation CA {ca.subject.rfc4514_string()!r}."
        ) from exc


def _check_window(certificate: x509.Certificate, *, label: str, at: dt.datetime) -> None:
    if at < certificate.not_valid_before_utc:
        raise AuthenticationError(
            f"The {label} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC; check the clocks."
        )
    if at > certificate.not_valid_after_utc:
        raise AuthenticationError(
            f"The {label} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC."
        )


def _check_chain(
    certificate: bytes | x509.Certificate, *, ca: x509.Certificate, role: Role, at: dt.datetime
) -> tuple[x509.Certificate, str]:
    """Return the parsed certificate and its holder's name once chain, role and dates check out."""
    try:
        peer = read_certificate(certificate)
    except ValueError as exc:
        raise AuthenticationError(f"The peer's certificate cannot be read: {exc}") from exc
    _check_window(ca, label="federation CA certificate", at=at)
    _check_signed_by(peer, ca)
    try:
        identity = certificate_identity(peer)
    except ValueError as exc:
        raise AuthenticationError(f"The peer's certificate has no valid role: {exc}.") from exc
    if identity.role is not role:
        raise AuthenticationError(
            f"A {role.value} certificate is required, but the peer presented the "
            f"{identity.role.value} certificate of {identity.name!r}."
        )
    _check_window(peer, label=f"{role.value} certificate of {identity.name!r}", at=at)
    return peer, identity.name


def _check_not_revoked(
    peer: x509.Certificate,
    *,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList,
    at: dt.datetime,
) -> None:
    ca_key = ca.public_key()
    if (
        crl.issuer != ca.subject
        or not isinstance(ca_key, ec.EllipticCurvePublicKey)
        or not crl.is_signature_valid(ca_key)
    ):
        raise AuthenticationError(
            "The revocation list is not signed by the federation CA; refusing every peer until "
            "a valid crl.pem is installed."
        )
    if crl.next_update_utc is not None and at > crl.next_update_utc:
        raise AuthenticationError(
            f"The revocation list expired on {crl.next_update_utc:%Y-%m-%d}; refusing every "
            "peer until a current crl.pem is installed."
        )
    revoked = crl.get_revoked_certificate_by_serial_number(peer.serial_number)
    if revoked is not None:
        raise AuthenticationError(
            f"Certificate {peer.serial_number:x} of {peer.subject.rfc4514_string()!r} was revoked "
            f"on {revoked.revocation_date_utc:%Y-%m-%d}."
        )
