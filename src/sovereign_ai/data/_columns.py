"""Turn the columns of a user's file into a :class:`Dataset`, whatever the file format.

The format readers (CSV, Parquet, NPZ in :mod:`sovereign_ai.data.files`) each produce cells or
arrays; this module chooses the columns, checks values and encodes labels the same way for all of
them, so that one table stored as CSV or as Parquet loads to an equal dataset. Every error names
the file, the column and, where a single value is at fault, the row.
"""

from __future__ import annotations

import difflib
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
    "closest_name",
    "did_you_mean",
    "encode_labels",
    "existing_file",
    "feature_cell_problem",
    "is_missing_label",
    "parse_number_cells",
]

# Describes the 0-based row `i` for a message, e.g. "row 3 (line 4)"; rows are 1-based for people.
RowNamer = Callable[[int], str]

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")  # 70,5: a spreadsheet's locale, not a number here
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


def closest_name(name: str, available: Sequence[str]) -> str | None:
    """The column ``name`` was probably meant to be, or None.

    A name that differs only in case or surrounding spaces comes first (``'Diagnosis'`` for
    ``'diagnosis'``); otherwise the closest name, if it is close.
    """
    folded = name.strip().casefold()
    same = [column for column in available if column.strip().casefold() == folded]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.8)
    return close[0] if close else None


def did_you_mean(names: Sequence[str], available: Sequence[str]) -> str:
    """``" (did you mean 'Diagnosis'? ...)"`` for names a close column exists for, or ``""``."""
    pairs = [(n, m) for n in names if (m := closest_name(n, available)) is not None]
    if not pairs:
        return ""
    if len(names) == 1:
        guesses = repr(pairs[0][1])
    else:
        guesses = ", ".join(f"{m!r} for {n!r}" for n, m in pairs)
    case_only = any(n.strip().casefold() == m.strip().casefold() for n, m in pairs)
    return f" (did you mean {guesses}?" + (" Names are case-sensitive)" if case_only else ")")


def _check_name_list(value: object, *, parameter: str, owner: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            f"The {parameter!r} parameter of {owner} must be a sequence of column names; "
            f"got {value!r} instead."
        )
    names = tuple(value)
    if (
        not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(
            f"The {parameter!r} parameter of {owner} must name at least one column, each once; "
            f"got {value!r} instead."
        )
    return names


def _missing_column_error(
    path: str | os.PathLike[str],
    available: Sequence[str],
    missing: Sequence[str],
    *,
    role: str,
) -> DataError:
    listed = f" (missing: {_quote_list(missing)})" if len(missing) > 1 else ""
    return DataError(
        f"{path}: has no {role} column {missing[0]!r}{listed}{did_you_mean(missing, available)}; "
        f"the columns are: {_quote_list(available)}."
    )


def choose_columns(
    path: str | os.PathLike[str],
    available: Sequence[str],
    *,
    label: str,
    features: Sequence[str] | None,
    group: str | None,
    owner: str,
    ignore_columns: Sequence[str] | None = None,
) -> ColumnChoice:
    """Check the requested columns against the file's and fill in the default feature columns.

    By default every column but the label, the group and ``ignore_columns`` is a feature, in file
    order. A column named that the file lacks is refused, with a hint when the name differs only
    in case (``'diagnosis'`` for ``'Diagnosis'``).
    """
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
    ignored: tuple[str, ...] = ()
    if ignore_columns is not None:
        if features is not None:
            raise ConfigError(
                f"The 'ignore_columns' parameter of {owner} must be None when 'features' chooses "
                f"the columns; got {ignore_columns!r} instead. Give one of the two."
            )
        ignored = _check_name_list(ignore_columns, parameter="ignore_columns", owner=owner)
        if reserved & set(ignored):
            raise ConfigError(
                f"The 'ignore_columns' parameter of {owner} must not name the label or group "
                f"column; got {ignored!r} instead."
            )
    if features is not None:
        chosen = _check_name_list(features, parameter="features", owner=owner)
        if reserved & set(chosen):
            raise ConfigError(
                f"The 'features' parameter of {owner} must not name the label or group column; "
                f"got {chosen!r} instead."
            )
    else:
        chosen = tuple(c for c in available if c not in reserved and c not in ignored)

    for role, names in (
        ("label", [label]),
        ("group", [] if group is None else [group]),
        ("feature", list(chosen)),
        ("ignored", list(ignored)),
    ):
        missing = [c for c in names if c not in available]
        if missing:
            raise _missing_column_error(path, available, missing, role=role)
    if not chosen:
        raise DataError(
            f"{path}: has no feature columns besides the label, group and ignored columns; "
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


def feature_cell_problem(cell: str) -> str | None:
    """What is wrong with a stripped feature cell, as :func:`parse_number_cells` sees it, or None.

    One of ``"an empty cell"``, ``"a missing value"``, ``"not finite"`` (also for a number
    float32 cannot hold) or ``"not a number"``.
    """
    if _NUMBER.fullmatch(cell) is None:
        return _cell_problem(cell)
    return None if abs(float(cell)) <= _FLOAT32_MAX else "not finite"


def is_missing_label(cell: str) -> bool:
    """Whether a stripped label cell marks a missing value (empty, NA, N/A, NaN, null)."""
    return cell.lower() in _MISSING_LABELS


def parse_number_cells(
    path: str | os.PathLike[str], column: str, cells: Sequence[str], *, row_name: RowNamer
) -> npt.NDArray[np.float64]:
    """Parse stripped text cells as decimal numbers; refuse empty, NaN, infinite or other text."""
    for index, cell in enumerate(cells):
        if _NUMBER.fullmatch(cell) is None:
            raise DataError(
                f"{path}: column {column!r}, {row_name(index)}: expected a number; got "
                f"{cell!r} instead ({_cell_problem(cell)}){_number_hint(column, cell, cells)}."
            )
    return np.array([float(c) for c in cells], dtype=np.float64)


def _number_hint(column: str, cell: str, cells: Sequence[str]) -> str:
    """What to do about a cell that is not a number, when the column shows it."""
    if _DECIMAL_COMMA.fullmatch(cell):
        return "; write decimals with '.', as in 70.5"
    if _cell_problem(cell) == "not a number" and not any(_NUMBER.fullmatch(c) for c in cells):
        return (
            "; the column holds no numbers at all: if it is not a feature (an ID, a site name), "
            f"leave it out with ignore_columns (on the command line: --ignore-columns {column})"
        )
    return ""


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
