"""Plug-in discovery: real distributions (a ``*.dist-info`` folder and a module) on ``sys.path``.

``importlib.metadata`` treats any ``<name>-<version>.dist-info`` folder with ``METADATA`` and
``entry_points.txt`` on ``sys.path`` as an installed distribution, so these tests install packages
the way pip would lay them out, without pip.
"""

from __future__ import annotations

import sys
import threading
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sovereign_ai.core import PluginEntryPoint, PluginRegistry, discover_plugins
from sovereign_ai.errors import ConfigError, UnknownNameError

GROUP = "sovereign_ai_test.widgets"


def built_in_widget(*, size: int = 1) -> str:
    return f"built-in widget of size {size}"


def install(root: Path, distribution: str, entry_points: dict[str, str], source: str = "") -> str:
    """Lay out ``distribution`` under ``root``: a module and its dist-info; return the module name.

    ``entry_points`` maps a name to an attribute of the module (``"factory"``) or, if it contains
    ``":"``, to a full ``module:attribute`` value.
    """
    module = f"plugin_{uuid.uuid4().hex[:12]}"
    (root / f"{module}.py").write_text(source)
    info = root / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    lines = [
        f"{name} = {value if ':' in value else f'{module}:{value}'}"
        for name, value in entry_points.items()
    ]
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "\n".join(lines) + "\n")
    return module


