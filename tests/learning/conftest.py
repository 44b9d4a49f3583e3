"""Small, separable classification problems shared by the learning tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

Examples = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def make_blobs(
    *, num_examples: int = 120, num_features: int = 64, num_classes: int = 3, seed: int = 0
) -> Examples:
    """Gaussian blobs around well-separated class centres; float32 features, int64 labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(num_classes, num_features))  # (C, d)
    labels = np.arange(num_examples, dtype=np.int64) % num_classes  # (n,)
    rng.shuffle(labels)
    noise = rng.normal(size=(num_examples, num_features))  # (n, d)
    features = (centres[labels] + noise).astype(np.float32)  # (n, d)
    return features, labels


@pytest.fixture
def blobs() -> Examples:
    """120 examples, 64 features (8x8, so every zoo model fits), 3 classes."""
    return make_blobs()


@pytest.fixture(name="make_blobs")
def make_blobs_fixture() -> Callable[..., Examples]:
    """The blob generator itself, for tests that need other sizes."""
    return make_blobs
