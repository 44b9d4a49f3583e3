"""Scan a table's cells for what :mod:`.file_check` reports: every bad cell, not only the first.

Cells are read as stripped text whatever the format (a Parquet value by its text), and judged by
the rules the loaders apply (:mod:`._columns`), so that a file the scan passes loads.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from sovereign_ai.data._columns import (
    RowNamer,
    closest_name,
    encode_labels,
    existing_file,
    feature_cell_problem,
    is_missing_label,
)
from sovereign_ai.data._delimited import read_delimited
from sovereign_ai.data.files import FileFormat
from sovereign_ai.errors import DataError

__all__ = [
    "FileProblem",
    "Table",
    "feature_problems",
    "id_like_note",
    "label_summary",
    "read_table",
]

_ROWS_NAMED = 5  # rows listed per problem; the rest are counted
_LABELS_NAMED = 5  # unknown label values reported one by one
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
_ID_NAME = re.compile(r"(?i)(^|[_\s.-])id$")  # id, patient_id, record-ID; not "fluid"
_MIN_ROWS_FOR_ID = 20  # fewer distinct counting numbers happen by chance


@dataclass(frozen=True)
class FileProblem:
    """One reason a file does not fit a job.

    Parameters
    ----------
    problem
        What is wrong, naming the column, the rows and the values.
    fix
        What to do about it.
    """

    problem: str
    fix: str


@dataclass(frozen=True)
class Table:
    """A file's columns as stripped text cells, however it is stored."""

    header: tuple[str, ...]
    columns: dict[str, list[str]]
    num_rows: int
    row_name: RowNamer
    delimiter: str | None


def read_table(path: str | os.PathLike[str], found: FileFormat, delimiter: str | None) -> Table:
    """Read a CSV or Parquet file's columns as text cells."""
    file = existing_file(path, owner="check_file")
    if found is FileFormat.CSV:
        text = read_delimited(path, file, delimiter=delimiter)
        lines = text.lines
        header = tuple(text.header)
        columns = {name: [r[i] for r in text.records] for i, name in enumerate(header)}
        return Table(
            header=header,
            columns=columns,
            num_rows=len(text.records),
            row_name=lambda index: f"row {index + 1} (line {lines[index]})",
            delimiter=text.delimiter,
        )
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DataError(f"{path}: is not a readable Parquet file ({exc}).") from exc
    columns = {
        name: ["" if v is None else str(v).strip() for v in table.column(name).to_pylist()]
        for name in table.column_names
    }
    return Table(
        header=tuple(table.column_names),
        columns=columns,
        num_rows=table.num_rows,
        row_name=lambda index: f"row {index + 1}",
        delimiter=None,
    )


def _rows(indices: Sequence[int], row_name: RowNamer) -> str:
    named = ", ".join(row_name(i) for i in indices[:_ROWS_NAMED])
    more = len(indices) - _ROWS_NAMED
    return named + (f" and {more} more" if more > 0 else "")


def id_like_note(name: str, cells: list[str]) -> str | None:
    """A note if a numeric feature column looks like a record ID rather than a measurement."""
    named_id = _ID_NAME.search(name) is not None or name.endswith("ID")
    distinct_counts = (
        len(cells) >= _MIN_ROWS_FOR_ID
        and all(cell.isdigit() for cell in cells)
        and len(set(cells)) == len(cells)
    )
    if not (named_id or distinct_counts):
        return None
    why = "is named like an ID" if named_id else "holds a different whole number in every row"
    return (
        f"Column {name!r} {why}; if it identifies records rather than measuring them, leave it "
        f"out with --ignore-columns {shlex.quote(name)}: an ID would be learnt as a feature."
    )


