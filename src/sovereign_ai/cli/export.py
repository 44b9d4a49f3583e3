"""``sovereign export``: a trained model compressed, validated on your rows, signed for the edge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign_ai.cli._errors import friendly_errors

if TYPE_CHECKING:
    from sovereign_ai.edge import CompressionResult

__all__ = ["export"]

_HOLDOUT_FRACTION = 0.3


def _read_rows(path: Path, *, label: str | None, classes: tuple[str, ...] | None) -> Any:
    """A labelled :class:`Dataset` if ``path`` has the label column, else its features only."""
    import numpy as np

    from sovereign_ai.data import FileFormat, file_format, load_file
    from sovereign_ai.errors import DataError

    found = file_format(path, owner="sovereign export")
    if found is FileFormat.NPZ:
        with np.load(path, allow_pickle=False) as arrays:
            if (label or "y") in arrays.files:
                return load_file(path, label=label, classes=classes)
            return np.asarray(arrays["x"], dtype=np.float32)
    if found is FileFormat.CSV:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    if label is not None and label in table.column_names:
        return load_file(path, label=label, classes=classes)
    try:
        return np.column_stack(
            [np.asarray(table.column(n).to_numpy(), dtype=np.float32) for n in table.column_names]
        )
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: every column must be a number (no label column): {exc}") from exc


def _table(result: CompressionResult) -> Table:
    table = Table(title="Variants, validated on your holdout rows and timed on this device")
    for column in ("variant", "size", "gzip", "batch 1", "batch 64", "accuracy", "Δ vs fp32",
                   "agreement", "verdict"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("variant", "verdict") else "right")
    for r in result.reports:
        style = "bold green" if r.is_chosen else "" if r.is_accepted else "red"
        table.add_row(
            r.variant.value,
            f"{r.size_bytes / 1024:,.1f} KiB",
            f"{r.gzip_bytes / 1024:,.1f} KiB",
            f"{r.latency_b1_ms:.3f} ms",
            f"{r.latency_b64_ms:.3f} ms",
            f"{r.accuracy:.2%}",
            f"{r.accuracy_delta_points:+.2f} pt",
            f"{r.agreement:.2%}",
            escape(r.reason if r.is_accepted else f"rejected: {r.reason}"),
            style=style,
        )
    return table


def export(
    model: Annotated[
        str | None, typer.Argument(help="MODEL[@alias] in the registry (not available yet).")
    ] = None,
    model_file: Annotated[
        Path | None,
        typer.Option("--model-file", help="A run folder's final model (model.safetensors)."),
    ] = None,
    job: Annotated[
        Path | None, typer.Option("--job", help="The job spec (TOML) that trained it.")
    ] = None,
    calibration: Annotated[
        Path,
        typer.Option(
            "--calibration",
            help="Your rows (CSV/Parquet/NPZ) to calibrate int8 on; the label column is optional.",
        ),
    ] = ...,  # type: ignore[assignment]
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            help="Your labelled rows to validate every variant on. Default: 30 % of the "
            "calibration file, set aside before calibrating.",
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="The label column of your files.")
    ] = None,
    kit: Annotated[
        Path, typer.Option("--kit", help="The startup kit whose key signs the bundle.")
    ] = ...,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option("--out", help="The bundle folder to create.")] = ...,  # type: ignore[assignment]
    max_accuracy_drop: Annotated[
        float,
        typer.Option(
            "--max-accuracy-drop", min=0.0, help="Most accuracy points a variant may lose."
        ),
    ] = 0.3,
    variants: Annotated[
        str,
        typer.Option(
            "--variants",
            help="Comma-separated: fp32, int8-static, int8-dynamic-matmul, pruned, pruned-int8.",
        ),
    ] = "fp32,int8-static,int8-dynamic-matmul,pruned,pruned-int8",
    sparsity: Annotated[
        float, typer.Option("--sparsity", min=0.01, max=0.99, help="Share of weights pruned.")
    ] = 0.5,
) -> None:
    """Export a trained model for the edge: ONNX, int8, pruned; validated on your rows; signed.

    Every variant is checked on your holdout rows (accuracy, Δ vs fp32, agreement) and timed on
    this machine (batch 1 and 64). A variant slower than fp32, or losing more than
    --max-accuracy-drop points, is rejected with the reason; of the rest, the smallest is
    shipped in OUT as model.onnx, manifest.json and signature.json. Nothing leaves this machine.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.cli._kit_passphrase import terminal_prompt
        from sovereign_ai.data import train_test_split
        from sovereign_ai.edge import Variant
        from sovereign_ai.errors import ConfigError, DataError
        from sovereign_ai.federation.edge_export import (
            HoldoutRows,
            export_edge_bundle,
            source_from_run,
        )
        from sovereign_ai.pki import load_kit
        from sovereign_ai.pki.signing import IdentitySigner

        if model is not None:
            raise ConfigError(
                f"Exporting {model!r} by registry reference is not available in this build; "
                "give --model-file model.safetensors and --job job.toml instead."
            )
        if model_file is None or job is None:
            raise ConfigError("Give --model-file and --job (the run's model and its job spec).")
        try:
            chosen = [Variant(v.strip()) for v in variants.split(",") if v.strip()]
        except ValueError as exc:
            raise ConfigError(
                f"--variants must name some of {', '.join(v.value for v in Variant)}; "
                f"got {variants!r}."
            ) from exc
        signer = IdentitySigner.from_kit(load_kit(kit, prompt=terminal_prompt()))
        source = source_from_run(model_file, job)
        rows = _read_rows(calibration, label=label, classes=None)
        labelled = not hasattr(rows, "shape")
        if labelled and len(rows.class_names) == source.num_classes:
            from dataclasses import replace

            source = replace(source, feature_names=rows.feature_names, class_names=rows.class_names)
        if holdout is not None:
            held = _read_rows(holdout, label=label, classes=source.class_names)
            if hasattr(held, "shape"):
                raise DataError(f"The holdout file {holdout} needs the label column (--label).")
            check = HoldoutRows(held.features, held.labels)
            calibration_rows = rows.features if labelled else rows
            tune = HoldoutRows(rows.features, rows.labels) if labelled else None
        elif labelled:
            kept, set_aside = train_test_split(rows, test_fraction=_HOLDOUT_FRACTION, seed=0)
            console.print(
                f"No --holdout: {set_aside.num_examples} of the {rows.num_examples} rows of "
                f"{escape(str(calibration))} ({_HOLDOUT_FRACTION:.0%}) are set aside to validate "
                "on, and never used to calibrate or fine-tune.",
                highlight=False,
            )
            check = HoldoutRows(set_aside.features, set_aside.labels)
            calibration_rows = kept.features
            tune = HoldoutRows(kept.features, kept.labels)
        else:
            raise ConfigError(
                "Validation needs labelled rows: give --holdout FILE --label COL, or a "
                "calibration file with the --label column to set part of it aside."
            )
        with console.status("exporting") as status:
            result, bundle = export_edge_bundle(
                source,
                calibration=calibration_rows,
                holdout=check,
                out=out,
                signer=signer,
                fine_tune_rows=tune,
                variants=chosen,
                max_accuracy_drop=max_accuracy_drop,
                sparsity=sparsity,
                progress=lambda line: status.update(escape(line)),
            )
    console.print(_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    console.print(
        f"fp32 ONNX matches PyTorch on {result.equivalence.rows} rows: max |Δ logit| "
        f"{result.equivalence.max_abs_diff:.2g}.",
        highlight=False,
    )
    console.print(
        f"Wrote {escape(str(bundle.folder))} ({bundle.manifest.variant}), signed by the key of "
        f"{escape(str(kit))}.",
        highlight=False,
    )
