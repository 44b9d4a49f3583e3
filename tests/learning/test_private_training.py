"""DP-SGD on a node: the schedule its accounting rests on, the per-example clip, the noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sovereign_ai.errors import ConfigError
from sovereign_ai.learning import (
    DpSgdConfig,
    TrainConfig,
    create_model,
    dpsgd_schedule,
    get_parameters,
    train_private,
)


@given(
    n=st.integers(1, 10_000), batch=st.integers(1, 5_000), epochs=st.integers(1, 20)
)  # fmt: skip
def test_the_schedule_samples_each_example_at_batch_over_n_for_an_epoch_of_steps(
    n: int, batch: int, epochs: int
) -> None:
    schedule = dpsgd_schedule(num_examples=n, batch_size=batch, local_epochs=epochs)
    assert schedule.sampling_rate == min(1.0, batch / n)
    assert schedule.steps == epochs * math.ceil(n / batch)
    # one epoch visits each example once in expectation
    assert schedule.sampling_rate * schedule.steps / epochs >= 1.0 - 1e-12


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, True, "1"])
def test_noise_and_clip_must_be_finite_positive_numbers(value: Any) -> None:
    with pytest.raises(ConfigError, match="DP-SGD"):
        DpSgdConfig(noise_multiplier=value, max_grad_norm=1.0)
    with pytest.raises(ConfigError, match="DP-SGD"):
        DpSgdConfig(noise_multiplier=1.0, max_grad_norm=value)


def _delta(model: nn.Module, before: np.ndarray) -> np.ndarray:
    return get_parameters(model).flatten().astype(np.float64) - before


def test_one_full_batch_step_moves_the_model_at_most_lr_times_the_clip(blobs: Any) -> None:
    features, labels = blobs
    features = features * 1e4  # huge gradients: only the per-example clip bounds the step
    model = create_model("mlp", num_features=64, num_classes=3, seed=0)
    before = get_parameters(model).flatten().astype(np.float64)
    config = TrainConfig(local_epochs=1, batch_size=len(labels), learning_rate=0.5)  # q = 1
    report = train_private(
        model, features, labels, config=config, privacy=DpSgdConfig(1e-9, max_grad_norm=0.1)
    )
    assert report.steps == 1
    norm = float(np.linalg.norm(_delta(model, before)))
    assert 0 < norm <= 0.5 * 0.1 * (1 + 1e-5)


def test_the_noise_has_the_standard_deviation_of_its_multiplier(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("mlp", num_features=64, num_classes=3, seed=0)
    before = get_parameters(model).flatten().astype(np.float64)
    clip, z, lr = 1.0, 100.0, 0.012  # the clipped gradients are negligible beside z * clip
    config = TrainConfig(local_epochs=1, batch_size=len(labels), learning_rate=lr)
    train_private(model, features, labels, config=config, privacy=DpSgdConfig(z, clip))
    delta = _delta(model, before)
    expected = lr * z * clip / len(labels)  # noise on the sum, over the expected batch
    assert delta.size > 1000
    assert float(np.std(delta)) == pytest.approx(expected, rel=0.1)


def test_the_noise_does_not_come_from_any_seed(blobs: Any) -> None:
    features, labels = blobs
    config = TrainConfig(local_epochs=1, batch_size=32)
    finals = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model("logreg", num_features=64, num_classes=3, seed=0)
        train_private(model, features, labels, config=config, privacy=DpSgdConfig(1.0, 1.0))
        finals.append(get_parameters(model).flatten())
    assert not np.array_equal(finals[0], finals[1])


def test_the_model_leaves_without_opacus_hooks_or_per_sample_gradients(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("cnn", num_features=64, num_classes=3, seed=0)
    train_private(
        model, features, labels, config=TrainConfig(batch_size=32), privacy=DpSgdConfig(1.0, 1.0)
    )
    for module in model.modules():
        assert not module._forward_hooks
        assert not module._backward_hooks
    for param in model.parameters():
        assert not hasattr(param, "grad_sample")
        assert param.grad is None


def test_tiny_data_with_empty_poisson_batches_still_trains(make_blobs: Any) -> None:
    features, labels = make_blobs(num_examples=3, num_features=4, num_classes=2)
    model = create_model("logreg", num_features=4, num_classes=2, seed=0)
    before = get_parameters(model).flatten().astype(np.float64)
    config = TrainConfig(local_epochs=20, batch_size=1)  # q = 1/3: some batches are empty
    report = train_private(model, features, labels, config=config, privacy=DpSgdConfig(1.0, 1.0))
    assert report.steps == 60
    assert np.isfinite(_delta(model, before)).all()
    assert np.any(_delta(model, before) != 0)


def test_fedprox_and_batch_norm_are_refused(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("logreg", num_features=64, num_classes=3, seed=0)
    with pytest.raises(ConfigError, match="proximal term"):
        train_private(
            model,
            features,
            labels,
            config=TrainConfig(proximal_mu=0.1),
            privacy=DpSgdConfig(1.0, 1.0),
        )
    normed = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match="batch normalisation"):
        train_private(normed, features, labels, config=TrainConfig(), privacy=DpSgdConfig(1.0, 1.0))


def test_a_diverging_run_fails_closed(blobs: Any) -> None:
    features, labels = blobs
    model = create_model("mlp", num_features=64, num_classes=3, seed=0)
    config = TrainConfig(local_epochs=3, batch_size=8, learning_rate=1e30)
    with pytest.raises(ConfigError, match="diverged"):
        train_private(model, features, labels, config=config, privacy=DpSgdConfig(1e3, 1e3))
