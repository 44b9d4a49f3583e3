"""Turn the columns of a user's file into a :class:`Dataset`, whatever the file format.

The format readers (CSV, Parquet, NPZ in :mod:`sovereign_ai.data.files`) each produce cells or
arrays; this module chooses the columns, checks values and encodes labels the same way for all of
them, so that one table stored as CSV or as Parquet loads to an equal dataset. Every error names
the file, the column and, where a single value is at fault, the row.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._validation import Int64Array
from sovereign_ai.errors import ConfigError, DataError

__all__ = [
    "ColumnChoice",
    "RowNamer",
    "check_finite_features",
    "check_group_cells",
    "choose_columns",
    "encode_labels",
    "existing_file",
    "parse_number_cells",
]

# Describes the 0-based row `i` for a message, e.g. "row 3 (line 4)"; rows are 1-based for people.
RowNamer = Callable[[int], str]

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
# Narrower for labels: "none", "?" or "-" may well be a class ("none" of a symptom).
_MISSING_LABELS = frozenset({"", "na", "n/a", "nan", "null"})
_FLOAT32_MAX = float(np.finfo(np.float32).max)


_MAX_LISTED = 30  # a file with hundreds of columns should not bury the message


def _quote_list(names: Sequence[str]) -> str:
    listed = ", ".join(repr(n) for n in names[:_MAX_LISTED]) or "none"
    return listed + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


@dataclass(frozen=True)
class ColumnChoice:
    """The columns of a file to load, all checked to exist."""

    features: tuple[str, ...]
    label: str
    group: str | None


def choose_columns(
    path: str | os.PathLike[str],
    available: Sequence[str],
    *,
    label: str,
    features: Sequence[str] | None,
    group: str | None,
    owner: str,
) -> ColumnChoice:
    """Check the requested columns against the file's and fill in the default feature columns."""
    if not isinstance(label, str) or not label:
        raise ConfigError(
            f"The 'label' parameter of {owner} must be a non-empty column name; "
            f"got {label!r} instead."
        )
    if group is not None and (not isinstance(group, str) or group == label):
        raise ConfigError(
            f"The 'group' parameter of {owner} must be a column name other than the label "
            f"{label!r}; got {group!r} instead."
        )
    reserved = {label} if group is None else {label, group}
    if features is not None:
        if isinstance(features, str) or not all(isinstance(f, str) for f in features):
            raise ConfigError(
                f"The 'features' parameter of {owner} must be a sequence of column names; "
                f"got {features!r} instead."
            )
        chosen = tuple(features)
        if not chosen or len(set(chosen)) != len(chosen) or reserved & set(chosen):
            raise ConfigError(
                f"The 'features' parameter of {owner} must name at least one column, each once, "
                f"none of them the label or group column; got {chosen!r} instead."
            )
    else:
        chosen = tuple(c for c in available if c not in reserved)

    wanted = [*chosen, label] if group is None else [*chosen, label, group]
    missing = [c for c in wanted if c not in available]
    if missing:
        role = "label" if missing[0] == label else "group" if missing[0] == group else "feature"
        raise DataError(
            f"{path}: has no {role} column {missing[0]!r}"
            + (f" (missing: {_quote_list(missing)})" if len(missing) > 1 else "")
            + f"; the columns are: {_quote_list(available)}."
        )
    if not chosen:
        raise DataError(
            f"{path}: has no feature columns besides the label and group columns; "
            f"the columns are: {_quote_list(available)}."
        )
    return ColumnChoice(features=chosen, label=label, group=group)


