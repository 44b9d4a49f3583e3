"""Read delimited text (CSV with ``,``, ``;``, tab or ``|``) into header, records and line numbers.

Exports from hospital systems and spreadsheets in many locales separate fields with ``;`` (the
comma being the decimal mark), others with tabs or ``|``. Rather than guess per cell, the delimiter
is chosen once per file from a sample of its first lines: the candidate that splits the header into
at least two columns and every sampled row into as many fields. :class:`csv.Sniffer` does the same
job with heuristics of its own (and picks *a* delimiter where two fit equally); here a file that
two candidates split equally well is refused with the choice spelt out, because reading it the
wrong way would load wrong numbers without a sound.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovereign_ai.errors import ConfigError, DataError

__all__ = [
    "CANDIDATE_DELIMITERS",
    "DelimitedText",
    "DelimiterError",
    "check_delimiter",
    "detect_delimiter",
    "read_delimited",
    "spell",
]

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_CHARS = 64 * 1024  # a few hundred lines of a wide export: enough to see its shape
# Characters that occur inside numbers and names, or that csv treats specially.
_NOT_DELIMITERS = frozenset("\"'\r\n .+-_")


class DelimiterError(DataError):
    """The file's delimiter is ambiguous, or the file reads as a single column."""


@dataclass(frozen=True)
class DelimitedText:
    """A delimited file's cells (stripped), the line of each record and the delimiter used."""

    header: list[str]
    records: list[list[str]]
    lines: list[int]
    delimiter: str


def spell(delimiter: str) -> str:
    """The delimiter as a person types it on a command line: ``';'``, or ``tab``."""
    return "tab" if delimiter == "\t" else repr(delimiter)


def check_delimiter(delimiter: object, *, owner: str) -> str:
    """Return ``delimiter`` if it is one character that can separate fields."""
    if (
        not isinstance(delimiter, str)
        or len(delimiter) != 1
        or delimiter in _NOT_DELIMITERS
        or delimiter.isalnum()
    ):
        raise ConfigError(
            f"The 'delimiter' parameter of {owner} must be one character such as ',', ';', "
            f"'|' or a tab, not a letter, digit, quote, space, '.', '+', '-' or '_'; "
            f"got {delimiter!r} instead."
        )
    return delimiter


def _record_widths(sample: str, delimiter: str) -> list[int]:
    """Fields per non-blank record of ``sample`` read with ``delimiter``; [] if it is not CSV."""
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter, skipinitialspace=True)
    try:
        return [len(record) for record in reader if record]
    except csv.Error:
        return []


def _sample(text: str) -> str:
    if len(text) <= _SAMPLE_CHARS:
        return text
    cut = text.rfind("\n", 0, _SAMPLE_CHARS)
    return text[: cut + 1] if cut > 0 else text[:_SAMPLE_CHARS]


def _header_preview(text: str) -> str:
    first = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    return first if len(first) <= 60 else first[:57] + "..."


def detect_delimiter(path: str | os.PathLike[str], text: str) -> str:
    """Choose the delimiter of ``text`` among :data:`CANDIDATE_DELIMITERS` from its first lines.

    Raises
    ------
    DataError
        If no candidate splits the header into two or more columns, or two candidates split the
        sample equally well; the message says how to name the delimiter.
    """
    sample = _sample(text)
    # candidate -> (share of sampled rows as wide as the header, header width)
    scores: dict[str, tuple[float, int]] = {}
    for delimiter in CANDIDATE_DELIMITERS:
        widths = _record_widths(sample, delimiter)
        if len(widths) == 0 or widths[0] < 2:
            continue
        rows = widths[1:]
        alike = sum(width == widths[0] for width in rows) / len(rows) if rows else 1.0
        scores[delimiter] = (alike, widths[0])
    if not scores:
        raise DelimiterError(
            f"{path}: reads as a single column with each of the delimiters ',', ';', tab and '|' "
            f"(first line: {_header_preview(text)!r}); a dataset needs a label column and at "
            "least one feature column. If the file separates fields with another character, name "
            "it with the 'delimiter' option (on the command line: --delimiter CHAR)."
        )
    best = max(alike for alike, _ in scores.values())
    winners = [d for d, (alike, _) in scores.items() if alike == best]
    if len(winners) > 1:
        choices = " or ".join(f"{spell(d)} ({scores[d][1]} columns)" for d in winners)
        options = " or ".join(f"--delimiter {spell(d)}" for d in winners)
        raise DelimiterError(
            f"{path}: the delimiter is ambiguous: the first lines split equally well by "
            f"{choices}. Name it with the 'delimiter' option (on the command line: {options})."
        )
    return winners[0]


