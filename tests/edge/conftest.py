"""Fixtures: models trained briefly on the bundled datasets, with their scaling inside."""

from __future__ import annotations

import functools

import numpy as np
import torch

from sovereign_ai.data import Dataset, Standardizer, load_builtin, train_test_split
from sovereign_ai.learning import StandardizedModel, TrainConfig, create_model, train


@functools.cache
def split(dataset: str) -> tuple[Dataset, Dataset]:
    """(train, holdout) of a bundled dataset, stratified, 30 % held out."""
    return train_test_split(load_builtin(dataset), test_fraction=0.3, seed=0)


@functools.cache
def trained(model: str, dataset: str, *, epochs: int = 10, **options: object) -> StandardizedModel:
    """``model`` trained for ``epochs`` on the train split, scaling from the train rows.

    Cached: callers must not change it (prune and export work on copies).
    """
    rows, _ = split(dataset)
    net = create_model(
        model, num_features=rows.num_features, num_classes=rows.num_classes, seed=0, **options
    )
    scaling = Standardizer.fit(rows.features)  # constant columns keep scale 1
    with torch.no_grad():
        net.input_mean.copy_(torch.from_numpy(scaling.mean.astype(np.float32)))
        net.input_std.copy_(torch.from_numpy(scaling.scale.astype(np.float32)))
    config = TrainConfig(local_epochs=epochs, learning_rate=0.01, optimizer="adam")
    train(net, rows.features, rows.labels, config=config, seed=0)
    return net.eval()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:  # type: ignore[type-arg]
    return float(np.mean(logits.argmax(axis=1) == labels))
