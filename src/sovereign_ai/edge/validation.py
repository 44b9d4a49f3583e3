"""Every variant measured on the operator's holdout rows and this device, and the pick.

A variant is *accepted* if it loses at most ``max_accuracy_drop`` points of holdout accuracy
against fp32 and is not slower than fp32 at batch 1 or batch 64 (by more than the timing noise,
``latency_tolerance``). Of the accepted, the one with the smallest compressed (gzip) size is
chosen, and of equal sizes (within 5 %) the fastest at batch 1. fp32 is always accepted: the
pick can only do better than the model as trained.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from sovereign_ai.edge.runtime import measure_latency_ms, open_session, run_logits
from sovereign_ai.errors import ConfigError

__all__ = ["Variant", "VariantReport", "measure_variant", "pick_variant"]

_SIZE_TIE = 0.05


class Variant(StrEnum):
    """The forms of a model the edge export builds."""

    FP32 = "fp32"
    INT8_STATIC = "int8-static"
    INT8_DYNAMIC_MATMUL = "int8-dynamic-matmul"
    PRUNED = "pruned"
    PRUNED_INT8 = "pruned-int8"


@dataclass(frozen=True)
class VariantReport:
    """One variant, measured.

    Parameters
    ----------
    variant
        Which form.
    size_bytes, gzip_bytes
        ``model.onnx`` as stored, and gzip-compressed (what it costs to ship).
    latency_b1_ms, latency_b64_ms
        Median ONNX Runtime time of one call on 1 and 64 rows, on this device.
    accuracy
        On the operator's holdout rows.
    accuracy_delta_points
        ``accuracy - fp32 accuracy``, in percentage points (negative: a loss).
    agreement
        Share of holdout rows predicted as fp32 predicts them.
    is_accepted, is_chosen
        The verdict; ``reason`` says why a variant was rejected or not chosen.
    """

    variant: Variant
    size_bytes: int
    gzip_bytes: int
    latency_b1_ms: float
    latency_b64_ms: float
    accuracy: float
    accuracy_delta_points: float
    agreement: float
    is_accepted: bool = True
    is_chosen: bool = False
    reason: str = ""

    def metrics(self) -> dict[str, float]:
        """The figures as flat manifest metrics."""
        return {
            "size_bytes": float(self.size_bytes),
            "gzip_bytes": float(self.gzip_bytes),
            "latency_b1_ms": self.latency_b1_ms,
            "latency_b64_ms": self.latency_b64_ms,
            "accuracy": self.accuracy,
            "accuracy_delta_points": self.accuracy_delta_points,
            "agreement": self.agreement,
        }


def measure_variant(
    variant: Variant,
    model_bytes: bytes,
    *,
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    reference_predictions: npt.NDArray[np.int64] | None = None,
    reference_accuracy: float | None = None,
    latency_runs: int = 200,
) -> tuple[VariantReport, npt.NDArray[np.int64]]:
    """Measure a variant on holdout ``features``/``labels`` and time it on this device.

    ``reference_predictions`` and ``reference_accuracy`` are fp32's (``None`` when measuring
    fp32 itself). Returns the report and the variant's predictions.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)  # (rows, num_features)
    y = np.asarray(labels, dtype=np.int64)  # (rows,)
    if len(x) == 0 or len(x) != len(y):
        raise ConfigError(
            f"Validation needs holdout rows with one label each; got {len(x)} rows and "
            f"{len(y)} labels."
        )
    session = open_session(model_bytes)
    predictions = run_logits(session, x).argmax(axis=1).astype(np.int64)  # (rows,)
    accuracy = float(np.mean(predictions == y))
    baseline = accuracy if reference_accuracy is None else reference_accuracy
    reference = predictions if reference_predictions is None else reference_predictions
    report = VariantReport(
        variant=variant,
        size_bytes=len(model_bytes),
        gzip_bytes=len(gzip.compress(model_bytes, compresslevel=9, mtime=0)),
        latency_b1_ms=measure_latency_ms(session, x, batch_size=1, runs=latency_runs),
        latency_b64_ms=measure_latency_ms(
            session, x, batch_size=64, runs=max(1, latency_runs // 4)
        ),
        accuracy=accuracy,
        accuracy_delta_points=(accuracy - baseline) * 100.0,
        agreement=float(np.mean(predictions == reference)),
    )
    return report, predictions


def _rejection(
    report: VariantReport, fp32: VariantReport, *, max_drop: float, tolerance: float
) -> str:
    if -report.accuracy_delta_points > max_drop:
        return f"loses {-report.accuracy_delta_points:.2f} accuracy points (allowed {max_drop:g})"
    for batch, mine, theirs in (
        (1, report.latency_b1_ms, fp32.latency_b1_ms),
        (64, report.latency_b64_ms, fp32.latency_b64_ms),
    ):
        if mine > theirs * (1.0 + tolerance):
            return f"slower than fp32 at batch {batch}: {mine:.3f} ms vs {theirs:.3f} ms"
    return ""


def pick_variant(
    reports: list[VariantReport],
    *,
    max_accuracy_drop: float = 0.3,
    latency_tolerance: float = 0.10,
) -> list[VariantReport]:
    """The reports with their verdicts: each accepted or rejected with a reason, one chosen.

    Parameters
    ----------
    reports
        Must include fp32 (the baseline every variant is judged against).
    max_accuracy_drop
        Most accuracy points a variant may lose against fp32, >= 0.
    latency_tolerance
        How much slower than fp32 (a share, e.g. 0.10 = 10 %) still counts as timing noise.

    Raises
    ------
    ConfigError
        If there is no fp32 report, or a bound is negative.
    """
    if max_accuracy_drop < 0 or latency_tolerance < 0:
        raise ConfigError(
            "The 'max_accuracy_drop' and 'latency_tolerance' parameters of pick_variant must be "
            f">= 0; got {max_accuracy_drop!r} and {latency_tolerance!r} instead."
        )
    fp32 = next((r for r in reports if r.variant is Variant.FP32), None)
    if fp32 is None:
        raise ConfigError("pick_variant needs the fp32 report: every variant is judged by it.")
    judged = []
    for report in reports:
        why = (
            ""
            if report.variant is Variant.FP32
            else _rejection(report, fp32, max_drop=max_accuracy_drop, tolerance=latency_tolerance)
        )
        judged.append(replace(report, is_accepted=not why, reason=why))
    accepted = [r for r in judged if r.is_accepted]
    smallest = min(r.gzip_bytes for r in accepted)
    near = [r for r in accepted if r.gzip_bytes <= smallest * (1.0 + _SIZE_TIE)]
    best = min(near, key=lambda r: r.latency_b1_ms)
    return [
        replace(r, is_chosen=True, reason="chosen: smallest accepted" + (
            "" if len(near) == 1 else ", fastest of the equally small"))
        if r is best
        else r
        if not r.is_accepted
        else replace(r, reason=f"accepted, not chosen: {r.gzip_bytes:,} B gzip vs "
                     f"{best.gzip_bytes:,} B")
        for r in judged
    ]  # fmt: skip
