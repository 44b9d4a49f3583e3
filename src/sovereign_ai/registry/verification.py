"""``verify``: do a version's files still say what was registered, and who signed them?

The checks, in order (each later one needs the earlier ones' files):

1. ``passport file``: present, and its SHA-256 is the one the registry recorded;
2. ``passport``: a passport of this format, naming this model and version;
3. ``signature``: for a signed version, ``signature.json`` is present and the passport's bytes
   verify with the certificate in it; an unsigned version says so here;
4. ``model file``: present, and its SHA-256 is the passport's ``parameter_digest`` (and the one
   the registry recorded).

What it does *not* establish: that the certificate belongs to the federation's coordinator (the
command line's ``--ca`` checks that with pki), that the lineage is true (the passport is the
coordinator's statement; nodes check their own side in their audit logs), or anything about an
unsigned version beyond agreement with the registry's own database, which whoever can write the
folder can rewrite as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sovereign_ai.core.signatures import check_signature
from sovereign_ai.errors import RegistryError, SignatureError
from sovereign_ai.registry._files import PassportSignature
from sovereign_ai.registry.passport import Passport
from sovereign_ai.registry.store import RegisteredVersion

__all__ = ["Check", "VerificationReport", "verify_version"]


@dataclass(frozen=True)
class Check:
    """One check of :func:`verify_version`: what was checked, whether it held, and why not."""

    name: str
    is_ok: bool
    detail: str


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify_version` found.

    ``is_intact``: every check held (for an unsigned version: against the registry's own
    record). ``is_signed``: the passport carries a signature that verified. A caller that
    accepts only signed models wants both (:meth:`is_ok` with ``allow_unsigned=False``).
    """

    version: RegisteredVersion
    checks: tuple[Check, ...]
    passport: Passport | None
    certificate: bytes | None
    """The signer's certificate (PEM) when the signature verified."""

    @property
    def is_intact(self) -> bool:
        """Every check held."""
        return all(check.is_ok for check in self.checks)

    @property
    def is_signed(self) -> bool:
        """The passport's signature verified."""
        return self.certificate is not None

    def is_ok(self, *, allow_unsigned: bool = False) -> bool:
        """Intact, and signed unless ``allow_unsigned``."""
        return self.is_intact and (self.is_signed or allow_unsigned)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that did not hold."""
        return tuple(check for check in self.checks if not check.is_ok)


def _sha256_of(path_bytes: bytes) -> str:
    return hashlib.sha256(path_bytes).hexdigest()


def verify_version(version: RegisteredVersion) -> VerificationReport:
    """Check a version's files against its passport, its signature and the registry's record."""
    checks: list[Check] = []
    passport: Passport | None = None
    certificate: bytes | None = None

    def done() -> VerificationReport:
        return VerificationReport(version, tuple(checks), passport, certificate)

    try:
        body = version.passport_file.read_bytes()
    except OSError as exc:
        checks.append(Check("passport file", False, f"missing or unreadable: {exc}"))
        return done()
    if _sha256_of(body) != version.passport_digest:
        checks.append(Check("passport file", False, "changed since registration (SHA-256)"))
    else:
        checks.append(Check("passport file", True, "as registered"))
    try:
        passport = Passport.from_bytes(body)
    except RegistryError as exc:
        checks.append(Check("passport", False, str(exc)))
        return done()
    if (passport.model_name, passport.version) != (version.name, version.version):
        checks.append(
            Check(
                "passport",
                False,
                f"names {passport.model_name}:{passport.version}, not {version.reference}",
            )
        )
    else:
        checks.append(Check("passport", True, f"format {passport.format}"))
    checks.append(_signature_check(version, body))
    if checks[-1].is_ok and version.is_signed:
        certificate = PassportSignature.from_bytes(version.signature_file.read_bytes()).certificate
    checks.append(_model_check(version, passport))
    return done()


def _signature_check(version: RegisteredVersion, body: bytes) -> Check:
    if not version.is_signed:
        if version.signature_file.exists():
            return Check("signature", False, "registered unsigned, yet a signature file is present")
        return Check("signature", True, "none: registered unsigned (simulation)")
    try:
        signature = PassportSignature.from_bytes(version.signature_file.read_bytes())
    except FileNotFoundError:
        return Check("signature", False, "the signature file is missing")
    except (OSError, RegistryError) as exc:
        return Check("signature", False, str(exc))
    try:
        check_signature(signature.certificate, body, signature.signature)
    except SignatureError as exc:
        return Check("signature", False, f"does not verify: {exc}")
    return Check("signature", True, "verifies with the certificate it carries")


def _model_check(version: RegisteredVersion, passport: Passport) -> Check:
    try:
        data = version.model_file.read_bytes()
    except OSError as exc:
        return Check("model file", False, f"missing or unreadable: {exc}")
    digest = _sha256_of(data)
    if digest != passport.parameter_digest:
        return Check(
            "model file",
            False,
            f"SHA-256 {digest[:16]}… is not the passport's parameter digest "
            f"{passport.parameter_digest[:16]}…",
        )
    if digest != version.parameter_digest:
        return Check("model file", False, "differs from the digest the registry recorded")
    return Check("model file", True, f"SHA-256 {digest[:16]}… matches the passport")
