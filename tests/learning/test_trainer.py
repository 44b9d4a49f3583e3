"""Tests for local training: configuration, determinism, thread safety and FedProx."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from sovereign_ai.core import Parameters
from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.learning import (
    TrainConfig,
    TrainReport,
    create_model,
    evaluate,
    get_parameters,
    train,
)

FAST = TrainConfig(local_epochs=2, batch_size=16)


def _train(
    name: str, examples: Any, *, seed: int, config: TrainConfig = FAST
) -> tuple[Parameters, TrainReport]:
    features, labels = examples
    model = create_model(name, num_features=64, num_classes=3, seed=0)
    report = train(model, features, labels, config=config, seed=seed)
    return get_parameters(model), report


# --- TrainConfig -------------------------------------------------------------------------------


def test_defaults() -> None:
    config = TrainConfig()
    assert (config.local_epochs, config.batch_size, config.learning_rate) == (1, 32, 0.05)
    assert (config.optimizer, config.momentum, config.weight_decay, config.proximal_mu) == (
        "sgd",
        0.0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_epochs", 0),
        ("local_epochs", 1.5),
        ("local_epochs", True),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", -0.1),
        ("learning_rate", math.inf),
        ("learning_rate", "0.1"),
        ("optimizer", "rmsprop"),
        ("momentum", 1.0),
        ("momentum", -0.5),
        ("weight_decay", -1e-4),
        ("weight_decay", math.nan),
        ("proximal_mu", -0.01),
        ("proximal_mu", False),
    ],
)
def test_invalid_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"The '{field}' parameter of TrainConfig must be .*"):
        TrainConfig(**{field: value})


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="got 0 instead"):
        TrainConfig(batch_size=0)


def test_adam_refuses_momentum() -> None:
    with pytest.raises(ConfigError, match=r"'momentum'.*adam"):
        TrainConfig(optimizer="adam", momentum=0.9)


def test_integers_given_for_floats_are_stored_as_floats() -> None:
    config = TrainConfig(learning_rate=1, proximal_mu=2)
    assert isinstance(config.learning_rate, float)
    assert isinstance(config.proximal_mu, float)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TrainConfig().batch_size = 2  # type: ignore[misc]


# --- Reports -----------------------------------------------------------------------------------


def test_report_counts_examples_and_steps(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    report = train(
        model, features, labels, config=TrainConfig(local_epochs=3, batch_size=50), seed=0
    )
    assert report.num_examples == 120
    assert report.steps == 3 * 3  # ceil(120 / 50) = 3 batches, the last one of 20
    assert report.accuracy == evaluate(model, features, labels).accuracy
    assert report.to_metrics() == {"loss": report.loss, "accuracy": report.accuracy, "steps": 9.0}


def test_loss_of_the_last_epoch_falls_with_more_epochs(blobs: Any) -> None:
    _, one = _train("logreg", blobs, seed=0, config=TrainConfig(local_epochs=1, batch_size=16))
    _, five = _train("logreg", blobs, seed=0, config=TrainConfig(local_epochs=5, batch_size=16))
    assert 0 < five.loss < one.loss


def test_adam_and_momentum_train(blobs: Any) -> None:
    for config in (
        TrainConfig(optimizer="adam", learning_rate=0.01, local_epochs=3, weight_decay=1e-4),
        TrainConfig(momentum=0.9, learning_rate=0.01, local_epochs=3),
    ):
        _, report = _train("mlp", blobs, seed=0, config=config)
        assert report.accuracy >= 0.9


# --- Determinism and threads -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_same_seed_is_bit_identical(name: str, blobs: Any) -> None:
    first, first_report = _train(name, blobs, seed=3)
    second, second_report = _train(name, blobs, seed=3)
    assert first == second
    assert first_report == second_report


def test_other_seed_shuffles_differently(blobs: Any) -> None:
    assert _train("logreg", blobs, seed=3)[0] != _train("logreg", blobs, seed=4)[0]


def test_training_leaves_the_global_generator_alone(blobs: Any) -> None:
    state = torch.get_rng_state()
    _train("mlp", blobs, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_concurrent_training_matches_sequential(name: str, blobs: Any) -> None:
    seeds = [11, 12, 13, 14]
    sequential = [_train(name, blobs, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=len(seeds)) as pool:
        concurrent = list(pool.map(lambda s: _train(name, blobs, seed=s), seeds))
    assert concurrent == sequential
    assert len({id(p) for p, _ in concurrent}) == len(seeds)


def test_caller_arrays_are_not_modified(blobs: Any) -> None:
    features, labels = blobs
    kept = features.copy(), labels.copy()
    _train("logreg", blobs, seed=0)
    assert np.array_equal(features, kept[0])
    assert np.array_equal(labels, kept[1])


# --- FedProx -----------------------------------------------------------------------------------


def test_proximal_term_keeps_weights_near_the_start(blobs: Any) -> None:
    start = get_parameters(create_model("mlp", num_features=64, num_classes=3, seed=0)).flatten()

    def drift(mu: float) -> float:
        config = TrainConfig(local_epochs=3, batch_size=16, proximal_mu=mu)
        trained, _ = _train("mlp", blobs, seed=0, config=config)
        return float(np.linalg.norm(trained.flatten() - start))

    plain, mild, strong = drift(0.0), drift(1.0), drift(10.0)
    # Measured: 0.95, 0.68 and 0.19 with these settings.
    assert strong < mild < plain
    assert strong < 0.3 * plain


def test_zero_mu_is_plain_training(blobs: Any) -> None:
    plain = _train("mlp", blobs, seed=5, config=TrainConfig(local_epochs=1))
    with_zero = _train("mlp", blobs, seed=5, config=TrainConfig(local_epochs=1, proximal_mu=0))
    assert plain == with_zero


# --- Refusals ----------------------------------------------------------------------------------


def _logreg() -> torch.nn.Module:
    return create_model("logreg", num_features=4, num_classes=3, seed=0)


@pytest.mark.parametrize(
    ("features", "labels", "match"),
    [
        (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "at least one example"),
        (np.zeros(4, np.float32), np.zeros(4, np.int64), "2-D"),
        (np.zeros((3, 4), np.float32), np.zeros((3, 1), np.int64), "1-D"),
        (np.zeros((3, 4), np.float32), np.zeros(2, np.int64), "one label per example"),
        (np.full((3, 4), np.nan, np.float32), np.zeros(3, np.int64), "NaN"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float32), "integer"),
        (np.zeros((3, 4), np.float32), np.array([0, 1, 3]), "label 3"),
        (np.zeros((3, 4), np.float32), np.array([0, -1, 2]), ">= 0"),
        (np.zeros((3, 5), np.float32), np.zeros(3, np.int64), r"\(n, 5\)"),
        (np.array([["a"] * 4] * 3), np.zeros(3, np.int64), "numeric"),
    ],
)
def test_unusable_examples_raise_data_error(features: Any, labels: Any, match: str) -> None:
    model = _logreg()
    before = get_parameters(model)
    with pytest.raises(DataError, match=match):
        train(model, features, labels, config=TrainConfig(), seed=0)
    assert get_parameters(model) == before


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, True])
def test_bad_seed_is_refused(seed: Any, blobs: Any) -> None:
    with pytest.raises(ConfigError, match="'seed'"):
        train(_logreg(), *blobs, config=TrainConfig(), seed=seed)


def test_config_must_be_a_train_config(blobs: Any) -> None:
    with pytest.raises(ConfigError, match="'config'"):
        train(_logreg(), *blobs, config={"local_epochs": 1}, seed=0)  # type: ignore[arg-type]


def test_divergence_fails_closed(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    with pytest.raises(ConfigError, match="diverged"):
        train(model, features * 1e5, labels, config=TrainConfig(learning_rate=1e30), seed=0)


def test_model_without_trainable_parameters_is_refused(blobs: Any) -> None:
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        train(model, *blobs, config=TrainConfig(), seed=0)


def test_training_leaves_no_gradient_buffers_behind() -> None:
    from sovereign_ai.learning import TrainConfig, create_model, train

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    model = create_model("mlp", num_features=4, num_classes=2, seed=0, hidden=(8,))
    train(model, features, labels, config=TrainConfig(), seed=0)
    assert all(p.grad is None for p in model.parameters())
