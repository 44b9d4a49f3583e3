"""An edge bundle: a model ready to run offline, what it expects, and a signature over both.

A bundle is a folder of three files::

    model.onnx       the graph (input scaling inside it: it takes raw features)
    manifest.json    what the model is and expects (:class:`Manifest`), with model.onnx's SHA-256
    signature.json   the signer's certificate (PEM) and its signature over manifest.json

The signature covers the manifest's exact bytes, and the manifest the model's digest, so one
signature pins every byte of the bundle. :func:`load_bundle` refuses a bundle whose signature,
digests or manifest do not check out, saying which; whether the signer's certificate was issued
by a federation's CA is checked by the caller that knows the CA (``pki``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sovereign_ai.core.signatures import Signer, check_signature
from sovereign_ai.errors import ConfigError, SignatureError

__all__ = [
    "Bundle",
    "FileDigest",
    "InputScaling",
    "Manifest",
    "TensorSpec",
    "load_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "sovereign-edge-bundle/1"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "signature.json"
_MAX_MANIFEST_BYTES = 4 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One input or output: its name, Open Inference Protocol datatype and shape (-1: any)."""

    name: str = Field(min_length=1, max_length=64)
    datatype: Literal["FP32", "FP64", "INT64", "INT32", "BOOL"]
    shape: tuple[int, ...]


