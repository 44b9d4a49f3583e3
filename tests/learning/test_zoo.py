"""Tests for the model zoo: names, options, deterministic and thread-safe initialisation."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from sovereign_ai.core import Parameters
from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.learning import (
    TrainConfig,
    create_model,
    evaluate,
    get_parameters,
    model_names,
    register_model,
    set_parameters,
    train,
    zoo,
)

BUILT_IN = ("cnn", "he_mlp", "logreg", "mlp")


@pytest.fixture
def restore_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test go into a fresh registry, dropped afterwards."""
    monkeypatch.setattr(zoo, "_MODELS", zoo._model_registry())


def test_model_names_lists_built_ins_sorted() -> None:
    names = model_names()
    assert set(BUILT_IN) <= set(names)
    assert list(names) == sorted(names)


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_model_learns_a_separable_problem(name: str, blobs: Any) -> None:
    features, labels = blobs
    model = create_model(name, num_features=64, num_classes=3, seed=0)
    before = evaluate(model, features, labels)
    config = TrainConfig(local_epochs=5, batch_size=16, learning_rate=0.05)
    train(model, features, labels, config=config, seed=1)
    after = evaluate(model, features, labels)
    assert after.accuracy > before.accuracy
    assert after.accuracy >= 0.9
    assert after.loss < before.loss


@pytest.mark.parametrize("name", BUILT_IN)
def test_logits_have_one_column_per_class(name: str) -> None:
    model = create_model(name, num_features=64, num_classes=5, seed=0)
    assert model(torch.zeros(7, 64)).shape == (7, 5)


@pytest.mark.parametrize("name", BUILT_IN)
def test_same_seed_same_weights_other_seed_other_weights(name: str) -> None:
    def build(seed: int) -> Any:
        return get_parameters(create_model(name, num_features=64, num_classes=3, seed=seed))

    assert build(7) == build(7)
    assert build(7) != build(8)


@pytest.mark.parametrize("name", BUILT_IN)
def test_creation_leaves_the_global_generator_alone(name: str) -> None:
    state = torch.get_rng_state()
    create_model(name, num_features=64, num_classes=3, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_concurrent_creation_matches_sequential() -> None:
    seeds = list(range(8))
    sequential = [
        get_parameters(create_model("cnn", num_features=64, num_classes=10, seed=s)) for s in seeds
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(
            pool.map(
                lambda s: get_parameters(
                    create_model("cnn", num_features=64, num_classes=10, seed=s)
                ),
                seeds,
            )
        )
    assert concurrent == sequential


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_ins_have_no_dropout_or_batch_norm(name: str) -> None:
    model = create_model(name, num_features=64, num_classes=3, seed=0)
    banned = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d)
    assert not any(isinstance(m, banned) for m in model.modules())


def test_initialisation_follows_torch_default_bounds() -> None:
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    weight = get_parameters(model)["body.linear.weight"]
    # kaiming_uniform_(a=sqrt(5)) on fan_in 64 is U(-1/8, 1/8), as nn.Linear's own default.
    assert np.abs(weight).max() <= 1 / math.sqrt(64)
    assert np.abs(weight).max() > 0.9 / math.sqrt(64)


def test_mlp_hidden_option_sets_layer_widths() -> None:
    model = create_model("mlp", num_features=10, num_classes=4, seed=0, hidden=(16, 8))
    shapes = {name: array.shape for name, array in get_parameters(model).items()}
    assert shapes == {
        "input_mean": (10,),
        "input_std": (10,),
        "body.hidden_0.weight": (16, 10),
        "body.hidden_0.bias": (16,),
        "body.hidden_1.weight": (8, 16),
        "body.hidden_1.bias": (8,),
        "body.output.weight": (4, 8),
        "body.output.bias": (4,),
    }


@pytest.mark.parametrize("hidden", [(), (0,), (8, -1), "32", (2.5,), (True,)])
def test_mlp_rejects_bad_hidden(hidden: Any) -> None:
    with pytest.raises(ConfigError, match="'hidden'"):
        create_model("mlp", num_features=4, num_classes=2, seed=0, hidden=hidden)


def test_cnn_takes_any_perfect_square() -> None:
    model = create_model("cnn", num_features=16, num_classes=2, seed=0)
    assert model(torch.zeros(3, 16)).shape == (3, 2)


@pytest.mark.parametrize("num_features", [10, 63, 1])
def test_cnn_rejects_non_square_inputs(num_features: int) -> None:
    with pytest.raises(ConfigError, match="perfect square"):
        create_model("cnn", num_features=num_features, num_classes=2, seed=0)


def test_unknown_model_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError, match="logreg") as info:
        create_model("resnet", num_features=4, num_classes=2, seed=0)
    assert isinstance(info.value, KeyError)
    assert info.value.kind == "model"
    assert info.value.name == "resnet"


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="'dropout'"):
        create_model("mlp", num_features=4, num_classes=2, seed=0, dropout=0.5)
    with pytest.raises(ConfigError, match="'hidden'"):
        create_model("logreg", num_features=4, num_classes=2, seed=0, hidden=(3,))


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_features", 0), ("num_classes", 1), ("num_classes", True), ("seed", -1)],
)
def test_bad_sizes_and_seed_are_refused(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"num_features": 4, "num_classes": 2, "seed": 0, field: value}
    with pytest.raises(ConfigError, match=f"'{field}'"):
        create_model("logreg", **kwargs)


