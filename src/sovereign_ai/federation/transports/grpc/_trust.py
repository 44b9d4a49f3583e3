"""Who is calling: the coordinator admits a node from its client certificate, on every call.

gRPC's TLS layer has already checked that the client certificate chains to the federation CA, is
within its validity and allows ``clientAuth``. :class:`PeerAuthenticator` then runs pki's
:func:`~sovereign_ai.pki.verify_node_certificate` on the certificate of *each call* against the
current roster and revocation list, so a revoked node is locked out at its next call, not its next
reconnection.

The roster and CRL are re-read when any file of the coordinator's kit folder changes (``pki``
rewrites them atomically on ``add-node``, ``renew`` and ``revoke``); a folder that no longer loads
refuses every node until it is fixed (fail closed), rather than trusting a stale list. Only those
two files are re-read: the key was decrypted once at start (renewal may re-key the folder under a
running coordinator, and a passphrase prompt cannot be answered again).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sovereign_ai.errors import AuthenticationError, ProvisioningError
from sovereign_ai.federation.transports.grpc._service import NODE_ID_METADATA
from sovereign_ai.pki import CoordinatorKit, NodeStatus, refresh_trust_lists

__all__ = ["Caller", "PeerAuthenticator", "UnauthenticatedError"]

logger = logging.getLogger(__name__)

_Fingerprint = tuple[tuple[str, int, int, int], ...] | str


class UnauthenticatedError(AuthenticationError):
    """The call carries no identity at all (as opposed to an identity that was refused)."""


@dataclass(frozen=True)
class Caller:
    """An admitted caller: a node by name, or the coordinator's own certificate."""

    name: str
    is_coordinator: bool = False


def _fingerprint(folder: Path) -> _Fingerprint:
    """Name, mtime, size and inode of every file in the kit folder; a string if unreadable."""
    try:
        with os.scandir(folder) as entries:
            stats = [(entry.name, entry.stat()) for entry in entries if entry.is_file()]
    except OSError as exc:
        return f"unreadable: {exc}"
    return tuple(sorted((name, s.st_mtime_ns, s.st_size, s.st_ino) for name, s in stats))


class PeerAuthenticator:
    """Admits callers of the coordinator's service.

    Parameters
    ----------
    kit
        The coordinator's kit: CA, roster, CRL and its own certificate.
    allow_insecure
        Plaintext test mode: the node names itself in the ``sovereign-node-id`` metadata and is
        admitted if the roster lists it as active. Never use outside tests.
    watch_kit_folder
        Re-read the roster and CRL whenever a file of ``kit.folder`` changes.
    """

    def __init__(
        self, kit: CoordinatorKit, *, allow_insecure: bool, watch_kit_folder: bool = True
    ) -> None:
        self._allow_insecure = allow_insecure
        self._watch = watch_kit_folder
        self._lock = threading.Lock()
        self._kit = kit
        self._own_der = kit.certificate.public_bytes(Encoding.DER)
        self._problem: str | None = None
        self._fingerprint = _fingerprint(kit.folder) if watch_kit_folder else ""
        self._certificates: dict[str, bytes] = {}

    @property
    def kit(self) -> CoordinatorKit:
        """The kit currently used to admit nodes."""
        with self._lock:
            return self._kit

    def reload(self, kit: CoordinatorKit | None = None) -> None:
        """Use ``kit``'s roster and CRL from now on (or re-read ``kit.folder``).

        Raises
        ------
        ProvisioningError
            If the folder cannot be loaded; every node is refused until a reload succeeds.
        """
        with self._lock:
            if kit is None:
                self._fingerprint = _fingerprint(self._kit.folder)
                self._load_locked()
                if self._problem is not None:
                    raise ProvisioningError(self._problem)
            else:
                self._kit, self._problem = kit, None

    def _load_locked(self) -> None:
        try:
            kit = refresh_trust_lists(self._kit)
        except ProvisioningError as exc:
            self._problem = str(exc)
            logger.error("Refusing every node until the coordinator kit loads again: %s", str(exc))
            return
        if kit.roster.coordinator.serial_number != kit.certificate.serial_number:
            logger.warning(
                "The coordinator certificate in %s was renewed; restart to serve the new one.",
                kit.folder,
            )
        self._kit, self._problem = kit, None
        logger.info("Reloaded the roster and revocation list from %s", kit.folder)

    def _current(self) -> CoordinatorKit:
        with self._lock:
            if self._watch:
                fingerprint = _fingerprint(self._kit.folder)
                if fingerprint != self._fingerprint:
                    self._fingerprint = fingerprint
                    self._load_locked()
            if self._problem is not None:
                raise AuthenticationError(
                    f"The coordinator cannot read its roster or revocation list "
                    f"({self._problem}); every node is refused until that is fixed."
                )
            return self._kit

    def active_nodes(self) -> frozenset[str]:
        """Nodes the current roster lists as active (none while the kit folder is unreadable)."""
        try:
            kit = self._current()
        except AuthenticationError:
            return frozenset()
        return frozenset(n.name for n in kit.roster.nodes if n.status is NodeStatus.ACTIVE)

    def identify(
        self, context: Any, *, claimed: str = "", allow_coordinator: bool = False
    ) -> Caller:
        """Return the admitted caller of ``context``.

        Parameters
        ----------
        context
            The gRPC servicer context of the call.
        claimed
            The node id the request names, if any; must agree with the certificate.
        allow_coordinator
            Also admit the coordinator's own certificate (status queries by its operator).

        Raises
        ------
        UnauthenticatedError
            If the call carries no client certificate (or, in plaintext mode, no node id).
        AuthenticationError
            If pki refuses the certificate, or the claimed name disagrees with it.
        """
        kit = self._current()
        if self._allow_insecure:
            return Caller(self._insecure_name(context, kit))
        properties = context.auth_context() or {}
        pems = properties.get("x509_pem_cert") or []
        if not pems:
            raise UnauthenticatedError(
                "The call carries no client certificate; mutual TLS is required."
            )
        pem = pems[0]
        if allow_coordinator and self._is_own_certificate(pem):
            return Caller(kit.name, is_coordinator=True)
        name = kit.verify_node(pem)
        if claimed and claimed != name:
            raise AuthenticationError(
                f"The request names node {claimed[:80]!r} but its certificate is {name!r}."
            )
        with self._lock:
            self._certificates[name] = pem
        return Caller(name)

    def node_certificates(self) -> dict[str, bytes]:
        """The last certificate (PEM) each node was admitted with; none in plaintext mode."""
        with self._lock:
            return dict(self._certificates)

    def _is_own_certificate(self, pem: bytes) -> bool:
        try:
            return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) == self._own_der
        except ValueError:
            return False

    def _insecure_name(self, context: Any, kit: CoordinatorKit) -> str:
        metadata = dict(context.invocation_metadata() or ())
        name = metadata.get(NODE_ID_METADATA, "")
        if not isinstance(name, str) or not name:
            raise UnauthenticatedError(
                f"Plaintext mode: the call names no node in its {NODE_ID_METADATA!r} metadata."
            )
        entry = kit.roster.node(name)
        if entry is None or entry.status is not NodeStatus.ACTIVE:
            raise AuthenticationError(f"Node {name[:80]!r} is not an active node of the roster.")
        return name
