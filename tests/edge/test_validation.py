from __future__ import annotations

import pytest

from sovereign_ai.edge import Variant, VariantReport, pick_variant
from sovereign_ai.errors import ConfigError


def report(variant: Variant, *, gzip_kib: float, b1: float, b64: float, drop: float = 0.0) -> (
    VariantReport
):  # fmt: skip
    return VariantReport(
        variant=variant, size_bytes=int(gzip_kib * 1100), gzip_bytes=int(gzip_kib * 1024),
        latency_b1_ms=b1, latency_b64_ms=b64, accuracy=0.95 - drop / 100,
        accuracy_delta_points=-drop, agreement=1.0 - drop / 100,
    )  # fmt: skip


FP32 = report(Variant.FP32, gzip_kib=100, b1=0.20, b64=8.0)


def test_picker_rejects_a_slower_or_less_accurate_variant_saying_why() -> None:
    judged = pick_variant(
        [
            FP32,
            report(Variant.INT8_DYNAMIC_MATMUL, gzip_kib=30, b1=0.30, b64=8.0),  # slower at 1
            report(Variant.INT8_STATIC, gzip_kib=25, b1=0.10, b64=4.0, drop=0.8),  # inaccurate
            report(Variant.PRUNED, gzip_kib=60, b1=0.20, b64=8.1),  # within timing noise
            report(Variant.PRUNED_INT8, gzip_kib=20, b1=0.10, b64=9.5),  # slower at 64
        ],
        max_accuracy_drop=0.3,
    )
    by = {r.variant: r for r in judged}
    assert not by[Variant.INT8_DYNAMIC_MATMUL].is_accepted
    assert by[Variant.INT8_DYNAMIC_MATMUL].reason == (
        "slower than fp32 at batch 1: 0.300 ms vs 0.200 ms"
    )
    assert by[Variant.INT8_STATIC].reason == "loses 0.80 accuracy points (allowed 0.3)"
    assert by[Variant.PRUNED_INT8].reason.startswith("slower than fp32 at batch 64")
    assert [r.variant for r in judged if r.is_chosen] == [Variant.PRUNED]
    assert by[Variant.PRUNED].reason.startswith("chosen")
    assert by[Variant.FP32].is_accepted and not by[Variant.FP32].is_chosen


def test_fp32_is_chosen_when_nothing_else_passes() -> None:
    judged = pick_variant([FP32, report(Variant.INT8_STATIC, gzip_kib=25, b1=1, b64=40)])
    assert [r.variant for r in judged if r.is_chosen] == [Variant.FP32]


def test_the_picker_needs_fp32_and_sane_bounds() -> None:
    with pytest.raises(ConfigError, match="needs the fp32 report"):
        pick_variant([report(Variant.INT8_STATIC, gzip_kib=1, b1=1, b64=1)])
    with pytest.raises(ConfigError, match="must be >= 0"):
        pick_variant([FP32], max_accuracy_drop=-1)
