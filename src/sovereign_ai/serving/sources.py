"""Where served models come from, and the checks every one passes before it is loaded.

Every model is served from a bundle folder checked by :func:`verify_bundle`: its signature, every
file's digest, and, given the federation CA, that the CA issued the signer's certificate. A model
source is anything that names such a folder; :func:`bundle_folder` is the one place a source is
resolved (a folder today; a registry ``name@alias`` is resolved there too once the registry
lands), so nothing reaches ONNX Runtime without passing :func:`verify_bundle`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sovereign_ai.edge.bundle import Bundle, load_bundle
from sovereign_ai.errors import AuthenticationError, ConfigError, SignatureError

__all__ = ["bundle_folder", "verify_bundle"]


def bundle_folder(source: str | Path) -> Path:
    """The bundle folder a model source names.

    Parameters
    ----------
    source
        A bundle folder.

    Raises
    ------
    ConfigError
        If ``source`` is not a folder.
    """
    # A registry reference (``name@alias``) resolves to the folder of its bundle here.
    folder = Path(source)
    if not folder.is_dir():
        raise ConfigError(f"No bundle folder at {folder}; pass the folder of an edge bundle.")
    return folder


def verify_bundle(folder: str | Path, *, ca_pem: bytes | None = None) -> Bundle:
    """Check the bundle in ``folder`` before anything loads its model.

    Parameters
    ----------
    folder
        The bundle folder.
    ca_pem
        The federation CA certificate (PEM). Given, the signer's certificate must have been issued
        by it and valid when the bundle was signed (the manifest's ``created_at``, which the
        signature covers).

    Raises
    ------
    SignatureError
        Naming what failed: a missing or changed file, a signature that does not verify, or (with
        ``ca_pem``) a signer the CA did not certify.
    """
    bundle = load_bundle(folder)
    if ca_pem is None:
        return bundle
    from sovereign_ai.pki.signing import certificate_holder

    try:
        signed_at = dt.datetime.fromisoformat(bundle.manifest.created_at)
    except ValueError as exc:
        raise SignatureError(
            f"The bundle in {folder} has no readable signing time: {bundle.manifest.created_at!r}."
        ) from exc
    try:
        certificate_holder(bundle.signer_certificate, ca_pem=ca_pem, at=signed_at)
    except AuthenticationError as exc:
        raise SignatureError(
            f"The bundle in {folder} is signed, but not by a party of the federation whose CA "
            f"was given: {exc} Do not serve it."
        ) from exc
    return bundle
