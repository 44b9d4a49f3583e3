"""``sovereign he predict``: predictions on your rows from a remote model that never sees them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.errors import DataError

__all__ = ["he_app"]

he_app = typer.Typer(
    help="Encrypted inference (CKKS): your rows leave this machine only encrypted with your keys.",
    no_args_is_help=True,
)


def _read_rows(path: Path, label: str | None) -> tuple[list[list[float]], list[str] | None]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read: {exc}.") from exc
    if len(table) < 2:
        raise DataError(f"{path} has no rows under its header.")
    header, body = table[0], table[1:]
    if label is not None and label not in header:
        raise DataError(f"{path} has no column {label!r}; its columns: {', '.join(header)}.")
    keep = [i for i, name in enumerate(header) if name != label]
    rows: list[list[float]] = []
    labels: list[str] | None = [] if label is not None else None
    for number, row in enumerate(body, start=2):
        try:
            rows.append([float(row[i]) for i in keep])
        except (ValueError, IndexError) as exc:
            raise DataError(f"{path} line {number}: not a row of numbers ({exc}).") from exc
        if labels is not None:
            labels.append(row[header.index(str(label))])
    return rows, labels


@he_app.command("predict")
def predict(
    url: Annotated[str, typer.Option("--url", help="The server, e.g. http://127.0.0.1:8080.")],
    model: Annotated[str, typer.Option("--model", help="The served model's name.")],
    data: Annotated[Path, typer.Option("--data", help="CSV of rows to predict (a header row).")],
    label: Annotated[
        str | None,
        typer.Option("--label", help="A column of true labels: left out, compared at the end."),
    ] = None,
    rotations: Annotated[
        bool,
        typer.Option(
            "--rotations",
            help="Also send rotation keys: batches of up to 4 rows then take the low-latency "
            "one-row layout (a larger context, sent once).",
        ),
    ] = False,
) -> None:
    """Encrypt your rows with keys made here, send only ciphertexts, decrypt the predictions.

    The server receives a public context (no secret key) and ciphertexts; it cannot read your
    rows or the predictions. It does learn how many rows you sent and when.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.serving.he_client import EncryptedInferenceClient

        rows, labels = _read_rows(data, label)
        with console.status("Making keys (the secret key stays here)..."):
            client = EncryptedInferenceClient(url, model, rotations=rotations)
        with console.status(f"Sending {len(rows)} encrypted row(s)..."):
            predicted = client.predict(rows)
    table = Table(title=f"{model}: encrypted predictions, decrypted here")
    table.add_column("row", justify="right")
    table.add_column("prediction")
    if labels is not None:
        table.add_column("label")
    for number, value in enumerate(predicted[:20], start=1):
        table.add_row(str(number), value, *([labels[number - 1]] if labels else []))
    console.print(table)
    if len(predicted) > 20:
        console.print(f"... and {len(predicted) - 20} more.")
    if labels is not None:
        right = sum(p == t for p, t in zip(predicted, labels, strict=True))
        console.print(f"Agree with --label: {right} of {len(labels)}.")
    console.print("The server held only your public context and ciphertexts.")
