"""A labelled, tabular classification dataset held in memory on one node.

A :class:`Dataset` is what every loader returns and what every partitioner and trainer consumes:
float32 features, int64 class indices, the names of both, and optionally a group per row (such as
the hospital a record came from) for natural partitioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import FloatArray
from sovereign_ai.data._validation import Int64Array, check_seed
from sovereign_ai.errors import ConfigError, DataError

__all__ = ["Dataset", "Int64Array", "train_test_split"]


_ScalarT = TypeVar("_ScalarT", bound=np.generic)


def _frozen_copy(array: npt.NDArray[_ScalarT]) -> npt.NDArray[_ScalarT]:
    copy = np.array(array, copy=True, order="C")
    copy.setflags(write=False)
    return copy


def _check_names(names: Sequence[str], *, field: str, expected: int) -> tuple[str, ...]:
    names = tuple(names)
    if len(names) != expected:
        raise DataError(
            f"The {field!r} parameter of Dataset must hold {expected} name(s); "
            f"got {len(names)} instead."
        )
    if not all(isinstance(n, str) and n for n in names):
        raise DataError(
            f"The {field!r} parameter of Dataset must hold non-empty strings; "
            f"got {names!r} instead."
        )
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"The {field!r} parameter of Dataset must hold unique names; "
            f"got duplicates {duplicates!r} instead."
        )
    return names


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and class labels of one tabular classification dataset.

    The arrays are copied into read-only, C-contiguous arrays at construction, so neither the
    caller nor a trainer can change a dataset after it was validated.

    Parameters
    ----------
    name
        A short name for logs and summaries, e.g. the file stem.
    features
        Shape ``(num_examples, num_features)``; any real dtype, stored as float32. Every value
        must be finite.
    labels
        Shape ``(num_examples,)``; integer class indices in ``[0, len(class_names))``, stored as
        int64.
    feature_names
        One unique name per feature column.
    class_names
        One unique name per class; ``labels`` index into it. A class may have no rows (a node's
        subset often lacks some classes).
    groups
        Optional shape ``(num_examples,)``; the group of each row (e.g. a hospital id), stored as
        strings. Used by natural partitioning.

    Raises
    ------
    DataError
        If shapes disagree, a feature is not finite, a label is out of range, a name is empty or
        repeated, or there are no rows.
    """

    name: str
    features: FloatArray
    labels: Int64Array
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    groups: npt.NDArray[np.str_] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DataError(
                f"The 'name' parameter of Dataset must be a non-empty string; "
                f"got {self.name!r} instead."
            )
        features = np.asarray(self.features)
        if features.ndim != 2 or features.shape[0] == 0:
            raise DataError(
                f"The 'features' parameter of Dataset {self.name!r} must be a 2-D array with at "
                f"least one row; got shape {features.shape} instead."
            )
        if not (
            np.issubdtype(features.dtype, np.integer) or np.issubdtype(features.dtype, np.floating)
        ):
            raise DataError(
                f"The 'features' parameter of Dataset {self.name!r} must hold real numbers; "
                f"got dtype {features.dtype} instead."
            )
        with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
            features = features.astype(np.float32)  # (n, d)
        finite = np.isfinite(features)
        if not finite.all():
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            raise DataError(
                f"The 'features' parameter of Dataset {self.name!r} must be finite (in float32); "
                f"got {float(features[row, column])!r} at index [{row}, {column}] instead."
            )
        num_examples, num_features = features.shape

        labels = np.asarray(self.labels)
        if labels.shape != (num_examples,):
            raise DataError(
                f"The 'labels' parameter of Dataset {self.name!r} must have shape "
                f"({num_examples},); got {labels.shape} instead."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"The 'labels' parameter of Dataset {self.name!r} must hold integer class indices; "
                f"got dtype {labels.dtype} instead."
            )
        feature_names = _check_names(
            self.feature_names, field="feature_names", expected=num_features
        )
        class_names = tuple(self.class_names)
        if not class_names:
            raise DataError(
                f"The 'class_names' parameter of Dataset {self.name!r} must name at least one "
                "class; got () instead."
            )
        class_names = _check_names(class_names, field="class_names", expected=len(class_names))
        out_of_range = (labels < 0) | (labels >= len(class_names))
        if out_of_range.any():
            row = int(np.flatnonzero(out_of_range)[0])
            raise DataError(
                f"The 'labels' parameter of Dataset {self.name!r} must lie in "
                f"[0, {len(class_names)}); got {int(labels[row])!r} at index {row} instead."
            )

        groups: npt.NDArray[np.str_] | None = None
        if self.groups is not None:
            raw_groups = np.asarray(self.groups)
            if raw_groups.shape != (num_examples,):
                raise DataError(
                    f"The 'groups' parameter of Dataset {self.name!r} must have shape "
                    f"({num_examples},); got {raw_groups.shape} instead."
                )
            groups = _frozen_copy(raw_groups.astype(np.str_))

        object.__setattr__(self, "features", _frozen_copy(features))
        object.__setattr__(self, "labels", _frozen_copy(labels.astype(np.int64)))
        object.__setattr__(self, "feature_names", feature_names)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "groups", groups)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        same_groups = (self.groups is None and other.groups is None) or (
            self.groups is not None
            and other.groups is not None
            and np.array_equal(self.groups, other.groups)
        )
        return (
            self.name == other.name
            and self.feature_names == other.feature_names
            and self.class_names == other.class_names
            and np.array_equal(self.features, other.features)
            and np.array_equal(self.labels, other.labels)
            and same_groups
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays; compare by value, do not hash

    def __repr__(self) -> str:
        groups = "" if self.groups is None else f", groups={len(np.unique(self.groups))}"
        return (
            f"Dataset(name={self.name!r}, num_examples={self.num_examples}, "
            f"num_features={self.num_features}, num_classes={self.num_classes}{groups})"
        )

    @property
    def num_examples(self) -> int:
        """Number of rows."""
        return int(self.features.shape[0])

    @property
    def num_features(self) -> int:
        """Number of feature columns."""
        return int(self.features.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes named in ``class_names`` (present in the rows or not)."""
        return len(self.class_names)

    def subset(self, indices: npt.ArrayLike) -> Dataset:
        """Return the rows at ``indices``, in that order, with the same names.

        Parameters
        ----------
        indices
            A non-empty 1-D array of integer row indices in ``[0, num_examples)``, such as one
            node's share from a partitioner.

        Returns
        -------
        Dataset
            A new dataset; ``class_names`` is kept whole so that label indices stay comparable
            across nodes.

        Raises
        ------
        ConfigError
            If ``indices`` is empty, not 1-D integers, or out of range.
        """
        rows = np.asarray(indices)
        if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer):
            raise ConfigError(
                "The 'indices' parameter of Dataset.subset must be a non-empty 1-D array of "
                f"integers; got shape {rows.shape} and dtype {rows.dtype} instead."
            )
        if int(rows.min()) < 0 or int(rows.max()) >= self.num_examples:
            raise ConfigError(
                "The 'indices' parameter of Dataset.subset must lie in "
                f"[0, {self.num_examples}); got values from {int(rows.min())} to "
                f"{int(rows.max())} instead."
            )
        return Dataset(
            name=self.name,
            features=self.features[rows],
            labels=self.labels[rows],
            feature_names=self.feature_names,
            class_names=self.class_names,
            groups=None if self.groups is None else self.groups[rows],
        )


def train_test_split(
    dataset: Dataset, *, test_fraction: float, seed: int, stratify: bool = True
) -> tuple[Dataset, Dataset]:
    """Split a dataset into a training and a test part.

    Parameters
    ----------
    dataset
        The dataset to split.
    test_fraction
        Share of rows for the test part, in ``(0, 1)``; the test part gets
        ``ceil(test_fraction * num_examples)`` rows, as in scikit-learn.
    seed
        Integer in ``[0, 2**32)``; the same seed gives the same split.
    stratify
        Keep each class's share equal in both parts. Needs at least two rows of every class
        present and at least as many test (and training) rows as classes present.

    Returns
    -------
    tuple of Dataset
        ``(train, test)``; each keeps the original row order.

    Raises
    ------
    ConfigError
        If ``test_fraction`` or ``seed`` is invalid, or either part would be empty.
    DataError
        If ``stratify`` is on and the labels cannot be stratified.
    """
    owner = "train_test_split"
    seed = check_seed(seed, owner=owner)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float | np.integer | np.floating)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ConfigError(
            f"The 'test_fraction' parameter of {owner} must be a number in (0, 1); "
            f"got {test_fraction!r} instead."
        )
    num_test = int(np.ceil(float(test_fraction) * dataset.num_examples))
    num_train = dataset.num_examples - num_test
    if num_train < 1:
        raise ConfigError(
            f"The 'test_fraction' parameter of {owner} leaves no training rows out of "
            f"{dataset.num_examples}; got {test_fraction!r} instead."
        )
    present, counts = np.unique(dataset.labels, return_counts=True)
    if stratify:
        if int(counts.min()) < 2:
            rare = dataset.class_names[int(present[np.argmin(counts)])]
            raise DataError(
                f"Dataset {dataset.name!r} cannot be split with stratify=True: class {rare!r} has "
                "only 1 row; pass stratify=False or use more data."
            )
        if min(num_test, num_train) < len(present):
            raise DataError(
                f"Dataset {dataset.name!r} cannot be split with stratify=True: {num_test} test "
                f"and {num_train} training rows cannot each hold all {len(present)} classes; "
                "change 'test_fraction' or pass stratify=False."
            )
    # Imported here: scikit-learn takes about a second to import, a cost only splitting needs.
    from sklearn.model_selection import train_test_split as sklearn_split

    try:
        train_rows, test_rows = sklearn_split(
            np.arange(dataset.num_examples),
            test_size=num_test,
            random_state=seed,
            stratify=dataset.labels if stratify else None,
        )
    except ValueError as exc:  # translate anything sklearn still refuses
        raise DataError(f"Dataset {dataset.name!r} cannot be split: {exc}") from exc
    return dataset.subset(np.sort(train_rows)), dataset.subset(np.sort(test_rows))