def registry() -> PluginRegistry[Callable[..., object]]:
    return PluginRegistry(
        kind="widget",
        group=GROUP,
        built_ins={"plain": built_in_widget},
        check=lambda obj: None if callable(obj) else f"got {type(obj).__name__}",
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` (removed again after the test), as pip's --target would make."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_discovery_reads_metadata_and_imports_nothing(site: Path) -> None:
    module = install(site, "ward-widgets", {"round": "make"}, "def make(): return 'round'\n")
    found = discover_plugins(GROUP)
    assert found == (
        PluginEntryPoint(
            group=GROUP, name="round", value=f"{module}:make", distribution="ward-widgets"
        ),
    )
    assert module not in sys.modules
    assert found[0].describe() == (
        f"entry point 'round = {module}:make' of distribution 'ward-widgets' (group {GROUP})"
    )


def test_plugin_names_are_listed_beside_built_ins_and_loaded_on_first_lookup(site: Path) -> None:
    module = install(
        site, "ward-widgets", {"round": "make"}, "CALLS = []\ndef make(): return 'round'\n"
    )
    widgets = registry()
    assert widgets.names() == ("plain", "round")
    assert module not in sys.modules, "listing must not import the plug-in"
    factory = widgets.get("round")
    assert factory() == "round"
    assert widgets.get("round") is factory
    assert widgets.entry_point("round") == discover_plugins(GROUP)[0]
    assert widgets.entry_point("plain") is None


def test_a_plugin_appears_and_goes_with_its_folder_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, "ward-widgets", {"round": "make"}, "def make(): return 'round'\n")
    widgets = registry()
    assert widgets.names() == ("plain",)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert widgets.names() == ("plain", "round")
    monkeypatch.undo()
    assert widgets.names() == ("plain",)
    with pytest.raises(UnknownNameError, match="Unknown widget 'round'; expected one of: plain"):
        widgets.get("round")


def test_unknown_name_lists_built_in_and_plugin_names(site: Path) -> None:
    install(site, "ward-widgets", {"round": "make"}, "def make(): return 'round'\n")
    with pytest.raises(UnknownNameError) as caught:
        registry().get("square")
    assert str(caught.value) == "Unknown widget 'square'; expected one of: plain, round."


def test_import_error_names_distribution_and_entry_point_and_spares_the_rest(
    site: Path,
) -> None:
    module = install(site, "broken-widgets", {"cracked": "make"}, "import not_a_module_anywhere\n")
    install(site, "ward-widgets", {"round": "make"}, "def make(): return 'round'\n")
    widgets = registry()
    assert widgets.names() == ("cracked", "plain", "round")
    with pytest.raises(ConfigError) as caught:
        widgets.get("cracked")
    message = str(caught.value)
    assert f"entry point 'cracked = {module}:make'" in message
    assert "distribution 'broken-widgets'" in message
    assert "ModuleNotFoundError" in message and "not_a_module_anywhere" in message
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
    assert widgets.get("plain")(size=2) == "built-in widget of size 2"
    assert widgets.get("round")() == "round"


def test_missing_attribute_is_a_load_error_naming_the_entry_point(site: Path) -> None:
    install(site, "ward-widgets", {"round": "no_such_factory"}, "def make(): return 'round'\n")
    with pytest.raises(ConfigError, match=r"'round = plugin_\w+:no_such_factory'.*AttributeError"):
        registry().get("round")


def test_wrong_object_is_refused_naming_distribution_and_entry_point(site: Path) -> None:
    install(site, "ward-widgets", {"number": "make"}, "make = 42\n")
    widgets = registry()
    with pytest.raises(ConfigError) as caught:
        widgets.get("number")
    assert str(caught.value).startswith("The entry point 'number = plugin_")
    assert "of distribution 'ward-widgets'" in str(caught.value)
    assert "is not a usable widget: got int. Fix the package 'ward-widgets'" in str(caught.value)
    assert widgets.get("plain")() == "built-in widget of size 1"


def test_a_plugin_may_not_replace_a_built_in(site: Path) -> None:
    install(site, "sneaky-widgets", {"plain": "make"}, "def make(): return 'impostor'\n")
    widgets = registry()
    with pytest.warns(RuntimeWarning) as warned:
        names = widgets.names()
    assert names == ("plain",)
    message = str(warned[0].message)
    assert "entry point 'plain = plugin_" in message
    assert "'sneaky-widgets'" in message and "Rename the entry point" in message
    assert widgets.get("plain") is built_in_widget


def test_two_plugins_offering_one_name_are_refused_naming_both(site: Path) -> None:
    install(site, "north-widgets", {"round": "make"}, "def make(): return 'north'\n")
    install(site, "south-widgets", {"round": "make"}, "def make(): return 'south'\n")
    widgets = registry()
    assert widgets.names() == ("plain", "round")
    with pytest.raises(ConfigError) as caught:
        widgets.get("round")
    message = str(caught.value)
    assert message.startswith("2 installed plug-ins offer widget 'round'")
    assert "'north-widgets'" in message and "'south-widgets'" in message
    assert message.endswith("Uninstall all but one.")
    assert widgets.entry_point("round") is None


def test_registering_over_a_plugin_name_needs_allow_replace(site: Path) -> None:
    install(site, "ward-widgets", {"round": "make"}, "def make(): return 'round'\n")
    widgets = registry()
    with pytest.raises(ConfigError, match="already offered by the entry point 'round = "):
        widgets.register("round", built_in_widget)
    widgets.register("round", built_in_widget, allow_replace=True)
    assert widgets.get("round") is built_in_widget
    with pytest.raises(ConfigError, match="already registered"):
        widgets.register("plain", built_in_widget)


def test_a_plugin_may_register_names_while_it_is_imported(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading happens outside the registry's lock: an import that registers does not deadlock."""
    widgets = registry()
    holder = types.ModuleType("widget_registry_holder")
    holder.__dict__["REGISTRY"] = widgets
    monkeypatch.setitem(sys.modules, holder.__name__, holder)
    install(
        site,
        "eager-widgets",
        {"eager": "make"},
        "import widget_registry_holder\n"
        "def make(): return 'eager'\n"
        "widget_registry_holder.REGISTRY.register('extra', make)\n",
    )
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(widgets.get("eager")()), daemon=True)
    worker.start()
    worker.join(timeout=60)  # a deadlock guard, not a timing check
    assert not worker.is_alive(), "looking up a plug-in that registers a name deadlocked"
    assert outcome == ["eager"]
    assert widgets.names() == ("eager", "extra", "plain")
