"""Check a site's own data file against what a federation's model expects, before the site joins.

A loader stops at the first problem, which suits a program; a hospital's IT team preparing an
export wants them all at once, each with what to do. :func:`check_file` reads the file with the
same options a node would load it with (columns, delimiter, class list), scans every feature and
label cell, compares the width and the classes with the model's ``num_features`` and
``num_classes``, and finally loads the file exactly as a node would. It never raises for a problem
in the file: it reports it.

The fixes name the options of ``sovereign node start`` and ``sovereign node check``
(``--ignore-columns site``); the same settings are keys of a kit's ``node.toml`` and parameters of
:func:`~sovereign_ai.data.load_file`, spelt with underscores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sovereign_ai.data._columns import choose_columns
from sovereign_ai.data._delimited import DelimiterError, check_delimiter
from sovereign_ai.data._file_scan import (
    FileProblem,
    Table,
    feature_problems,
    id_like_note,
    label_summary,
    read_table,
)
from sovereign_ai.data._validation import check_int
from sovereign_ai.data.dataset import Dataset
from sovereign_ai.data.files import FileFormat, file_format, load_file
from sovereign_ai.errors import ConfigError, DataError

__all__ = ["FileCheck", "FileProblem", "check_file"]


@dataclass(frozen=True)
class FileCheck:
    """What a site's file holds and why it does not fit a job, if it does not.

    Parameters
    ----------
    path
        The file, as given.
    num_rows
        Data rows read (0 if the file could not be read).
    feature_names
        The feature columns, in the order the node uses them.
    class_names
        The classes in the order labels are numbered (the class list if one was given).
    class_counts
        Rows per class, in the order of ``class_names``.
    delimiter
        The CSV delimiter used (given or detected); None for other formats or an unreadable file.
    problems
        Every problem found; empty when the file fits.
    notes
        Things worth knowing that do not stop the site from joining.
    """

    path: str
    num_rows: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    delimiter: str | None
    problems: tuple[FileProblem, ...]
    notes: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        """Whether a node can load the file and train the job's model on it."""
        return not self.problems


def _width_problem(features: tuple[str, ...], num_features: int) -> list[FileProblem]:
    if len(features) == num_features:
        return []
    if len(features) > num_features:
        fix = (
            "Leave out the columns that are not features (IDs, dates, site names) with "
            "--ignore-columns, or choose the job's feature columns, in its order, with --columns."
        )
    else:
        fix = (
            "Check that the export holds every feature column the federation agreed on, and "
            "that no feature column is ignored."
        )
    return [
        FileProblem(
            f"The file has {len(features)} feature column(s); the job's model takes "
            f"num_features = {num_features}.",
            fix,
        )
    ]


def _class_problem(
    class_names: tuple[str, ...], class_list: tuple[str, ...] | None, num_classes: int
) -> list[FileProblem]:
    if not class_names or len(class_names) == num_classes:
        return []
    listed = ", ".join(map(repr, class_names))
    if class_list is not None:
        return [
            FileProblem(
                f"The class list names {len(class_list)} classes ({listed}); the job's model has "
                f"num_classes = {num_classes}.",
                f"Pass the federation's class list, {num_classes} names in its order, "
                "with --classes.",
            )
        ]
    folded = [name.strip().casefold() for name in class_names]
    twins = [n for n in class_names if folded.count(n.strip().casefold()) > 1]
    if twins:
        fix = (
            f"Labels {', '.join(map(repr, twins))} differ only in case or spaces: write each "
            "class one way, or pass the federation's class list with --classes to find the rows."
        )
    elif len(class_names) < num_classes:
        fix = (
            "If this site holds only some of the federation's classes, pass the full list in the "
            "federation's order with --classes, so that every site numbers them alike."
        )
    else:
        fix = (
            "Check that --label names the class column; with --classes, labels outside the "
            "federation's classes are named."
        )
    return [
        FileProblem(
            f"The label column holds {len(class_names)} classes ({listed}); the job's model has "
            f"num_classes = {num_classes}.",
            fix,
        )
    ]


