"""Names installed packages add through Python entry points: a site's own models and strategies.

A plug-in is an ordinary Python distribution whose ``pyproject.toml`` declares, for example::

    [project.entry-points."sovereign_ai.models"]
    ward_net = "hospital_models.ward_net:ward_net"

Once it is installed, every registry reading that group (the model zoo reads
``sovereign_ai.models``, the strategy registry ``sovereign_ai.strategies``) offers ``ward_net`` as
if it were built in. Nothing is sent over the network: each party installs the package itself.

Discovery reads installed package metadata only (:mod:`importlib.metadata`), on the first lookup and
again whenever ``sys.path`` has changed. A plug-in's module is imported when one of its names is
first looked up, so a broken plug-in breaks only its own names, never the built-in ones, and the
error names the distribution and entry point to fix.
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from sovereign_ai.errors import ConfigError, UnknownNameError

__all__ = ["PluginEntryPoint", "PluginRegistry", "discover_plugins"]

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class PluginEntryPoint:
    """One entry point of an installed distribution, not yet imported.

    Parameters
    ----------
    group
        The entry point group, e.g. ``"sovereign_ai.models"``.
    name
        The name it offers, e.g. ``"ward_net"``.
    value
        Where the object lives, ``"module:attribute"``.
    distribution
        The installed distribution that declares it, e.g. ``"hospital-models"``.
    """

    group: str
    name: str
    value: str
    distribution: str

    def describe(self) -> str:
        """``entry point 'name = value' of distribution 'd' (group g)``, for messages."""
        return (
            f"entry point '{self.name} = {self.value}' of distribution '{self.distribution}' "
            f"(group {self.group})"
        )

    def load(self) -> object:
        """Import the module and return the object the entry point names.

        Raises
        ------
        ConfigError
            If importing or looking up the object fails, naming this entry point.
        """
        entry_point = importlib.metadata.EntryPoint(self.name, self.value, self.group)
        try:
            return entry_point.load()
        except Exception as exc:  # plug-in code may raise anything while it is imported
            raise ConfigError(
                f"The {self.describe()} cannot be loaded: {type(exc).__name__}: {exc}. Fix or "
                f"reinstall the package '{self.distribution}', or uninstall it."
            ) from exc


def discover_plugins(group: str) -> tuple[PluginEntryPoint, ...]:
    """Every entry point of ``group`` declared by a distribution installed on ``sys.path``.

    Parameters
    ----------
    group
        An entry point group, e.g. ``"sovereign_ai.models"``.

    Returns
    -------
    tuple of PluginEntryPoint
        Sorted by name, then distribution. Nothing is imported.
    """
    found = []
    for entry_point in importlib.metadata.entry_points(group=group):
        distribution = entry_point.dist.name if entry_point.dist is not None else "(unknown)"
        found.append(
            PluginEntryPoint(
                group=group,
                name=entry_point.name,
                value=entry_point.value,
                distribution=distribution,
            )
        )
    return tuple(sorted(found, key=lambda e: (e.name, e.distribution)))


class PluginRegistry(Generic[F]):
    """Named factories of one kind: built-ins, those registered in this process, and plug-ins.

    Parameters
    ----------
    kind
        What the names are, for messages: ``"model"``, ``"strategy"``.
    group
        The entry point group plug-ins of this kind declare.
    built_ins
        The names that ship with the framework.
    check
        Inspects a plug-in's loaded object; returns what is wrong with it, or ``None`` if usable.

    Notes
    -----
    Lookup order: a name registered in this process (built-ins included) wins. A plug-in offering
    a name already taken is ignored with a warning naming it, so no installed package can change
    what a built-in name means. Two plug-ins offering the same name make that name ambiguous: it is
    listed, and looking it up raises, naming both. Loaded plug-in objects are cached.
    """

    def __init__(
        self,
        *,
        kind: str,
        group: str,
        built_ins: Mapping[str, F],
        check: Callable[[object], str | None],
    ) -> None:
        self.kind = kind
        self.group = group
        self._check = check
        self._own: dict[str, F] = dict(built_ins)
        self._plugins: dict[str, tuple[PluginEntryPoint, ...]] = {}
        self._loaded: dict[PluginEntryPoint, F] = {}
        self._searched_path: tuple[str, ...] | None = None
        self._lock = threading.Lock()

    def names(self) -> tuple[str, ...]:
        """Every name offered, built-in, registered or from a plug-in, sorted."""
        with self._lock:
            self._discover_locked()
            return tuple(sorted({*self._own, *self._plugins}))

    def entry_point(self, name: str) -> PluginEntryPoint | None:
        """The plug-in entry point ``name`` resolves to; ``None`` if built in or registered."""
        with self._lock:
            self._discover_locked()
            if name in self._own:
                return None
            candidates = self._plugins.get(name, ())
        return candidates[0] if len(candidates) == 1 else None

    def get(self, name: str) -> F:
        """The factory registered as ``name``, importing its plug-in on first use.

        Raises
        ------
        UnknownNameError
            If no built-in, registered or installed plug-in offers ``name``.
        ConfigError
            If the plug-in offering ``name`` cannot be imported, is not a usable factory, or more
            than one plug-in offers ``name``; the message names the distribution and entry point.
        """
        with self._lock:
            self._discover_locked()
            own = self._own.get(name)
            candidates = self._plugins.get(name, ())
            if own is None and not candidates:
                raise UnknownNameError(self.kind, name, sorted({*self._own, *self._plugins}))
            cached = self._loaded.get(candidates[0]) if len(candidates) == 1 else None
        if own is not None:
            return own
        if cached is not None:
            return cached
        if len(candidates) > 1:
            raise ConfigError(
                f"{len(candidates)} installed plug-ins offer {self.kind} {name!r}: "
                + "; ".join(c.describe() for c in candidates)
                + ". Uninstall all but one."
            )
        entry_point = candidates[0]
        loaded = entry_point.load()  # outside the lock: the plug-in's import may register names
        problem = self._check(loaded)
        if problem is not None:
            raise ConfigError(
                f"The {entry_point.describe()} is not a usable {self.kind}: {problem}. Fix the "
                f"package '{entry_point.distribution}' or uninstall it."
            )
        factory = cast(F, loaded)
        with self._lock:
            self._loaded[entry_point] = factory
        return factory

    def register(self, name: str, factory: F, *, allow_replace: bool = False) -> None:
        """Offer ``factory`` as ``name`` in this process.

        Raises
        ------
        ConfigError
            If ``name`` is taken (by a built-in, an earlier registration or a plug-in) and
            ``allow_replace`` is false.
        """
        with self._lock:
            self._discover_locked()
            if not allow_replace:
                if name in self._own:
                    raise ConfigError(
                        f"A {self.kind} named {name!r} is already registered; pass "
                        "allow_replace=True to replace it."
                    )
                if name in self._plugins:
                    raise ConfigError(
                        f"A {self.kind} named {name!r} is already offered by the "
                        f"{self._plugins[name][0].describe()}; pass allow_replace=True to "
                        "replace it in this process."
                    )
            self._own[name] = factory

    def _discover_locked(self) -> None:
        """Read the group's entry points again if ``sys.path`` changed since the last search."""
        search_path = tuple(sys.path)
        if search_path == self._searched_path:
            return
        found: dict[str, list[PluginEntryPoint]] = {}
        for entry_point in discover_plugins(self.group):
            if entry_point.name in self._own:
                warnings.warn(
                    f"Ignoring the {entry_point.describe()}: {self.kind} "
                    f"{entry_point.name!r} is built in or already registered, and a plug-in may "
                    f"not replace it. Rename the entry point in '{entry_point.distribution}'.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                continue
            found.setdefault(entry_point.name, []).append(entry_point)
        self._plugins = {name: tuple(entries) for name, entries in found.items()}
        self._searched_path = search_path