def _tiny(
    *, num_features: int, num_classes: int, generator: torch.Generator, scale: float = 1.0
) -> nn.Module:
    layer = nn.Linear(num_features, num_classes, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        nn.init.normal_(layer.weight, std=scale, generator=generator)
        layer.bias.zero_()
    return layer


@pytest.mark.usefixtures("restore_registry")
def test_registered_model_is_built_by_name_with_its_options() -> None:
    register_model("tiny", _tiny)
    assert "tiny" in model_names()
    model = create_model("tiny", num_features=3, num_classes=2, seed=4, scale=0.0)
    assert not get_parameters(model)["body.weight"].any()
    with pytest.raises(ConfigError, match="'hidden'"):
        create_model("tiny", num_features=3, num_classes=2, seed=4, hidden=(2,))


@pytest.mark.usefixtures("restore_registry")
def test_registering_a_taken_name_needs_allow_replace() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_model("logreg", _tiny)
    register_model("logreg", _tiny, allow_replace=True)
    assert isinstance(create_model("logreg", num_features=3, num_classes=2, seed=0).body, nn.Linear)


@pytest.mark.parametrize(
    ("name", "factory", "reason"),
    [("", _tiny, "'name' parameter of register_model"), ("x", 3, "'factory' parameter")],
)
def test_register_model_rejects_bad_arguments(name: str, factory: Any, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        register_model(name, factory)


def test_options_may_not_override_arguments() -> None:
    with pytest.raises(ConfigError, match="generator"):
        create_model("logreg", num_features=4, num_classes=2, seed=0, generator=None)


def test_input_standardisation_travels_with_the_weights() -> None:
    model = create_model("logreg", num_features=3, num_classes=2, seed=0)
    params = get_parameters(model)
    assert list(params)[:2] == ["input_mean", "input_std"]
    np.testing.assert_array_equal(params["input_mean"], np.zeros(3))
    np.testing.assert_array_equal(params["input_std"], np.ones(3))
    features = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    before = model(torch.from_numpy(features)).detach().numpy()
    tensors = dict(params)
    tensors["input_mean"] = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    set_parameters(model, Parameters(tensors))
    after = model(torch.from_numpy(features)).detach().numpy()
    zero = model.body(torch.zeros(1, 3)).detach().numpy()
    np.testing.assert_allclose(after, zero)
    assert not np.allclose(before, after)
    assert {name for name, _ in model.named_parameters()}.isdisjoint({"input_mean", "input_std"})