def existing_file(path: str | os.PathLike[str], *, owner: str) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` if it names an existing regular file."""
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(
            f"The 'path' parameter of {owner} must be a str or os.PathLike; got {path!r} instead."
        )
    file = Path(path)
    if not file.exists():
        raise DataError(f"{path}: no such file.")
    if not file.is_file():
        raise DataError(f"{path}: is not a regular file.")
    return file


def _cell_problem(cell: str) -> str:
    lowered = cell.lower()
    if cell == "":
        return "an empty cell"
    if lowered in _MISSING_MARKERS:
        return "a missing value"
    if lowered.lstrip("+-") in {"inf", "infinity"}:
        return "not finite"
    return "not a number"


def parse_number_cells(
    path: str | os.PathLike[str], column: str, cells: Sequence[str], *, row_name: RowNamer
) -> npt.NDArray[np.float64]:
    """Parse stripped text cells as decimal numbers; refuse empty, NaN, infinite or other text."""
    for index, cell in enumerate(cells):
        if _NUMBER.fullmatch(cell) is None:
            raise DataError(
                f"{path}: column {column!r}, {row_name(index)}: expected a number; got "
                f"{cell!r} instead ({_cell_problem(cell)})."
            )
    return np.array([float(c) for c in cells], dtype=np.float64)


def check_finite_features(
    path: str | os.PathLike[str],
    column: str,
    values: npt.NDArray[np.float64],
    *,
    row_name: RowNamer,
) -> None:
    """Refuse NaN, infinite values and values float32 cannot hold."""
    bad = ~np.isfinite(values) | (np.abs(values) > _FLOAT32_MAX)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = float(values[row])
        problem = "a missing value" if math.isnan(value) else "not finite in float32"
        raise DataError(
            f"{path}: column {column!r}, {row_name(row)}: expected a finite number; got "
            f"{value!r} instead ({problem})."
        )


def _encode_numbers(
    path: str | os.PathLike[str],
    column: str,
    values: npt.NDArray[np.float64],
    *,
    row_name: RowNamer,
) -> tuple[Int64Array, tuple[str, ...]]:
    non_integral = ~np.isfinite(values) | (values != np.round(values))
    if non_integral.any():
        row = int(np.flatnonzero(non_integral)[0])
        raise DataError(
            f"{path}: label column {column!r}, {row_name(row)}: expected a whole-number or text "
            f"class label; got {float(values[row])!r} instead."
        )
    classes, labels = np.unique(values.astype(np.int64), return_inverse=True)
    return labels.astype(np.int64), tuple(str(int(c)) for c in classes)


def encode_labels(
    path: str | os.PathLike[str],
    column: str,
    values: Sequence[str] | npt.NDArray[np.float64],
    *,
    row_name: RowNamer,
    classes: Sequence[str] | None = None,
) -> tuple[Int64Array, tuple[str, ...]]:
    """Encode a label column as class indices and class names.

    Text labels are numbered in sorted order (``"benign" -> 0, "malignant" -> 1``). A column whose
    values are all whole numbers, as numbers or as text, keeps the sorted numbers as class names
    (``7, 3, 7 -> labels 1, 0, 1 with classes ("3", "7")``). A mix of text and numbers is text.
    Empty, ``NA``, ``N/A``, ``NaN`` and ``null`` cells (any case) are refused as missing. Fewer
    than two classes is refused: a classifier cannot be trained on it.

    With ``classes`` (the federation's class names, in order) every label is encoded as its
    position in that list instead, so all sites number classes alike; a site may then hold a
    single class, and a label outside the list is refused.
    """
    if classes is not None:
        return _encode_against(path, column, values, classes=classes, row_name=row_name)
    if isinstance(values, np.ndarray):
        labels, classes = _encode_numbers(path, column, values, row_name=row_name)
    else:
        for index, cell in enumerate(values):
            if cell.lower() in _MISSING_LABELS:
                raise DataError(
                    f"{path}: label column {column!r}, {row_name(index)}: expected a class label; "
                    f"got {cell!r} instead (a missing value)."
                )
        if all(_NUMBER.fullmatch(cell) for cell in values):
            numbers = np.array([float(c) for c in values], dtype=np.float64)
            labels, classes = _encode_numbers(path, column, numbers, row_name=row_name)
        else:
            text_classes, inverse = np.unique(np.array(values, dtype=np.str_), return_inverse=True)
            labels, classes = inverse.astype(np.int64), tuple(str(c) for c in text_classes)
    if len(classes) < 2:
        raise DataError(
            f"{path}: label column {column!r} holds only one class ({classes[0]!r}) in all "
            f"{len(labels)} rows; a classifier needs at least two."
        )
    return labels, classes


def _encode_against(
    path: str | os.PathLike[str],
    column: str,
    values: Sequence[str] | npt.NDArray[np.float64],
    *,
    classes: Sequence[str],
    row_name: RowNamer,
) -> tuple[Int64Array, tuple[str, ...]]:
    names = tuple(str(c) for c in classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            "The 'classes' parameter must list at least two distinct class names; "
            f"got {list(classes)!r} instead."
        )
    index = {name: position for position, name in enumerate(names)}
    cells = [_label_text(v) for v in values] if isinstance(values, np.ndarray) else list(values)
    labels = np.empty(len(cells), dtype=np.int64)
    for row, cell in enumerate(cells):
        position = index.get(cell.strip())
        if position is None:
            raise DataError(
                f"{path}: label column {column!r}, {row_name(row)}: {cell!r} is not one of the "
                f"federation's classes ({', '.join(map(repr, names))})."
            )
        labels[row] = position
    return labels, names


def _label_text(value: float) -> str:
    """A numeric label as the text a person would write: ``1.0`` -> ``"1"``."""
    return str(int(value)) if math.isfinite(value) and value == round(value) else repr(value)


def check_group_cells(
    path: str | os.PathLike[str], column: str, cells: Sequence[str], *, row_name: RowNamer
) -> npt.NDArray[np.str_]:
    """Refuse empty group cells and return the groups as a string array."""
    for index, cell in enumerate(cells):
        if cell == "":
            raise DataError(
                f"{path}: group column {column!r}, {row_name(index)}: expected a group name; "
                "got an empty cell instead."
            )
    return np.array(cells, dtype=np.str_)
