"""Standardise features to zero mean and unit variance, with statistics fitted on one node.

In a federation each node fits on its own training rows; the statistics are data about that node
and stay on it unless the node's policy lets them leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import FloatArray
from sovereign_ai.errors import ConfigError, DataError

__all__ = ["Standardizer"]

_EPS = float(np.finfo(np.float64).eps)


def _real_matrix(features: npt.ArrayLike, *, owner: str) -> npt.NDArray[np.float64]:
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] == 0:
        raise DataError(
            f"The 'features' parameter of {owner} must be a 2-D array with at least one row; "
            f"got shape {array.shape} instead."
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(
            f"The 'features' parameter of {owner} must hold real numbers; "
            f"got dtype {array.dtype} instead."
        )
    values = array.astype(np.float64)  # (n, d)
    if not np.isfinite(values).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
        bad = float(values[row, column])
        raise DataError(
            f"The 'features' parameter of {owner} must be finite; "
            f"got {bad!r} at index [{row}, {column}] instead."
        )
    return values


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature shift and scale: ``transform(x) = (x - mean) / scale``.

    Parameters
    ----------
    mean
        Shape ``(num_features,)``, finite.
    scale
        Shape ``(num_features,)``, finite and > 0; the standard deviation of each feature, or 1
        for a constant feature, which is thus only centred (to 0).

    Examples
    --------
    >>> s = Standardizer.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> s.transform(np.array([[2.0, 5.0]])).tolist()
    [[0.0, 0.0]]
    """

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0 or scale.shape != mean.shape:
            raise ConfigError(
                "The 'mean' and 'scale' parameters of Standardizer must be non-empty 1-D arrays "
                f"of one shape; got {mean.shape} and {scale.shape} instead."
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ConfigError(
                "The 'mean' and 'scale' parameters of Standardizer must be finite, 'scale' > 0; "
                f"got mean={mean.tolist()!r}, scale={scale.tolist()!r} instead."
            )
        for name, array in (("mean", mean), ("scale", scale)):
            frozen = array.copy()
            frozen.setflags(write=False)
            object.__setattr__(self, name, frozen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Standardizer):
            return NotImplemented
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.scale, other.scale)

    __hash__ = None  # type: ignore[assignment]  # holds arrays; compare by value, do not hash

    @property
    def num_features(self) -> int:
        """Number of features it was fitted on."""
        return int(self.mean.size)

    @classmethod
    def fit(cls, features: npt.ArrayLike) -> Standardizer:
        """Fit the mean and (population) standard deviation of each feature column.

        Parameters
        ----------
        features
            Shape ``(num_examples, num_features)``, finite real numbers, at least one row.

        Returns
        -------
        Standardizer
            Statistics computed and kept in float64: they are few, and float32 would shift
            large-valued columns off centre.

        Raises
        ------
        DataError
            If ``features`` is not a non-empty 2-D array of finite numbers.
        """
        values = _real_matrix(features, owner="Standardizer.fit")  # (n, d)
        mean = values.mean(axis=0)  # (d,)
        variance = values.var(axis=0)  # (d,), ddof=0
        # A constant column keeps a rounding-sized variance; treat anything within scikit-learn's
        # bound on that error (StandardScaler, `_is_constant_feature`) as exactly constant.
        n = values.shape[0]
        constant = variance <= n * _EPS * variance + (n * mean * _EPS) ** 2
        scale = np.where(constant, 1.0, np.sqrt(variance))
        return cls(mean=mean, scale=scale)

    def transform(self, features: npt.ArrayLike) -> FloatArray:
        """Return ``(features - mean) / scale`` as float32.

        Parameters
        ----------
        features
            Shape ``(num_examples, num_features)``, finite real numbers.

        Returns
        -------
        numpy.ndarray
            Same shape, float32, a new array.

        Raises
        ------
        DataError
            If ``features`` is not finite numbers of shape ``(n, num_features)``, or a value lies
            so far outside the fitted spread that it standardises beyond float32.
        """
        values = _real_matrix(features, owner="Standardizer.transform")  # (n, d)
        if values.shape[1] != self.num_features:
            raise DataError(
                f"The 'features' parameter of Standardizer.transform must have "
                f"{self.num_features} columns, as fitted; got {values.shape[1]} instead."
            )
        scaled = (values - self.mean) / self.scale  # (n, d), float64
        with np.errstate(over="ignore"):  # far outside the fitted spread: inf, refused below
            result = scaled.astype(np.float32)
        if not np.isfinite(result).all():
            row, column = (int(i) for i in np.argwhere(~np.isfinite(result))[0])
            raise DataError(
                f"The 'features' parameter of Standardizer.transform has a value at index "
                f"[{row}, {column}] that standardises beyond float32; got "
                f"{float(values[row, column])!r} instead."
            )
        return result
