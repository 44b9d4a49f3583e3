"""Load a NumPy ``.npz`` archive of features and labels into a :class:`Dataset`.

Arrays are read with ``allow_pickle=False``: an archive from elsewhere must never run code while
loading. Every value is checked as for CSV and Parquet files, and errors name the file, the array
(as the column) and the 1-based row.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._columns import (
    check_finite_features,
    check_group_cells,
    did_you_mean,
    encode_labels,
    existing_file,
)
from sovereign_ai.data.dataset import Dataset
from sovereign_ai.errors import ConfigError, DataError

__all__ = ["load_npz"]

_NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def _reason(exc: Exception) -> str:
    # numpy's own message suggests allow_pickle=True; never pass that advice on.
    if "pickle" in str(exc).lower():
        return "it holds pickled Python objects, which are never loaded; save plain arrays"
    return str(exc)


def _read_npz_arrays(
    path: str | os.PathLike[str], file: Path, keys: Sequence[str]
) -> list[npt.NDArray[np.generic]]:
    try:
        loaded = np.load(file, allow_pickle=False)
    except _NPZ_READ_ERRORS as exc:
        raise DataError(f"{path}: is not a readable .npz archive ({_reason(exc)}).") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single .npy array; expected an .npz archive.")
    with loaded as archive:
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: has no array {missing[0]!r}{did_you_mean(missing[:1], archive.files)}; "
                f"the arrays are: {', '.join(map(repr, archive.files)) or 'none'}."
            )
        arrays: list[npt.NDArray[np.generic]] = []
        for key in keys:
            try:
                arrays.append(np.asarray(archive[key]))
            except _NPZ_READ_ERRORS as exc:
                raise DataError(f"{path}: array {key!r} cannot be read ({_reason(exc)}).") from exc
    return arrays


def _is_real(array: npt.NDArray[np.generic]) -> bool:
    return bool(np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))


def load_npz(
    path: str | os.PathLike[str],
    *,
    features_key: str = "x",
    labels_key: str = "y",
    groups_key: str | None = None,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """Load a NumPy ``.npz`` archive (as written by :func:`numpy.savez`).

    Parameters
    ----------
    path
        The archive. Pickled (object) arrays are refused, never unpickled.
    features_key
        The array of features, shape ``(num_examples, num_features)``, integer or floating;
        its columns are named ``feature_0``, ``feature_1``, ...
    labels_key
        The array of labels, shape ``(num_examples,)``: whole numbers, booleans or text,
        encoded as in :func:`load_csv`.
    groups_key
        An optional array of groups, shape ``(num_examples,)``, kept as text.

    Returns
    -------
    Dataset
        Named after the file stem.

    Raises
    ------
    DataError
        If the file is missing or not an .npz archive, lacks an array, or an array has the wrong
        shape or type, a non-finite value or a single class. The message names the file, the
        array (as the column) and the row.
    ConfigError
        If the keys are not distinct non-empty strings.
    """
    keys = [features_key, labels_key] + ([] if groups_key is None else [groups_key])
    if not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
        raise ConfigError(
            "The 'features_key', 'labels_key' and 'groups_key' parameters of load_npz must be "
            f"distinct non-empty strings; got {keys!r} instead."
        )
    file = existing_file(path, owner="load_npz")
    arrays = _read_npz_arrays(path, file, keys)
    features, labels_raw = arrays[0], arrays[1]
    if features.ndim != 2 or 0 in features.shape or not _is_real(features):
        raise DataError(
            f"{path}: array {features_key!r} must be a non-empty 2-D array of numbers; "
            f"got shape {features.shape} and dtype {features.dtype} instead."
        )
    num_examples = features.shape[0]

    def row_name(index: int) -> str:
        return f"row {index + 1}"

    values = features.astype(np.float64)  # (n, d)
    for column in range(values.shape[1]):
        check_finite_features(
            path, f"{features_key}[:, {column}]", values[:, column], row_name=row_name
        )
    for key, array in zip(keys[1:], arrays[1:], strict=True):
        if array.shape != (num_examples,):
            raise DataError(
                f"{path}: array {key!r} must have shape ({num_examples},) to match "
                f"{features_key!r}; got {array.shape} instead."
            )
    label_values: list[str] | npt.NDArray[np.float64]
    if _is_real(labels_raw):
        label_values = labels_raw.astype(np.float64)
    elif labels_raw.dtype.kind in "bU":
        label_values = [str(v).strip() for v in labels_raw.tolist()]
    else:
        raise DataError(
            f"{path}: array {labels_key!r} must hold text or whole numbers; "
            f"got dtype {labels_raw.dtype} instead."
        )
    labels, class_names = encode_labels(
        path, labels_key, label_values, row_name=row_name, classes=classes
    )
    groups = None
    if groups_key is not None:
        group_cells = [str(v).strip() for v in arrays[2].tolist()]
        groups = check_group_cells(path, groups_key, group_cells, row_name=row_name)
    return Dataset(
        name=file.stem,
        features=values.astype(np.float32),  # checked above to fit float32
        labels=labels,
        feature_names=tuple(f"feature_{j}" for j in range(values.shape[1])),
        class_names=class_names,
        groups=groups,
    )
