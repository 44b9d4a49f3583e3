"""Tests for moving weights between torch models and Parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from sovereign_ai.core import Parameters
from sovereign_ai.errors import ConfigError, SerializationError
from sovereign_ai.learning import TrainConfig, create_model, get_parameters, set_parameters, train


def _model(seed: int = 0) -> nn.Module:
    return create_model("mlp", num_features=6, num_classes=3, seed=seed, hidden=(5,))


def test_get_parameters_follows_state_dict_order_as_float32() -> None:
    model = _model()
    parameters = get_parameters(model)
    assert list(parameters) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert parameters[name].dtype == np.float32
        assert np.array_equal(parameters[name], tensor.numpy())


def test_get_parameters_is_a_snapshot(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    before = get_parameters(model)
    kept = {name: array.copy() for name, array in before.items()}
    train(model, features, labels, config=TrainConfig(), seed=0)
    assert all(np.array_equal(before[name], kept[name]) for name in kept)
    assert get_parameters(model) != before


def test_round_trip_through_bytes_reproduces_the_model() -> None:
    source, target = _model(seed=1), _model(seed=2)
    inputs = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(source(inputs), target(inputs))

    set_parameters(target, Parameters.from_bytes(get_parameters(source).to_bytes()))

    assert get_parameters(target) == get_parameters(source)
    assert torch.equal(target(inputs), source(inputs))


def test_set_parameters_accepts_any_name_order() -> None:
    source, target = _model(seed=1), _model(seed=2)
    shuffled = Parameters(dict(reversed(list(get_parameters(source).items()))))
    set_parameters(target, shuffled)
    assert get_parameters(target) == get_parameters(source)


def test_set_parameters_does_not_alias_the_parameters() -> None:
    model = _model()
    parameters = get_parameters(model)
    set_parameters(model, parameters)
    with torch.no_grad():
        next(iter(model.parameters())).add_(1.0)
    assert get_parameters(model) != parameters


def test_wrong_shape_is_refused_naming_the_tensor_and_changes_nothing() -> None:
    model = _model()
    before = get_parameters(model)
    tensors = {name: np.zeros_like(array) for name, array in before.items()}
    tensors["body.output.weight"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(SerializationError, match=r"'body\.output\.weight'.*\(3, 5\).*\(3, 4\)"):
        set_parameters(model, Parameters(tensors))
    assert get_parameters(model) == before


def test_missing_and_unexpected_names_are_refused() -> None:
    model = _model()
    tensors = dict(get_parameters(model))
    del tensors["body.hidden_0.bias"]
    tensors["extra"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(SerializationError, match=r"missing \['body.hidden_0.bias'\].*\['extra'\]"):
        set_parameters(model, Parameters(tensors))


def test_parameters_of_another_model_are_refused() -> None:
    with pytest.raises(SerializationError, match="The parameters do not match the model"):
        set_parameters(
            create_model("logreg", num_features=6, num_classes=3, seed=0), get_parameters(_model())
        )


def test_non_finite_values_are_refused() -> None:
    model = _model()
    tensors = dict(get_parameters(model))
    tensors["body.output.bias"] = np.array([0.0, np.nan, 0.0], dtype=np.float32)
    with pytest.raises(SerializationError, match=r"'body\.output\.bias'"):
        set_parameters(model, Parameters(tensors))


def test_set_parameters_requires_parameters() -> None:
    model = _model()
    with pytest.raises(SerializationError, match="'parameters'"):
        set_parameters(model, dict(get_parameters(model)))  # type: ignore[arg-type]


def test_integer_state_cannot_be_exported() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(ConfigError, match="num_batches_tracked"):
        get_parameters(model)
