"""Fixtures shared by the data package's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sovereign_ai.data import Dataset

WriteText = Callable[[str, str], Path]


@pytest.fixture
def write_text(tmp_path: Path) -> WriteText:
    """Write ``text`` to ``tmp_path / name`` (UTF-8, newlines as given) and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        return path

    return write


@pytest.fixture
def small_dataset() -> Dataset:
    """Six rows, two features, three classes, two groups."""
    return Dataset(
        name="small",
        features=np.arange(12, dtype=np.float32).reshape(6, 2),
        labels=np.array([0, 1, 2, 0, 1, 2]),
        feature_names=("a", "b"),
        class_names=("x", "y", "z"),
        groups=np.array(["h1", "h1", "h2", "h2", "h2", "h1"]),
    )
