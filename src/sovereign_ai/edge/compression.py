"""Build every variant of a model, validate each on the operator's rows, and pick one.

The single entry point the export command composes: it never reads a file or trains by itself
(training is the ``fine_tune`` callback the caller passes), so it runs wherever the operator's
rows are, on the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sovereign_ai.edge.onnx_export import EquivalenceReport, check_equivalence, export_onnx
from sovereign_ai.edge.prune import prune_magnitude, weight_sparsity
from sovereign_ai.edge.quantize import quantize_int8_dynamic, quantize_int8_static
from sovereign_ai.edge.validation import Variant, VariantReport, measure_variant, pick_variant
from sovereign_ai.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["CompressionResult", "compress_model"]


@dataclass(frozen=True)
class CompressionResult:
    """Every variant built, its measurements and verdict, and the one chosen.

    Parameters
    ----------
    reports
        One per variant, in the order built, each with its verdict.
    graphs
        The ONNX bytes of each variant.
    equivalence
        fp32 ONNX against PyTorch on the calibration and holdout rows.
    sparsity
        The pruned variants' share of zero weights (``None`` without them).
    notes
        Variants not built, and why.
    """

    reports: tuple[VariantReport, ...]
    graphs: dict[Variant, bytes]
    equivalence: EquivalenceReport
    sparsity: float | None
    notes: tuple[str, ...] = ()

    @property
    def chosen(self) -> VariantReport:
        """The variant to ship."""
        return next(r for r in self.reports if r.is_chosen)


def compress_model(
    model: nn.Module,
    *,
    num_features: int,
    calibration: npt.ArrayLike,
    holdout_features: npt.ArrayLike,
    holdout_labels: npt.ArrayLike,
    variants: Sequence[Variant] = tuple(Variant),
    fine_tune: Callable[[nn.Module], None] | None = None,
    sparsity: float = 0.5,
    max_accuracy_drop: float = 0.3,
    latency_runs: int = 200,
    progress: Callable[[str], None] | None = None,
) -> CompressionResult:
    """Export ``model`` to ONNX, build the asked ``variants``, measure them, pick one.

    Parameters
    ----------
    model
        Maps raw float32 features ``(rows, num_features)`` to logits (its scaling inside).
    num_features
        Width of one row.
    calibration
        The operator's rows for static quantisation (never the holdout rows).
    holdout_features, holdout_labels
        The operator's rows every variant is validated on.
    variants
        Which to build; fp32 is always built (every other is judged against it).
    fine_tune
        Trains a pruned copy in place; pruned variants are not built without it.
    sparsity
        The share of Linear/Conv weights pruning sets to zero.
    max_accuracy_drop
        Most holdout accuracy points a variant may lose against fp32.
    latency_runs
        Timed batch-1 runs per variant (a quarter as many at batch 64).
    progress
        Called with a line before each step.

    Raises
    ------
    ConfigError
        If the export does not reproduce PyTorch's logits, or a step fails.
    """
    say = progress or (lambda _line: None)
    holdout_x = np.ascontiguousarray(holdout_features, dtype=np.float32)  # (rows, features)
    holdout_y = np.asarray(holdout_labels, dtype=np.int64)  # (rows,)
    rows = np.ascontiguousarray(calibration, dtype=np.float32)  # (rows, features)
    if rows.ndim != 2 or rows.shape[1:] != (num_features,) or len(rows) == 0:
        raise ConfigError(
            f"The calibration rows must have shape (rows, {num_features}); got {rows.shape}."
        )
    wanted = {Variant(v) for v in variants} | {Variant.FP32}
    notes: list[str] = []
    say("exporting fp32 to ONNX and checking it against PyTorch")
    graphs = {Variant.FP32: export_onnx(model, num_features=num_features)}
    equivalence = check_equivalence(model, graphs[Variant.FP32], np.concatenate([rows, holdout_x]))
    if Variant.INT8_STATIC in wanted:
        say("int8 static: calibrating on your rows")
        graphs[Variant.INT8_STATIC] = quantize_int8_static(graphs[Variant.FP32], rows)
    if Variant.INT8_DYNAMIC_MATMUL in wanted:
        say("int8 dynamic (MatMul/Gemm only)")
        graphs[Variant.INT8_DYNAMIC_MATMUL] = quantize_int8_dynamic(graphs[Variant.FP32])
    achieved: float | None = None
    pruned_wanted = wanted & {Variant.PRUNED, Variant.PRUNED_INT8}
    if pruned_wanted and fine_tune is None:
        notes.append("pruned variants not built: fine-tuning needs labelled rows on the node")
    elif pruned_wanted:
        say(f"pruning {sparsity:.0%} of the weights and fine-tuning on your rows")
        pruned = prune_magnitude(model, sparsity=sparsity, fine_tune=fine_tune)
        achieved = weight_sparsity(pruned)
        pruned_graph = export_onnx(pruned, num_features=num_features)
        check_equivalence(pruned, pruned_graph, holdout_x)
        if Variant.PRUNED in wanted:
            graphs[Variant.PRUNED] = pruned_graph
        if Variant.PRUNED_INT8 in wanted:
            graphs[Variant.PRUNED_INT8] = quantize_int8_static(pruned_graph, rows)
    reports: list[VariantReport] = []
    reference: npt.NDArray[np.int64] | None = None
    for variant in (v for v in Variant if v in graphs):
        say(f"validating and timing {variant.value}")
        report, predictions = measure_variant(
            variant,
            graphs[variant],
            features=holdout_x,
            labels=holdout_y,
            reference_predictions=reference,
            reference_accuracy=reports[0].accuracy if reports else None,
            latency_runs=latency_runs,
        )
        reference = predictions if reference is None else reference
        reports.append(report)
    judged = pick_variant(reports, max_accuracy_drop=max_accuracy_drop)
    return CompressionResult(
        reports=tuple(judged),
        graphs=graphs,
        equivalence=equivalence,
        sparsity=achieved,
        notes=tuple(notes),
    )
