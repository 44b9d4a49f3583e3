"""How a node reads its file: column and delimiter options, from the command line or node.toml.

``sovereign node start`` and ``sovereign node check`` take the same options, so that a file the
check passes is loaded the same way when the site joins. A command-line option wins over the same
key in ``KIT/node.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from sovereign_ai.errors import ConfigError

__all__ = [
    "ClassesOption",
    "ColumnsOption",
    "DelimiterOption",
    "FileLayout",
    "IgnoreColumnsOption",
    "file_layout",
    "name_list",
]

ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Use only these feature columns, in this order, comma-separated (e.g. "
        "age,weight,bmi). Default: KIT/node.toml 'columns', or every column but the label and "
        "the ignored ones.",
    ),
]
IgnoreColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--ignore-columns",
        help="Columns that are not features, comma-separated (e.g. patient_id,site). "
        "Default: KIT/node.toml 'ignore_columns'.",
    ),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="The character between fields of a CSV file: ',' ';' '|' or 'tab'. Default: "
        "KIT/node.toml 'delimiter', or detected from the first lines.",
    ),
]
ClassesOption = Annotated[
    str | None,
    typer.Option(
        "--classes",
        help="The federation's class names in order, comma-separated (e.g. "
        "benign,malignant), so every site numbers labels alike. Default: KIT/node.toml, or "
        "the sorted labels in your file.",
    ),
]

# Names people type for characters that are awkward on a command line.
_DELIMITER_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}


@dataclass(frozen=True)
class FileLayout:
    """The column and delimiter options of :func:`~sovereign_ai.data.load_file`."""

    features: list[str] | None
    ignore_columns: list[str] | None
    delimiter: str | None

    def as_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`~sovereign_ai.data.load_file`."""
        return {
            "features": self.features,
            "ignore_columns": self.ignore_columns,
            "delimiter": self.delimiter,
        }


def name_list(option: str | None, settings: Mapping[str, Any], key: str) -> list[str] | None:
    """A comma-separated option, else ``settings[key]`` (a list of strings), else None."""
    if option is not None:
        names = [name.strip() for name in option.split(",") if name.strip()]
        if not names:
            raise ConfigError(
                f"The --{key.replace('_', '-')} option must name at least one column, "
                f"comma-separated; got {option!r} instead."
            )
        return names
    configured = settings.get(key)
    if configured is None:
        return None
    if not isinstance(configured, list) or not all(isinstance(c, str) for c in configured):
        raise ConfigError(
            f"The '{key}' key of node.toml must be a list of strings, e.g. {key} = [\"a\", "
            f'"b"]; got {configured!r} instead.'
        )
    return configured


def _delimiter(option: str | None, settings: Mapping[str, Any]) -> str | None:
    value = option if option is not None else settings.get("delimiter")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(
            f"The 'delimiter' key of node.toml must be a string such as ';'; got {value!r} instead."
        )
    return _DELIMITER_NAMES.get(value.strip().lower(), value)


def file_layout(
    *,
    columns: str | None,
    ignore_columns: str | None,
    delimiter: str | None,
    settings: Mapping[str, Any],
) -> FileLayout:
    """The layout options from the command line, falling back to ``settings`` (node.toml).

    Choosing columns on the command line (``--columns`` or ``--ignore-columns``) replaces both
    column keys of node.toml, so that the two ways of choosing never meet by accident.
    """
    column_settings = {} if columns is not None or ignore_columns is not None else settings
    return FileLayout(
        features=name_list(columns, column_settings, "columns"),
        ignore_columns=name_list(ignore_columns, column_settings, "ignore_columns"),
        delimiter=_delimiter(delimiter, settings),
    )