class FileDigest(_Strict):
    """SHA-256 (hex) and size of a file of the bundle."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class InputScaling(_Strict):
    """The standardisation the graph applies to raw features: ``(x - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


class Manifest(_Strict):
    """What a bundle holds and what its model expects.

    Parameters
    ----------
    format
        ``sovereign-edge-bundle/1``.
    name, version
        The model's registry name and version.
    variant
        Which form of the model: e.g. ``fp32``, ``int8-static``, ``int8-dynamic``, ``pruned``.
    created_at
        UTC time, ISO 8601.
    files
        Digest of every other file (``model.onnx``).
    inputs, outputs
        The graph's tensors.
    feature_names, class_names
        The data schema, where known.
    input_scaling
        The standardisation inside the graph (``None`` if the model takes scaled inputs as is).
    metrics
        Measured on the operator's holdout data and this device: accuracy, its change against
        fp32, prediction agreement, size, latency.
    source
        Where it came from: the registry reference and the SHA-256 of its passport.
    """

    format: Literal["sovereign-edge-bundle/1"] = "sovereign-edge-bundle/1"
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    variant: str = Field(min_length=1, max_length=64)
    created_at: str
    files: dict[str, FileDigest]
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    input_scaling: InputScaling | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    source: dict[str, str] = Field(default_factory=dict)

    def canonical(self) -> bytes:
        """The manifest's bytes as stored and signed (sorted keys, no whitespace)."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


class Bundle(_Strict):
    """A bundle whose signature and digests were checked (see :func:`load_bundle`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    folder: Path
    manifest: Manifest
    signer_certificate: bytes

    @property
    def model_path(self) -> Path:
        """The ONNX model file."""
        return self.folder / MODEL_FILE


def _signed_message(manifest_bytes: bytes) -> bytes:
    return BUNDLE_FORMAT.encode() + b"\n" + manifest_bytes


def _digest(data: bytes) -> FileDigest:
    return FileDigest(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def write_bundle(
    folder: str | Path,
    *,
    model: bytes,
    name: str,
    version: str,
    variant: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    signer: Signer,
    feature_names: tuple[str, ...] | None = None,
    class_names: tuple[str, ...] | None = None,
    input_scaling: InputScaling | None = None,
    metrics: dict[str, float] | None = None,
    source: dict[str, str] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Bundle:
    """Write a signed bundle to ``folder`` (which must not exist yet), all or nothing.

    The files are written to a temporary folder beside ``folder``, flushed to disk, and the
    folder renamed into place: a crash leaves no half-written bundle. ``extra_files`` (e.g. the
    fp32 weights ``parameters.safetensors`` encrypted inference evaluates) are listed in the
    manifest with their digests, so the signature covers them too.

    Raises
    ------
    ConfigError
        If ``folder`` exists, or a manifest field is invalid.
    """
    target = Path(folder)
    extras = dict(extra_files or {})
    reserved = {MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE}
    for file_name in extras:
        if file_name in reserved or Path(file_name).name != file_name or not file_name:
            raise ConfigError(f"{file_name!r} cannot be an extra file of a bundle.")
    if target.exists():
        raise ConfigError(f"{target} exists already; choose a new folder for the bundle.")
    try:
        manifest = Manifest(
            name=name,
            version=version,
            variant=variant,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            files={MODEL_FILE: _digest(model)}
            | {name: _digest(data) for name, data in sorted(extras.items())},
            inputs=inputs,
            outputs=outputs,
            feature_names=feature_names,
            class_names=class_names,
            input_scaling=input_scaling,
            metrics=metrics or {},
            source=source or {},
        )
    except ValidationError as exc:
        raise ConfigError(f"The bundle's manifest is invalid: {exc}") from exc
    manifest_bytes = manifest.canonical()
    signature = {
        "certificate": signer.certificate.decode("ascii"),
        "signature": base64.b64encode(signer.sign(_signed_message(manifest_bytes))).decode(),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for file_name, data in (
            (MODEL_FILE, model),
            *sorted(extras.items()),
            (MANIFEST_FILE, manifest_bytes),
            (SIGNATURE_FILE, json.dumps(signature, sort_keys=True).encode()),
        ):
            with open(staging / file_name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle(folder=target, manifest=manifest, signer_certificate=signer.certificate)


def _read(folder: Path, file_name: str, *, limit: int | None = None) -> bytes:
    path = folder / file_name
    try:
        if limit is not None and path.stat().st_size > limit:
            raise SignatureError(f"{path} is larger than a manifest can be; refused.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SignatureError(f"The bundle in {folder} has no {file_name}; refused.") from exc
    except OSError as exc:
        raise SignatureError(f"{path} cannot be read: {exc}.") from exc


def load_bundle(folder: str | Path) -> Bundle:
    """Read the bundle in ``folder`` and check it before anything loads its model.

    Checks, in order: the signature over ``manifest.json`` with the certificate in
    ``signature.json``; the manifest's format and fields; the SHA-256 and size of every file the
    manifest names. Whether a CA you trust issued the certificate is for the caller to check
    (:attr:`Bundle.signer_certificate`).

    Raises
    ------
    SignatureError
        Naming what failed: a missing file, a signature that does not verify (the manifest was
        changed, or signed by someone else), a manifest that is not one, or a file whose digest
        differs (it was changed after signing).
    """
    root = Path(folder)
    manifest_bytes = _read(root, MANIFEST_FILE, limit=_MAX_MANIFEST_BYTES)
    try:
        signed = json.loads(_read(root, SIGNATURE_FILE, limit=_MAX_MANIFEST_BYTES))
        certificate = str(signed["certificate"]).encode("ascii")
        signature = base64.b64decode(str(signed["signature"]), validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{root / SIGNATURE_FILE} is not a bundle signature: {exc}.") from exc
    try:
        check_signature(certificate, _signed_message(manifest_bytes), signature)
    except SignatureError as exc:
        raise SignatureError(
            f"The bundle in {root} is not as signed: {exc} The manifest was changed after "
            "signing, or the signature is someone else's. Do not serve it; export it again."
        ) from exc
    try:
        manifest = Manifest.model_validate_json(manifest_bytes)
    except ValidationError as exc:
        raise SignatureError(f"The signed manifest in {root} is not valid: {exc}") from exc
    for file_name, expected in manifest.files.items():
        if Path(file_name).name != file_name:
            raise SignatureError(f"The manifest names a file outside the bundle: {file_name!r}.")
        if _digest(_read(root, file_name)) != expected:
            raise SignatureError(
                f"{root / file_name} differs from the one signed (SHA-256 or size): it was "
                "changed after the bundle was made. Do not serve it; export it again."
            )
    return Bundle(folder=root, manifest=manifest, signer_certificate=certificate)
