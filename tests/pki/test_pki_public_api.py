"""The public surface of ``sovereign_ai.pki``: ``__all__`` is exact, sorted and importable."""

from __future__ import annotations

import importlib

import sovereign_ai.pki as pki

PUBLIC_MODULES = (
    "ca",
    "certificates",
    "enrolment",
    "expiry",
    "federation_file",
    "identity",
    "kits",
    "passphrase",
    "renewal",
    "revocation",
    "roster",
    "signing",
)


def test_all_lists_exactly_the_public_names_of_the_public_modules() -> None:
    exported: set[str] = set()
    for module in PUBLIC_MODULES:
        exported |= set(importlib.import_module(f"sovereign_ai.pki.{module}").__all__)

    assert set(pki.__all__) == exported
    assert list(pki.__all__) == sorted(pki.__all__)
    assert all(getattr(pki, name) is not None for name in pki.__all__)