def _check_class_list(classes: Sequence[str] | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    names = tuple(classes) if not isinstance(classes, str) else ()
    if len(names) < 2 or not all(isinstance(c, str) and c for c in names):
        raise ConfigError(
            "The 'classes' parameter of check_file must list at least two class names; "
            f"got {classes!r} instead."
        )
    if len(set(names)) != len(names):
        raise ConfigError(
            f"The 'classes' parameter of check_file must name each class once; got {names!r} "
            "instead."
        )
    return names


def check_file(
    path: str | os.PathLike[str],
    *,
    label: str | None,
    num_features: int,
    num_classes: int,
    classes: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    ignore_columns: Sequence[str] | None = None,
    delimiter: str | None = None,
) -> FileCheck:
    """Check that a node could load ``path`` and train a model of the given shape on it.

    Parameters
    ----------
    path
        A CSV, Parquet or NPZ file, as for :func:`~sovereign_ai.data.load_file`.
    label, classes, features, ignore_columns, delimiter
        As the node will load the file; see :func:`~sovereign_ai.data.load_file`.
    num_features
        The model's input width (a job's ``[model] num_features``).
    num_classes
        The model's number of classes (a job's ``[model] num_classes``).

    Returns
    -------
    FileCheck
        What the file holds, and every problem found, each with a fix. CSV and Parquet files are
        scanned cell by cell; an NPZ file reports the first problem its loader meets.

    Raises
    ------
    ConfigError
        If the options themselves are invalid (e.g. ``features`` together with
        ``ignore_columns``), as :func:`~sovereign_ai.data.load_file` raises.
    """
    owner = "check_file"
    num_features = check_int(num_features, name="num_features", owner=owner, minimum=1)
    num_classes = check_int(num_classes, name="num_classes", owner=owner, minimum=2)
    class_list = _check_class_list(classes)
    if delimiter is not None:
        delimiter = check_delimiter(delimiter, owner=owner)
    found = _format_or_none(path)
    if found is None or found is FileFormat.NPZ:  # the loader reports a bad path or suffix
        options = _LoadOptions(label, class_list, features, ignore_columns, delimiter)
        return _check_by_loading(path, options, num_features, num_classes)
    if label is None:
        raise ConfigError(
            f"The 'label' parameter of {owner} must name the label column of {path}; "
            "got None instead."
        )
    summary = FileCheck(str(path), 0, (), (), (), None, ())
    table: Table | None = None
    try:
        table = read_table(path, found, delimiter)
        choice = choose_columns(
            path,
            table.header,
            label=label,
            features=features,
            ignore_columns=ignore_columns,
            group=None,
            owner=owner,
        )
    except DataError as exc:
        if table is not None:
            summary = replace(summary, num_rows=table.num_rows, delimiter=table.delimiter)
            fix = "Name the columns as the file spells them (the message lists them)."
        elif isinstance(exc, DelimiterError):
            fix = "Name the character between fields with --delimiter (e.g. --delimiter ';')."
        else:
            fix = "Correct the file where the message says, or export it again."
        return replace(summary, problems=(FileProblem(str(exc), fix),))
    summary = replace(summary, num_rows=table.num_rows, delimiter=table.delimiter)
    problems: list[FileProblem] = []
    for name in choice.features:
        problems += feature_problems(name, table.columns[name], table.row_name)
    label_problems, class_names, class_counts = label_summary(
        path, label, table.columns[label], table.row_name, class_list
    )
    problems += label_problems
    problems += _width_problem(choice.features, num_features)
    problems += _class_problem(class_names, class_list, num_classes)
    result = replace(
        summary,
        feature_names=choice.features,
        class_names=class_names,
        class_counts=class_counts,
        problems=tuple(problems),
        notes=(
            *(n for c in choice.features if (n := id_like_note(c, table.columns[c])) is not None),
            *_notes(class_names, class_list, num_classes),
        ),
    )
    if problems:
        return result
    # Nothing found cell by cell: load it as the node will, which checks what a scan cannot
    # (a Parquet column's type, for one).
    options = _LoadOptions(label, class_list, features, ignore_columns, table.delimiter)
    try:
        _load(path, options)
    except DataError as exc:
        return replace(result, problems=(FileProblem(str(exc), _LOAD_FIX),))
    return result


def _format_or_none(path: str | os.PathLike[str]) -> FileFormat | None:
    try:
        return file_format(path, owner="check_file")
    except DataError:
        return None


_LOAD_FIX = "Correct the file where the message says, then check it again."


@dataclass(frozen=True)
class _LoadOptions:
    label: str | None
    classes: tuple[str, ...] | None
    features: Sequence[str] | None
    ignore_columns: Sequence[str] | None
    delimiter: str | None


def _load(path: str | os.PathLike[str], options: _LoadOptions) -> Dataset:
    return load_file(
        path,
        label=options.label,
        classes=options.classes,
        features=options.features,
        ignore_columns=options.ignore_columns,
        delimiter=options.delimiter,
    )


def _notes(
    class_names: tuple[str, ...], class_list: tuple[str, ...] | None, num_classes: int
) -> tuple[str, ...]:
    if class_list is not None or len(class_names) != num_classes:
        return ()
    order = ", ".join(f"{name}={k}" for k, name in enumerate(class_names))
    return (
        f"No class list given: labels are numbered in sorted order ({order}). Every site must "
        "then hold every class under the same names; --classes pins the order.",
    )


def _check_by_loading(
    path: str | os.PathLike[str], options: _LoadOptions, num_features: int, num_classes: int
) -> FileCheck:
    """Check a file by loading it: the first problem only, as for an NPZ archive."""
    summary = FileCheck(str(path), 0, (), (), (), None, ())
    try:
        dataset = _load(path, options)
    except DataError as exc:
        return replace(summary, problems=(FileProblem(str(exc), _LOAD_FIX),))
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)  # (num_classes,)
    problems = _width_problem(dataset.feature_names, num_features)
    problems += _class_problem(dataset.class_names, options.classes, num_classes)
    return replace(
        summary,
        num_rows=dataset.num_examples,
        feature_names=dataset.feature_names,
        class_names=dataset.class_names,
        class_counts=tuple(int(c) for c in counts),
        problems=tuple(problems),
        notes=_notes(dataset.class_names, options.classes, num_classes),
    )
