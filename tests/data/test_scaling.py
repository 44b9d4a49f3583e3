"""Tests for :mod:`sovereign_ai.data.scaling`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.data import Standardizer
from sovereign_ai.errors import ConfigError, DataError


def test_fit_then_transform_centres_and_scales() -> None:
    features = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    standardizer = Standardizer.fit(features)
    assert standardizer.num_features == 2
    assert standardizer.mean.tolist() == [3.0, 30.0]
    np.testing.assert_allclose(standardizer.scale, [np.sqrt(8 / 3), np.sqrt(800 / 3)], rtol=1e-6)
    scaled = standardizer.transform(features)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-5)


def test_constant_columns_are_centred_not_divided_by_zero() -> None:
    # 0.1 is not exact in binary, so its computed variance is rounding noise, not zero.
    features = np.array([[0.1, 7.0, 1.0], [0.1, 7.0, 2.0], [0.1, 7.0, 3.0]])
    standardizer = Standardizer.fit(features)
    assert standardizer.scale[:2].tolist() == [1.0, 1.0]
    scaled = standardizer.transform(features)
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled[:, :2], 0.0, atol=1e-6)


def test_tiny_but_real_spread_is_kept() -> None:
    features = np.array([[1e-20], [3e-20]])
    assert Standardizer.fit(features).transform(features)[:, 0].tolist() == [-1.0, 1.0]


def test_integer_features_and_a_single_row_work() -> None:
    standardizer = Standardizer.fit(np.array([[4, 5]]))
    assert standardizer.transform(np.array([[6, 5]])).tolist() == [[2.0, 0.0]]


@settings(max_examples=50, deadline=None)
@given(
    features=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 30), st.integers(1, 5)),
        # Values float32 features can hold: below ~1e-30 a column's spread is lost to rounding.
        elements=st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-30),
    )
)
def test_transformed_training_data_has_zero_mean_and_unit_or_zero_spread(
    features: np.ndarray[Any, np.dtype[np.float64]],
) -> None:
    scaled = Standardizer.fit(features).transform(features).astype(np.float64)
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-3)
    spread = scaled.std(axis=0)
    assert np.all((np.abs(spread - 1.0) < 1e-3) | (spread < 1e-3))


def test_parameters_are_read_only_and_compared_by_value() -> None:
    standardizer = Standardizer(mean=np.array([0.0, 1.0]), scale=np.array([1.0, 2.0]))
    assert standardizer == Standardizer.fit(np.array([[-1.0, -1.0], [1.0, 3.0]]))
    assert standardizer != Standardizer(mean=np.array([0.0, 1.0]), scale=np.array([1.0, 3.0]))
    with pytest.raises(ValueError, match="read-only"):
        standardizer.mean[0] = 5.0


@pytest.mark.parametrize(
    ("mean", "scale"),
    [([0.0], [0.0]), ([0.0], [-1.0]), ([np.nan], [1.0]), ([0.0, 1.0], [1.0]), ([], [])],
)
def test_invalid_parameters_are_refused(mean: list[float], scale: list[float]) -> None:
    with pytest.raises(ConfigError, match="parameters of Standardizer"):
        Standardizer(mean=np.array(mean), scale=np.array(scale))


@pytest.mark.parametrize(
    ("features", "pattern"),
    [
        (np.ones(3), "2-D array"),
        (np.ones((0, 2)), "at least one row"),
        (np.array([["a"]]), "real numbers"),
        (np.array([[1.0, np.inf]]), r"got inf at index \[0, 1\]"),
    ],
)
def test_fit_refuses_bad_features(features: Any, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        Standardizer.fit(features)


def test_transform_refuses_a_different_number_of_columns() -> None:
    standardizer = Standardizer.fit(np.eye(3))
    with pytest.raises(DataError, match="must have 3 columns, as fitted; got 2 instead"):
        standardizer.transform(np.ones((1, 2)))


def test_transform_refuses_values_that_standardise_beyond_float32() -> None:
    standardizer = Standardizer.fit(np.array([[0.0], [1e-30]]))
    with pytest.raises(DataError, match=r"index \[1, 0\] that standardises beyond float32"):
        standardizer.transform(np.array([[0.0], [1e10]]))