def _ragged_row_error(
    path: str | os.PathLike[str],
    header: Sequence[str],
    cells: Sequence[str],
    *,
    row: int,
    line: int,
) -> DataError:
    if len(cells) < len(header):
        detail = f"no value for column {header[len(cells)]!r}"
    else:
        detail = f"extra value(s) after the last column {header[-1]!r}"
    return DataError(
        f"{path}: row {row} (line {line}): expected {len(header)} fields as in the header; "
        f"got {len(cells)} instead ({detail})."
    )


def _read_text(path: str | os.PathLike[str], file: Path) -> str:
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs write; newline="" keeps line
        # ends for csv, which also allows line breaks inside quoted cells.
        with file.open(encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc


def _single_column_error(path: str | os.PathLike[str], text: str, delimiter: str) -> DelimiterError:
    try:
        found = detect_delimiter(path, text)
        hint = (
            f"the file looks {spell(found)}-delimited: pass delimiter={found!r} (on the command "
            f"line: --delimiter {spell(found)}), or leave the option out to detect it"
        )
    except DataError:
        hint = (
            "pass the character that separates its fields as the 'delimiter' option (on the "
            "command line: --delimiter CHAR)"
        )
    return DelimiterError(
        f"{path}: reads as a single column with the delimiter {spell(delimiter)} "
        f"(first line: {_header_preview(text)!r}); {hint}."
    )


def read_delimited(
    path: str | os.PathLike[str], file: Path, *, delimiter: str | None
) -> DelimitedText:
    """Read ``file`` as delimited text with a header line.

    Parameters
    ----------
    path
        The path as the caller gave it, for messages.
    file
        The existing file to read.
    delimiter
        The field delimiter, or None to detect it with :func:`detect_delimiter`.

    Raises
    ------
    DataError
        If the file is unreadable, not UTF-8, empty, without data rows, not valid CSV, has a row
        with another number of fields than the header, or reads as one column.
    """
    text = _read_text(path, file)
    if not text.strip():
        raise DataError(f"{path}: is empty; expected a header line and data rows.")
    chosen = detect_delimiter(path, text) if delimiter is None else delimiter
    header: list[str] | None = None
    records: list[list[str]] = []
    lines: list[int] = []
    # skipinitialspace: `1, "a, b"` is two fields, as a person writing it means.
    reader = csv.reader(io.StringIO(text), delimiter=chosen, strict=True, skipinitialspace=True)
    try:
        for record in reader:
            if not record:
                continue  # a blank line; a line of only delimiters is a row of empty cells
            cells = [cell.strip() for cell in record]
            if header is None:
                if len(cells) < 2:
                    raise _single_column_error(path, text, chosen)
                header = cells
                continue
            if len(cells) != len(header):
                raise _ragged_row_error(
                    path, header, cells, row=len(records) + 1, line=reader.line_num
                )
            records.append(cells)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({exc}).") from exc
    if header is None:
        raise DataError(f"{path}: is empty; expected a header line and data rows.")
    if not records:
        raise DataError(f"{path}: has a header but no data rows.")
    return DelimitedText(header=header, records=records, lines=lines, delimiter=chosen)
