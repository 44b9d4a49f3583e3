"""Benchmark: what edge compression buys on this device, against fp32 measured in the same run.

Run::

    .venv/bin/python bench/edge.py            # ~1 min
    .venv/bin/python bench/edge.py --quick    # fewer timed runs

For ``logreg``, ``mlp`` (two hidden layers of 256) and ``cnn`` (channels 128 and 384:
505,482 parameters on the 8x8 digits, so the conv layers do real work), each trained for a few
epochs on 70 % of digits and validated on the other 30 %:

- **size**: int8 static ``model.onnx`` / fp32 (target <= 1/3.7 for models of >= 100k parameters);
- **ORT vs eager**: PyTorch eager batch-1 latency / ONNX Runtime fp32 (target >= 3x);
- **int8 speed-up**: ONNX fp32 / int8 static latency at batch 1 and 64 (target for the conv
  model >= 1.8x and >= 1.5x); int8 dynamic (MatMul/Gemm only) alongside;
- **accuracy drop** of int8 static against fp32 on the holdout, in points (target <= 0.3).

Latency: median of many ``session.run`` calls after warm-up, ONNX Runtime with
:func:`sovereign_ai.edge.default_threads` intra-op threads and torch with as many threads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rich.table import Table

from _harness import command_line, console, ratio, result_name, wait_until_quiet, write_result
from sovereign_ai.data import Standardizer, load_builtin, train_test_split
from sovereign_ai.edge import (
    default_threads,
    export_onnx,
    measure_latency_ms,
    open_session,
    quantize_int8_dynamic,
    quantize_int8_static,
    run_logits,
)
from sovereign_ai.learning import TrainConfig, create_model, train

MODELS: dict[str, dict[str, Any]] = {
    "logreg": {},
    "mlp": {"hidden": (256, 256)},
    "cnn": {"channels": (128, 384)},
}


def eager_latency_ms(model: torch.nn.Module, row: np.ndarray[Any, Any], runs: int) -> float:
    """Median PyTorch eager time of one batch-1 forward pass, in ms, after warm-up."""
    x = torch.from_numpy(row.copy())
    with torch.no_grad():
        for _ in range(20):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(name: str, options: dict[str, Any], runs: int) -> dict[str, float]:
    rows, holdout = train_test_split(load_builtin("digits"), test_fraction=0.3, seed=0)
    model = create_model(name, num_features=64, num_classes=10, seed=0, **options)
    scaling = Standardizer.fit(rows.features)
    with torch.no_grad():
        model.input_mean.copy_(torch.from_numpy(scaling.mean.astype(np.float32)))
        model.input_std.copy_(torch.from_numpy(scaling.scale.astype(np.float32)))
    config = TrainConfig(local_epochs=8, learning_rate=1e-3, optimizer="adam")
    train(model, rows.features, rows.labels, config=config, seed=0)
    model.eval()
    fp32 = export_onnx(model, num_features=64)
    static = quantize_int8_static(fp32, rows.features[:512])
    dynamic = quantize_int8_dynamic(fp32)
    x, y = holdout.features, holdout.labels
    result: dict[str, float] = {"parameters": float(sum(p.numel() for p in model.parameters()))}
    wait_until_quiet()
    for label, graph in (("fp32", fp32), ("int8_static", static), ("int8_dynamic", dynamic)):
        session = open_session(graph)
        result[f"{label}_bytes"] = float(len(graph))
        result[f"{label}_accuracy"] = float(np.mean(run_logits(session, x).argmax(1) == y))
        result[f"{label}_b1_ms"] = measure_latency_ms(session, x, batch_size=1, runs=runs)
        result[f"{label}_b64_ms"] = measure_latency_ms(
            session, x, batch_size=64, runs=max(20, runs // 10)
        )
    result["eager_b1_ms"] = eager_latency_ms(model, x[:1], runs)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer timed runs.")
    args = parser.parse_args(argv)
    runs = 300 if args.quick else 2000
    threads = default_threads()
    torch.set_num_threads(threads)
    results = {name: measure(name, options, runs) for name, options in MODELS.items()}
    table = Table(title=f"Edge variants on digits, this device ({threads} threads), ratios")
    columns = ("model", "params", "int8/fp32 size", "eager/ORT b1", "int8 speed-up b1",
               "int8 speed-up b64", "dyn-matmul b1", "dyn-matmul b64", "Δ acc int8")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, r in results.items():
        r["size_ratio"] = ratio(r["int8_static_bytes"], r["fp32_bytes"])
        r["ort_vs_eager_b1"] = ratio(r["eager_b1_ms"], r["fp32_b1_ms"])
        r["int8_speedup_b1"] = ratio(r["fp32_b1_ms"], r["int8_static_b1_ms"])
        r["int8_speedup_b64"] = ratio(r["fp32_b64_ms"], r["int8_static_b64_ms"])
        r["dynamic_speedup_b1"] = ratio(r["fp32_b1_ms"], r["int8_dynamic_b1_ms"])
        r["dynamic_speedup_b64"] = ratio(r["fp32_b64_ms"], r["int8_dynamic_b64_ms"])
        r["accuracy_drop_points"] = (r["fp32_accuracy"] - r["int8_static_accuracy"]) * 100
        table.add_row(
            name,
            f"{r['parameters']:,.0f}",
            f"1/{1 / r['size_ratio']:.2f} ({r['int8_static_bytes'] / 1024:,.0f} of "
            f"{r['fp32_bytes'] / 1024:,.0f} KiB)",
            f"{r['ort_vs_eager_b1']:.1f}x ({r['eager_b1_ms']:.3f} vs {r['fp32_b1_ms']:.3f} ms)",
            f"{r['int8_speedup_b1']:.2f}x ({r['int8_static_b1_ms']:.3f} ms)",
            f"{r['int8_speedup_b64']:.2f}x ({r['int8_static_b64_ms']:.2f} vs "
            f"{r['fp32_b64_ms']:.2f} ms)",
            f"{r['dynamic_speedup_b1']:.2f}x",
            f"{r['dynamic_speedup_b64']:.2f}x",
            f"{-r['accuracy_drop_points']:+.2f} pt",
        )
    console().print(table)
    write_result(
        result_name("edge", quick=args.quick),
        {"command": command_line("edge.py", argv), "threads": threads, "models": results},
    )


if __name__ == "__main__":
    main()