def feature_problems(name: str, cells: list[str], row_name: RowNamer) -> list[FileProblem]:
    """Every problem of a feature column's cells: text, missing values, infinities."""
    rows: dict[str, list[int]] = {"text": [], "missing": [], "infinite": []}
    for index, cell in enumerate(cells):
        problem = feature_cell_problem(cell)
        if problem == "not a number":
            rows["text"].append(index)
        elif problem == "not finite":
            rows["infinite"].append(index)
        elif problem is not None:
            rows["missing"].append(index)
    problems = []
    text = rows["text"]
    if text:
        first = cells[text[0]]
        if all(_DECIMAL_COMMA.fullmatch(cells[i]) for i in text):
            problems.append(
                FileProblem(
                    f"Column {name!r} writes decimals with a comma ({first!r} in "
                    f"{row_name(text[0])}; {len(text)} cell(s)).",
                    "Export the file with '.' as the decimal mark (0.5, not 0,5); with ';' "
                    "between fields most spreadsheet programs offer it as an export option.",
                )
            )
        elif len(text) + len(rows["missing"]) == len(cells):
            problems.append(
                FileProblem(
                    f"Column {name!r} holds text, not numbers ({first!r} in {row_name(text[0])}).",
                    f"If it is an ID, a site name or another column that is not a feature, leave "
                    f"it out: --ignore-columns {shlex.quote(name)}.",
                )
            )
        else:
            problems.append(
                FileProblem(
                    f"Column {name!r} has {len(text)} cell(s) that are not numbers "
                    f"({first!r} in {_rows(text, row_name)}).",
                    "Correct those cells, or leave the column out with "
                    f"--ignore-columns {shlex.quote(name)}.",
                )
            )
    if rows["missing"]:
        problems.append(
            FileProblem(
                f"Column {name!r} has {len(rows['missing'])} missing value(s) "
                f"({_rows(rows['missing'], row_name)}).",
                "Fill them in, or remove those rows: a node trains on complete rows only.",
            )
        )
    if rows["infinite"]:
        problems.append(
            FileProblem(
                f"Column {name!r} has {len(rows['infinite'])} value(s) that are infinite or too "
                f"large for float32 ({_rows(rows['infinite'], row_name)}).",
                "Correct those values, or rescale the column.",
            )
        )
    return problems


def _unknown_labels(
    name: str, cells: list[str], row_name: RowNamer, class_list: tuple[str, ...]
) -> list[FileProblem]:
    known = set(class_list)
    first_row: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for index, cell in enumerate(cells):
        if cell not in known and not is_missing_label(cell):
            counts[cell] += 1
            first_row.setdefault(cell, index)
    problems = []
    listed = ", ".join(map(repr, class_list))
    for value, count in counts.most_common(_LABELS_NAMED):
        near = closest_name(value, class_list)
        guess = f"Did you mean {near!r}? " if near is not None else ""
        problems.append(
            FileProblem(
                f"Label {value!r} in column {name!r} ({count} row(s), first "
                f"{row_name(first_row[value])}) is not one of the federation's classes ({listed}).",
                f"{guess}Correct those labels, or pass the federation's full class list "
                "with --classes.",
            )
        )
    if len(counts) > _LABELS_NAMED:
        problems.append(
            FileProblem(
                f"Column {name!r} holds {len(counts) - _LABELS_NAMED} further label value(s) "
                "outside the federation's classes.",
                "Check that --label names the class column.",
            )
        )
    return problems


def label_summary(
    path: str | os.PathLike[str],
    name: str,
    cells: list[str],
    row_name: RowNamer,
    class_list: tuple[str, ...] | None,
) -> tuple[list[FileProblem], tuple[str, ...], tuple[int, ...]]:
    """Problems of the label column, and the classes with their row counts."""
    missing = [i for i, cell in enumerate(cells) if is_missing_label(cell)]
    problems = []
    if missing:
        problems.append(
            FileProblem(
                f"Label column {name!r} has {len(missing)} missing label(s) "
                f"({_rows(missing, row_name)}).",
                "Fill them in, or remove those rows.",
            )
        )
    present = [cell for cell in cells if not is_missing_label(cell)]
    if class_list is not None:
        problems += _unknown_labels(name, cells, row_name, class_list)
        per_name = Counter(present)
        return problems, class_list, tuple(per_name[c] for c in class_list)
    if not present:
        return problems, (), ()
    positions = [i for i, cell in enumerate(cells) if not is_missing_label(cell)]
    try:
        labels, class_names = encode_labels(
            path, name, present, row_name=lambda index: row_name(positions[index])
        )
    except DataError as exc:
        fix = "Check that --label names the class column."
        if "only one class" in str(exc):
            fix = (
                "A site may hold a single class only with the federation's class list: pass "
                "--classes with every class, in the federation's order."
            )
        return [*problems, FileProblem(str(exc), fix)], (), ()
    counts = Counter(int(label) for label in labels)
    return problems, class_names, tuple(counts[k] for k in range(len(class_names)))
