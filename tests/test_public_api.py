"""Every package's ``__all__`` is exactly its public surface, sorted, and importable."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PACKAGES = [
    "sovereign_ai.errors",
    "sovereign_ai.core",
    "sovereign_ai.data",
    "sovereign_ai.learning",
    "sovereign_ai.strategies",
    "sovereign_ai.secagg",
    "sovereign_ai.privacy",
    "sovereign_ai.governance",
    "sovereign_ai.registry",
    "sovereign_ai.edge",
    "sovereign_ai.he",
    "sovereign_ai.pki",
    "sovereign_ai.federation",
    "sovereign_ai.federation.transports",
    "sovereign_ai.federation.transports.grpc",
    "sovereign_ai.testing",
    "sovereign_ai.serving",
]


def public_names(module: types.ModuleType) -> set[str]:
    """Classes and functions of this project that the module exposes without an underscore."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", "") or ""
        if (inspect.isclass(value) or inspect.isfunction(value)) and origin.startswith(
            "sovereign_ai"
        ):
            names.add(name)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_public_surface(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{package}.__all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names missing {name!r}"
    assert public_names(module) <= set(exported), (
        f"{package} exposes {sorted(public_names(module) - set(exported))} outside __all__"
    )


def test_top_level_exposes_version_only() -> None:
    import sovereign_ai

    assert sovereign_ai.__version__ == "0.1.0"
