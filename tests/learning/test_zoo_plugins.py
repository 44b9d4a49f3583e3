"""Models from plug-in packages (entry point group ``sovereign_ai.models``) in the model zoo.

Each test lays out a real distribution (a module and its ``*.dist-info``) in a folder on
``sys.path``; ``importlib.metadata`` finds it exactly as it finds a package pip installed.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.learning import create_model, get_parameters, model_names, zoo

BUILT_IN = ("cnn", "he_mlp", "logreg", "mlp")

TWO_LAYERS = """
import torch
from torch import nn

def two_layers(*, num_features, num_classes, generator, width=4):
    model = nn.Sequential()
    model.add_module("inner", nn.Linear(num_features, width, device="meta").to_empty(device="cpu"))
    model.add_module("act", nn.Tanh())
    model.add_module("outer", nn.Linear(width, num_classes, device="meta").to_empty(device="cpu"))
    with torch.no_grad():
        for layer in (model.inner, model.outer):
            nn.init.normal_(layer.weight, std=0.1, generator=generator)
            layer.bias.zero_()
    return model

not_a_factory = nn.Linear(2, 2)

def no_generator(*, num_features, num_classes):
    return nn.Linear(num_features, num_classes)
"""


def install(root: Path, distribution: str, models: dict[str, str], source: str) -> str:
    """A distribution offering ``models`` (name -> attribute of its one module); the module name."""
    module = f"zoo_plugin_{uuid.uuid4().hex[:12]}"
    (root / f"{module}.py").write_text(source)
    info = root / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    entries = "\n".join(f"{name} = {module}:{attribute}" for name, attribute in models.items())
    (info / "entry_points.txt").write_text(f"[sovereign_ai.models]\n{entries}\n")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path``, and a fresh zoo that has not yet searched for plug-ins."""
    monkeypatch.setattr(zoo, "_MODELS", zoo._model_registry())
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plugin_model_is_listed_and_built_by_name_with_its_options(site: Path) -> None:
    install(site, "ward-models", {"two_layers": "two_layers"}, TWO_LAYERS)
    assert model_names() == ("cnn", "he_mlp", "logreg", "mlp", "two_layers")
    model = create_model("two_layers", num_features=3, num_classes=2, seed=8, width=5)
    parameters = get_parameters(model)
    assert list(parameters) == [
        "input_mean",
        "input_std",
        "body.inner.weight",
        "body.inner.bias",
        "body.outer.weight",
        "body.outer.bias",
    ]
    assert parameters["body.inner.weight"].shape == (5, 3)
    again = create_model("two_layers", num_features=3, num_classes=2, seed=8, width=5)
    assert get_parameters(again) == parameters, "same seed, same initial weights"
    with pytest.raises(ConfigError, match="Unknown option\\(s\\) 'depth' for model 'two_layers'"):
        create_model("two_layers", num_features=3, num_classes=2, seed=8, depth=2)


def test_without_the_plugin_the_name_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zoo, "_MODELS", zoo._model_registry())
    install(tmp_path, "ward-models", {"two_layers": "two_layers"}, TWO_LAYERS)  # not on sys.path
    with pytest.raises(UnknownNameError, match="Unknown model 'two_layers'; expected one of: cnn"):
        create_model("two_layers", num_features=3, num_classes=2, seed=0)


@pytest.mark.parametrize(
    ("attribute", "problem"),
    [
        (
            "not_a_factory",
            "it must name a model factory (a function or class building an "
            "nn.Module); got Linear instead",
        ),
        ("no_generator", "the factory must accept the keyword argument(s) generator"),
    ],
)
def test_an_unusable_plugin_object_is_refused_naming_its_package(
    site: Path, attribute: str, problem: str
) -> None:
    module = install(site, "ward-models", {"broken": attribute}, TWO_LAYERS)
    with pytest.raises(ConfigError) as caught:
        create_model("broken", num_features=3, num_classes=2, seed=0)
    assert str(caught.value) == (
        f"The entry point 'broken = {module}:{attribute}' of distribution 'ward-models' (group "
        f"sovereign_ai.models) is not a usable model: {problem}. Fix the package 'ward-models' "
        "or uninstall it."
    )


def test_a_plugin_that_fails_to_import_breaks_only_its_own_name(site: Path) -> None:
    install(site, "cracked-models", {"cracked": "two_layers"}, "raise RuntimeError('no GPU')\n")
    with pytest.raises(ConfigError, match=r"distribution 'cracked-models'.*RuntimeError: no GPU"):
        create_model("cracked", num_features=3, num_classes=2, seed=0)
    for name in BUILT_IN:
        model = create_model(name, num_features=64, num_classes=3, seed=0)
        assert np.isfinite(get_parameters(model).flatten()).all()


def test_a_plugin_cannot_take_over_a_built_in_name(site: Path) -> None:
    install(site, "sneaky-models", {"mlp": "two_layers"}, TWO_LAYERS)
    with pytest.warns(RuntimeWarning, match="distribution 'sneaky-models'.*Rename the entry point"):
        names = model_names()
    assert names == BUILT_IN
    model = create_model("mlp", num_features=3, num_classes=2, seed=0)
    assert "body.hidden_0.weight" in get_parameters(model)
